/**
 * EventQueue: where an accepted envelope goes (SPEC §4). The route starts unhealthy;
 * a probe (PING on a Schedule, the first at start) flips it. Enqueue writes to the
 * primary stream while healthy; any primary failure marks it unhealthy and the same
 * envelopes go to the bounded spool. A drain fiber forwards the spool to the primary
 * while it is healthy. A call succeeds only once Redis acknowledged the write.
 */
import { Clock, Context, Duration, Effect, Exit, Layer, Metric, Ref, Schedule } from "effect"
import type { RawEventEnvelope } from "../domain/Envelope.ts"
import { encodeEnvelopeJson } from "../domain/Envelope.ts"
import { cappedBackoff } from "../domain/Backoff.ts"
import { QueueUnavailable } from "../domain/Errors.ts"
import { primaryStreamKey, spoolStreamKey } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import * as Metrics from "./Metrics.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import { SpoolRedis } from "./SpoolRedis.ts"
import { redisStreamStore, type StreamStore, withTimeout } from "./StreamStore.ts"

export type Route = "primary" | "spool"

export interface QueueCounters {
  readonly accepted: number
  readonly spooled: number
  readonly drained: number
  readonly rejected: { readonly spool_down: number; readonly spool_full: number }
}

export interface QueueStatus {
  readonly primaryHealthy: boolean
  readonly spoolHealthy: boolean
  readonly spoolDepth: number | null
  readonly oldestSpooledAgeMs: number | null
  readonly counters: QueueCounters
}

export interface EventQueueOptions {
  readonly primary: StreamStore
  readonly spool: StreamStore
  readonly probeInterval: Duration.Input
  /** bound on every Redis call of the queue (enqueue, probe, drain) */
  readonly commandTimeoutMs: number
  readonly spoolMaxEvents: number
  /** entries per drain round trip */
  readonly drainBatch?: number
  /** how often the idle drain fiber looks at the spool */
  readonly drainPoll?: Duration.Input
}

export class EventQueue extends Context.Service<EventQueue, {
  /** Stores all envelopes on one side, or none (QueueUnavailable → 503). */
  enqueue(envelopes: ReadonlyArray<RawEventEnvelope>): Effect.Effect<Route, QueueUnavailable>
  /** One probe of both sides, now (the scheduled probe runs on its own). */
  readonly probe: Effect.Effect<void>
  readonly status: Effect.Effect<QueueStatus>
  /** True while at least one side can take writes. */
  readonly ready: Effect.Effect<boolean>
}>()("spoolway/layers/EventQueue") {
  static readonly make = (options: EventQueueOptions) => makeEventQueue(options)

  /** The live queue: PrimaryRedis + SpoolRedis streams under STREAM_PREFIX. */
  static readonly layer = Layer.effect(
    EventQueue,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const primary = yield* PrimaryRedis
      const spool = yield* SpoolRedis
      return yield* makeEventQueue({
        primary: redisStreamStore({
          name: "primary",
          client: primary.client,
          key: primaryStreamKey(config.streamPrefix),
          timeoutMs: config.redisCommandTimeoutMs
        }),
        spool: redisStreamStore({
          name: "spool",
          client: spool.client,
          key: spoolStreamKey(config.streamPrefix),
          timeoutMs: config.redisCommandTimeoutMs
        }),
        commandTimeoutMs: config.redisCommandTimeoutMs,
        probeInterval: Duration.millis(config.probeIntervalMs),
        spoolMaxEvents: config.spoolMaxEvents
      })
    })
  )
}

const makeEventQueue = Effect.fnUntraced(function*(options: EventQueueOptions) {
  const primary = withTimeout(options.primary, options.commandTimeoutMs)
  const spool = withTimeout(options.spool, options.commandTimeoutMs)
  const drainBatch = options.drainBatch ?? 1000
  const drainPoll = options.drainPoll ?? Duration.millis(100)
  const primaryHealthy = yield* Ref.make(false)
  const spoolHealthy = yield* Ref.make(false)
  const rejectedSpoolDown = Metrics.rejected("spool_down")
  const rejectedSpoolFull = Metrics.rejected("spool_full")

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

  const toSpool = (payloads: ReadonlyArray<string>, primaryWhy: string) =>
    spool.appendBounded(payloads, options.spoolMaxEvents).pipe(
      Effect.tap(() => setSpoolHealth(true, "")),
      Effect.catch((e) =>
        setSpoolHealth(false, e.message).pipe(
          Effect.andThen(Metric.update(rejectedSpoolDown, payloads.length)),
          Effect.andThen(Effect.fail(new QueueUnavailable({ reason: "spool_down", message: `primary: ${primaryWhy}; spool: ${e.message}` })))
        )
      ),
      Effect.flatMap((stored) => {
        if (stored) {
          return Metric.update(Metrics.spooled, payloads.length).pipe(
            Effect.andThen(Metric.update(Metrics.accepted, payloads.length)),
            Effect.as<Route>("spool")
          )
        }
        return Metric.update(rejectedSpoolFull, payloads.length).pipe(
          Effect.andThen(Effect.fail(new QueueUnavailable({ reason: "spool_full", message: `spool holds ${options.spoolMaxEvents} events` })))
        )
      })
    )

  const toPrimary = Exit.succeed<Route>("primary")
  const acceptedOnPrimary = (count: number) =>
    Effect.withFiber<Route>((fiber) => {
      Metrics.accepted.updateUnsafe(count, fiber.context)
      return toPrimary
    })

  // every tracking request comes through here: one Redis step while the primary is healthy
  const enqueue = (envelopes: ReadonlyArray<RawEventEnvelope>): Effect.Effect<Route, QueueUnavailable> => {
    if (envelopes.length === 0) return toPrimary
    const payloads = envelopes.length === 1 ? [encodeEnvelopeJson(envelopes[0]!)] : envelopes.map(encodeEnvelopeJson)
    if (!Ref.getUnsafe(primaryHealthy)) return toSpool(payloads, "unhealthy")
    return Effect.matchEffect(primary.append(payloads), {
      onFailure: (e) => setPrimaryHealth(false, e.message).pipe(Effect.andThen(toSpool(payloads, e.message))),
      onSuccess: () => acceptedOnPrimary(payloads.length)
    })
  }

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

  /** spool read/delete failures: 100 ms doubling to 5 s, jittered, for as long as it takes */
  const drainBackoff = cappedBackoff(100, 5_000)

  const drainLoop = Effect.gen(function*() {
    let draining = false
    let moved = 0
    while (true) {
      const batch = yield* drainOnce.pipe(
        Effect.tapError((e) => Effect.logWarning(`drain: ${e.message}; retrying`)),
        Effect.retry(drainBackoff)
      )
      if (batch > 0) {
        if (!draining) yield* Effect.logInfo("draining spool to primary")
        draining = true
        moved += batch
        continue
      }
      if (draining) {
        const depth = yield* spool.length.pipe(Effect.orElseSucceed(() => -1))
        yield* Effect.logInfo(`drain ${depth === 0 ? "finished" : "paused"}: ${moved} events forwarded, ${depth} left`)
        draining = false
        moved = 0
      }
      yield* Effect.sleep(drainPoll)
    }
  })

  yield* Effect.forkScoped(Effect.repeat(probe, Schedule.spaced(options.probeInterval)))
  yield* Effect.forkScoped(drainLoop)

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
      counters: {
        accepted: yield* count(Metrics.accepted),
        spooled: yield* count(Metrics.spooled),
        drained: yield* count(Metrics.drained),
        rejected: { spool_down: yield* count(rejectedSpoolDown), spool_full: yield* count(rejectedSpoolFull) }
      }
    } satisfies QueueStatus
  })

  const ready = Effect.map(Effect.all([Ref.get(primaryHealthy), Ref.get(spoolHealthy)]), ([p, s]) => p || s)

  return EventQueue.of({ enqueue, probe, status, ready })
})
