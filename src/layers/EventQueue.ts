/**
 * EventQueue: where an accepted envelope goes (docs/architecture.md, durability). Enqueue writes
 * to the primary stream while the route is healthy; any primary failure marks it unhealthy and
 * the same envelopes go to the bounded spool. A call succeeds only once Redis acknowledged the
 * write. The route starts unhealthy: `probe` flips it, and `drainOnce` forwards the spool to the
 * primary — the workflow that runs them on a schedule is programs/ProbeAndDrain.ts.
 */
import { Clock, Context, Effect, Exit, Layer, Metric, Ref, Schema } from "effect"
import type { RawEventEnvelope } from "../domain/Envelope.ts"
import { encodeEnvelopeJson } from "../domain/Envelope.ts"
import { primaryStreamKey, spoolStreamKey } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import * as Metrics from "./Metrics.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import type { RedisError } from "./RedisClient.ts"
import { SpoolRedis } from "./SpoolRedis.ts"
import { redisStreamStore, type StreamStore, withTimeout } from "./StreamStore.ts"

/** Neither the primary nor the spool would take the event(s): the client must retry (503). */
export class QueueUnavailable extends Schema.TaggedError<QueueUnavailable>()("QueueUnavailable", {
  reason: Schema.Literals(["primary_down", "spool_down", "spool_full"]),
  message: Schema.String
}) {}

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
  /** bound on every Redis call of the queue (enqueue, probe, drain) */
  readonly commandTimeoutMs: number
  readonly spoolMaxEvents: number
  /** entries per drain round trip */
  readonly drainBatch?: number
}

export class EventQueue extends Context.Service<EventQueue, {
  /** Stores all envelopes on one side, or none (QueueUnavailable → 503). */
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

  /** The live queue: PrimaryRedis + SpoolRedis streams under STREAM_PREFIX (probe and drain: programs/ProbeAndDrain.ts). */
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
        spoolMaxEvents: config.spoolMaxEvents
      })
    })
  )
}

const makeEventQueue = Effect.fnUntraced(function*(options: EventQueueOptions) {
  const primary = withTimeout(options.primary, options.commandTimeoutMs)
  const spool = withTimeout(options.spool, options.commandTimeoutMs)
  const drainBatch = options.drainBatch ?? 1000
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

  return EventQueue.of({ enqueue, probe, drainOnce, spoolDepth: spool.length, status, ready })
})
