/**
 * EventQueue: where an accepted envelope goes (docs/architecture.md, durability). Enqueue writes
 * to the primary stream while the route is healthy; any primary failure marks it unhealthy and
 * the same envelopes go to the bounded spool. A call succeeds only once Redis acknowledged the
 * write. The route starts unhealthy: `probe` flips it, and `drainOnce` forwards the spool to the
 * primary — the workflow that runs them on a schedule is programs/ProbeAndDrain.ts.
 *
 * A write that does not answer within `commandTimeoutMs` is not abandoned: it may still land (a
 * starved or stalled Redis). `enqueue` fails (503) only when every write it made is known to
 * have stored nothing; while one may still land it waits — up to `answerDeadlineMs` from the
 * start — for a write to be acknowledged. At the deadline it answers as stored and takes over
 * the envelopes: they are written again (same eventIds) until Redis acknowledges one copy; every
 * extra copy is absorbed by the writer's idempotent insert. The copies in doubt are counted
 * (`inDoubt`), and closing the queue waits for them.
 */
import { Clock, Context, Deferred, Effect, Exit, Layer, Metric, Ref, Schedule, Schema, Scope } from "effect"
import type { RawEventEnvelope } from "../domain/Envelope.ts"
import { encodeEnvelopeJson } from "../domain/Envelope.ts"
import { cappedBackoff } from "../domain/Backoff.ts"
import { primaryStreamKey, spoolStreamKey } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import * as Metrics from "./Metrics.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import type { RedisError } from "./RedisClient.ts"
import { clusterEventLog, replicasAck } from "./PrimaryCluster.ts"
import { SpoolRedis } from "./SpoolRedis.ts"
import { redisStreamStore, type StreamStore, withTimeout, WritePending } from "./StreamStore.ts"

/** Neither the primary nor the spool would take the event(s): the client must retry (503). */
export class QueueUnavailable extends Schema.TaggedError<QueueUnavailable>()("QueueUnavailable", {
  reason: Schema.Literals(["primary_down", "spool_down", "spool_full"]),
  message: Schema.String
}) {}

/**
 * Where the events were stored; "pending" when the answer deadline passed with a write that may
 * still land: the queue then writes them again until one copy is acknowledged.
 */
export type Route = "primary" | "spool" | "pending"

type Outcome = "stored" | "not_written" | "unknown"

interface Rejection {
  readonly reason: "spool_down" | "spool_full"
  readonly message: string
}

/** ANSWER_DEADLINE_MS when not configured */
export const DEFAULT_ANSWER_DEADLINE_MS = 1000

const realSleep = (ms: number) =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** writes in doubt, written again: 100 ms doubling to 5 s, jittered, until acknowledged */
const rewriteBackoff = cappedBackoff(100, 5_000)

export interface QueueCounters {
  readonly accepted: number
  readonly spooled: number
  readonly drained: number
  /** events answered at the answer deadline, before Redis acknowledged them (stored since, or in `inDoubt`) */
  readonly answeredPending: number
  readonly rejected: { readonly spool_down: number; readonly spool_full: number }
}

export interface QueueStatus {
  readonly primaryHealthy: boolean
  readonly spoolHealthy: boolean
  readonly spoolDepth: number | null
  readonly oldestSpooledAgeMs: number | null
  /** events whose write may or may not have landed, not yet acknowledged by Redis */
  readonly inDoubt: number
  readonly counters: QueueCounters
}

export interface EventQueueOptions {
  readonly primary: StreamStore
  readonly spool: StreamStore
  /** bound on every Redis call of the queue (enqueue, probe, drain) before failing over */
  readonly commandTimeoutMs: number
  /**
   * ANSWER_DEADLINE_MS: how long `enqueue` may wait for a write still in flight before it
   * answers as stored and keeps writing the events until Redis acknowledges them (default 1000),
   * counted from the moment both sides had their chance (each up to `commandTimeoutMs`)
   */
  readonly answerDeadlineMs?: number
  readonly spoolMaxEvents: number
  /** entries per drain round trip */
  readonly drainBatch?: number
}

export class EventQueue extends Context.Service<EventQueue, {
  /**
   * Stores all envelopes on one side, or none (QueueUnavailable → 503, only when no write of
   * them can have landed). "pending": answered at the deadline, stored later by the queue.
   */
  enqueue(envelopes: ReadonlyArray<RawEventEnvelope>): Effect.Effect<Route, QueueUnavailable>
  /** One probe of both sides, now: sets each side's health. */
  readonly probe: Effect.Effect<void>
  /**
   * Moves one batch spool → primary while the primary is healthy (read, append to the primary,
   * then delete from the spool); the number of events moved, 0 when there was nothing to move.
   */
  readonly drainOnce: Effect.Effect<number, RedisError>
  /** Events in the spool. */
  readonly spoolDepth: Effect.Effect<number, RedisError>
  readonly status: Effect.Effect<QueueStatus>
  /** True while at least one side can take writes. */
  readonly ready: Effect.Effect<boolean>
}>()("spoolway/layers/EventQueue") {
  static readonly make = (options: EventQueueOptions) => makeEventQueue(options)

  /**
   * The live queue: PrimaryRedis + SpoolRedis streams under STREAM_PREFIX, or with
   * PRIMARY_REDIS_CLUSTER the partitioned log on the cluster instead of the primary stream (probe
   * and drain: programs/ProbeAndDrain.ts).
   */
  static readonly layer = Layer.effect(
    EventQueue,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const spool = yield* SpoolRedis
      const primary = config.primaryRedisCluster.length > 0
        ? yield* clusterEventLog(config)
        : redisStreamStore({
          name: "primary",
          client: (yield* PrimaryRedis).client,
          key: primaryStreamKey(config.streamPrefix),
          timeoutMs: config.redisCommandTimeoutMs,
          ...replicasAck(config)
        })
      return yield* makeEventQueue({
        primary,
        spool: redisStreamStore({
          name: "spool",
          client: spool.client,
          key: spoolStreamKey(config.streamPrefix),
          timeoutMs: config.redisCommandTimeoutMs
        }),
        commandTimeoutMs: config.redisCommandTimeoutMs,
        answerDeadlineMs: config.answerDeadlineMs,
        spoolMaxEvents: config.spoolMaxEvents
      })
    })
  )
}

const makeEventQueue = Effect.fnUntraced(function*(options: EventQueueOptions) {
  const timeoutMs = options.commandTimeoutMs
  const primary = withTimeout(options.primary, timeoutMs)
  const spool = withTimeout(options.spool, timeoutMs)
  const answerDeadlineMs = options.answerDeadlineMs ?? DEFAULT_ANSWER_DEADLINE_MS
  const drainBatch = options.drainBatch ?? 1000
  const primaryHealthy = yield* Ref.make(false)
  const spoolHealthy = yield* Ref.make(false)
  const rejectedSpoolDown = Metrics.rejected("spool_down")
  const rejectedSpoolFull = Metrics.rejected("spool_full")
  // writes in doubt outlive their request: they run in this scope, which closing the queue
  // closes only after they settled (or the answer deadline passed once more)
  const inDoubt = yield* Ref.make(0)
  const queueScope = yield* Effect.scope
  const settleScope = yield* Scope.fork(queueScope)
  yield* Effect.addFinalizer(() => awaitSettled.pipe(Effect.andThen(Scope.close(settleScope, Exit.void))))

  const setPrimaryHealth = (healthy: boolean, why: string) =>
    Ref.getAndSet(primaryHealthy, healthy).pipe(
      Effect.flatMap((was) =>
        was === healthy
          ? Effect.void
          : healthy
          ? Effect.logInfo("primary redis healthy: routing to primary").pipe(Effect.annotateLogs({ route: "primary" }))
          : Effect.logWarning(`primary redis unhealthy (${why}): routing to spool`).pipe(Effect.annotateLogs({ route: "spool" }))
      )
    )

  const setSpoolHealth = (healthy: boolean, why: string) =>
    Ref.getAndSet(spoolHealthy, healthy).pipe(
      Effect.flatMap((was) =>
        was === healthy
          ? Effect.void
          : healthy
          ? Effect.logInfo("spool redis healthy")
          : Effect.logWarning(`spool redis unhealthy (${why})`)
      )
    )

  const probe = Effect.all([
    primary.ping.pipe(Effect.matchEffect({
      onFailure: (e) => setPrimaryHealth(false, e.message),
      onSuccess: () => setPrimaryHealth(true, "")
    })),
    spool.ping.pipe(Effect.matchEffect({
      onFailure: (e) => setSpoolHealth(false, e.message),
      onSuccess: () => setSpoolHealth(true, "")
    }))
  ], { concurrency: 2, discard: true })

  const rejectedCounter = { spool_down: rejectedSpoolDown, spool_full: rejectedSpoolFull } as const

  const toPrimary = Exit.succeed<Route>("primary")
  const toSpoolRoute = Exit.succeed<Route>("spool")
  const acceptedOnPrimary = (count: number) =>
    Effect.withFiber<Route>((fiber) => {
      Metrics.accepted.updateUnsafe(count, fiber.context)
      return toPrimary
    })
  const acceptedOnSpool = (count: number) =>
    Metric.update(Metrics.spooled, count).pipe(
      Effect.andThen(Metric.update(Metrics.accepted, count)),
      Effect.andThen(toSpoolRoute)
    )
  const reject = (count: number, rejection: Rejection) =>
    Metric.update(rejectedCounter[rejection.reason], count).pipe(Effect.andThen(Effect.fail(new QueueUnavailable(rejection))))

  /** A write's end as far as it can be known: stored, or nothing written, or perhaps written. */
  const outcomeOf = (write: Effect.Effect<unknown, RedisError>): Effect.Effect<Outcome> =>
    Effect.match(write, {
      onFailure: (e): Outcome => (e.notWritten === true ? "not_written" : "unknown"),
      // appendBounded answers false when the spool is full: nothing written
      onSuccess: (stored): Outcome => (stored === false ? "not_written" : "stored")
    })

  const changeInDoubt = (delta: number) =>
    Ref.modify(inDoubt, (n): [readonly [number, number], number] => [[n, n + delta], n + delta]).pipe(
      Effect.tap(([, now]) => Metric.update(Metrics.inDoubt, now)),
      Effect.flatMap(([was, now]) =>
        was === 0 && now > 0
          ? Effect.logWarning(`a Redis write went unanswered past ${timeoutMs} ms: waiting for it (events in doubt: ${now})`)
          : was > 0 && now === 0
          ? Effect.logInfo("every write in doubt is settled")
          : Effect.void
      )
    )

  /**
   * Writes `payloads` again (same envelopes) until Redis acknowledges one copy — the primary while
   * healthy, else the spool — unless `answer` completes first (a copy in flight landed). Each
   * attempt may take the answer deadline before the next one starts, so a stalled Redis gets a
   * few copies, not one per command timeout.
   */
  const rewrite = (payloads: ReadonlyArray<string>, answer: Deferred.Deferred<Route, QueueUnavailable>) =>
    Effect.gen(function*() {
      if (yield* Deferred.isDone(answer)) return undefined
      if (yield* Ref.get(primaryHealthy)) {
        const stored = yield* options.primary.appendWithin(payloads, answerDeadlineMs).pipe(
          Effect.flatMap((result) =>
            result instanceof WritePending ? setPrimaryHealth(false, "a write in doubt is still unanswered").pipe(Effect.as(false)) : Effect.succeed(true)
          ),
          Effect.catch((e) => setPrimaryHealth(false, e.message).pipe(Effect.as(false)))
        )
        if (stored) return "primary" as const
      }
      const spooled = yield* options.spool.appendBoundedWithin(payloads, options.spoolMaxEvents, answerDeadlineMs).pipe(
        Effect.orElseSucceed(() => false)
      )
      if (spooled === true) return "spool" as const
      return yield* Effect.fail("not yet" as const)
    }).pipe(Effect.retry(rewriteBackoff))

  /**
   * The slow path: no write was acknowledged, and at least one may still land (`primaryLeft`,
   * `spoolLeft`: the write in doubt, or null when known to have written nothing). Answers the
   * first acknowledged route; QueueUnavailable once all turned out to have written nothing; at
   * the deadline "pending", and the events are written again until one copy is acknowledged.
   */
  const awaitInDoubt = (
    payloads: ReadonlyArray<string>,
    primaryLeft: Effect.Effect<unknown, RedisError> | null,
    spoolLeft: Effect.Effect<unknown, RedisError> | null,
    rejection: Rejection
  ): Effect.Effect<Route, QueueUnavailable> =>
    Effect.gen(function*() {
      const count = payloads.length
      const answer = yield* Deferred.make<Route, QueueUnavailable>()
      yield* changeInDoubt(count)
      let open = (primaryLeft === null ? 0 : 1) + (spoolLeft === null ? 0 : 1)
      let maybeWritten = false
      let rewriting = false

      const settle = (route: "primary" | "spool") =>
        Deferred.succeed(answer, route).pipe(
          Effect.flatMap((first) =>
            first
              ? (route === "spool" ? Metric.update(Metrics.spooled, count) : Effect.void).pipe(
                Effect.andThen(Metric.update(Metrics.accepted, count)),
                Effect.andThen(changeInDoubt(-count))
              )
              : Effect.void
          )
        )
      const startRewrite = Effect.suspend(() => {
        if (rewriting) return Effect.void
        rewriting = true
        return Effect.forkIn(
          rewrite(payloads, answer).pipe(Effect.flatMap((route) => (route === undefined ? Effect.void : settle(route)))),
          settleScope
        ).pipe(Effect.asVoid)
      })
      const watch = (left: Effect.Effect<unknown, RedisError>, route: "primary" | "spool") =>
        Effect.forkIn(
          outcomeOf(left).pipe(Effect.flatMap((outcome) => {
            if (outcome === "stored") return settle(route)
            if (outcome === "unknown") maybeWritten = true
            if (--open > 0) return Effect.void
            // every write ended without an acknowledgement
            if (maybeWritten || rewriting) return startRewrite
            return Deferred.fail(answer, new QueueUnavailable(rejection)).pipe(
              Effect.flatMap((first) =>
                first ? Metric.update(rejectedCounter[rejection.reason], count).pipe(Effect.andThen(changeInDoubt(-count))) : Effect.void
              )
            )
          })),
          settleScope
        )
      if (primaryLeft !== null) yield* watch(primaryLeft, "primary")
      if (spoolLeft !== null) yield* watch(spoolLeft, "spool")

      const answered = yield* Effect.timeoutOption(Deferred.await(answer), answerDeadlineMs)
      if (answered._tag === "Some") return answered.value
      // the deadline: answer as stored, and make sure it is
      yield* startRewrite
      yield* Metric.update(Metrics.answeredPending, count)
      return "pending" as const
    })

  /** After the primary: the spool, then the answer (503 only when nothing can have been written). */
  const toSpool = (
    payloads: ReadonlyArray<string>,
    primaryLeft: Effect.Effect<unknown, RedisError> | null,
    primaryWhy: string
  ): Effect.Effect<Route, QueueUnavailable> =>
    Effect.matchEffect(options.spool.appendBoundedWithin(payloads, options.spoolMaxEvents, timeoutMs), {
      onFailure: (e) =>
        setSpoolHealth(false, e.message).pipe(Effect.andThen(decide(payloads, primaryLeft, e.notWritten === true ? null : Effect.fail(e), {
          reason: "spool_down",
          message: `primary: ${primaryWhy}; spool: ${e.message}`
        }))),
      onSuccess: (stored) => {
        if (stored === true) return setSpoolHealth(true, "").pipe(Effect.andThen(acceptedOnSpool(payloads.length)))
        if (stored === false) {
          return decide(payloads, primaryLeft, null, { reason: "spool_full", message: `spool holds ${options.spoolMaxEvents} events` })
        }
        return setSpoolHealth(false, `no answer within ${timeoutMs} ms`).pipe(Effect.andThen(decide(payloads, primaryLeft, stored.outcome, {
          reason: "spool_down",
          message: `primary: ${primaryWhy}; spool: no answer within ${timeoutMs} ms`
        })))
      }
    })

  const decide = (
    payloads: ReadonlyArray<string>,
    primaryLeft: Effect.Effect<unknown, RedisError> | null,
    spoolLeft: Effect.Effect<unknown, RedisError> | null,
    rejection: Rejection
  ): Effect.Effect<Route, QueueUnavailable> =>
    primaryLeft === null && spoolLeft === null
      ? reject(payloads.length, rejection)
      : awaitInDoubt(payloads, primaryLeft, spoolLeft, rejection)

  // every tracking request comes through here: one Redis step while the primary is healthy
  const enqueue = (envelopes: ReadonlyArray<RawEventEnvelope>): Effect.Effect<Route, QueueUnavailable> => {
    if (envelopes.length === 0) return toPrimary
    const payloads = envelopes.length === 1 ? [encodeEnvelopeJson(envelopes[0]!)] : envelopes.map(encodeEnvelopeJson)
    if (!Ref.getUnsafe(primaryHealthy)) return toSpool(payloads, null, "unhealthy")
    return Effect.matchEffect(options.primary.appendWithin(payloads, timeoutMs), {
      onFailure: (e) =>
        setPrimaryHealth(false, e.message).pipe(Effect.andThen(toSpool(payloads, e.notWritten === true ? null : Effect.fail(e), e.message))),
      onSuccess: (pending) =>
        pending instanceof WritePending
          ? setPrimaryHealth(false, `no answer within ${timeoutMs} ms`).pipe(
            Effect.andThen(toSpool(payloads, pending.outcome, `no answer within ${timeoutMs} ms`))
          )
          : acceptedOnPrimary(payloads.length)
    })
  }

  /**
   * Closing the queue: waits (up to the answer deadline, in real time — shutdown is about the
   * wall clock) for the writes in doubt to settle.
   */
  const awaitSettled = Effect.gen(function*() {
    const start = Date.now()
    while ((yield* Ref.get(inDoubt)) > 0 && Date.now() - start < answerDeadlineMs) yield* realSleep(20)
    const left = yield* Ref.get(inDoubt)
    if (left > 0) yield* Effect.logError(`shutting down with ${left} events whose writes Redis never acknowledged (a copy may have landed)`)
  })

  /** Moves one batch spool → primary; the number of events moved. */
  const drainOnce = Effect.gen(function*() {
    if (!(yield* Ref.get(primaryHealthy))) return 0
    const entries = yield* spool.head(drainBatch)
    if (entries.length === 0) return 0
    const moved = yield* primary.append(entries.map((e) => e.payload)).pipe(
      Effect.as(true),
      Effect.catch((e) => setPrimaryHealth(false, e.message).pipe(Effect.as(false)))
    )
    if (!moved) return 0
    // a crash here forwards these entries twice; the writer's idempotent insert absorbs it
    yield* spool.remove(entries.map((e) => e.id))
    yield* Metric.update(Metrics.drained, entries.length)
    return entries.length
  })

  const oldestAge = (now: number) =>
    spool.head(1).pipe(
      Effect.map((entries) => {
        const first = entries[0]
        if (first === undefined) return null
        try {
          const receivedAt = Date.parse(JSON.parse(first.payload).receivedAt)
          return Number.isFinite(receivedAt) ? Math.max(0, now - receivedAt) : null
        } catch {
          return null
        }
      })
    )

  const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (s) => s.count)

  const status = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const depth = yield* spool.length.pipe(Effect.orElseSucceed(() => null))
    const age = depth !== null && depth > 0 ? yield* oldestAge(now).pipe(Effect.orElseSucceed(() => null)) : null
    const healthy = yield* Ref.get(primaryHealthy)
    yield* Metric.update(Metrics.primaryHealthy, healthy ? 1 : 0)
    if (depth !== null) yield* Metric.update(Metrics.spoolDepth, depth)
    return {
      primaryHealthy: healthy,
      spoolHealthy: yield* Ref.get(spoolHealthy),
      spoolDepth: depth,
      oldestSpooledAgeMs: age,
      inDoubt: yield* Ref.get(inDoubt),
      counters: {
        accepted: yield* count(Metrics.accepted),
        spooled: yield* count(Metrics.spooled),
        drained: yield* count(Metrics.drained),
        answeredPending: yield* count(Metrics.answeredPending),
        rejected: { spool_down: yield* count(rejectedSpoolDown), spool_full: yield* count(rejectedSpoolFull) }
      }
    } satisfies QueueStatus
  })

  const ready = Effect.map(Effect.all([Ref.get(primaryHealthy), Ref.get(spoolHealthy)]), ([p, s]) => p || s)

  return EventQueue.of({ enqueue, probe, drainOnce, spoolDepth: spool.length, status, ready })
})
