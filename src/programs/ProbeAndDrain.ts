/**
 * The collector's failover workflow around its EventQueue (docs/architecture.md, durability):
 * - the probe (PING of both sides, on a `Schedule`, the first at start) flips the route between
 *   primary and spool;
 * - the drain fiber forwards spooled envelopes to the primary in batches while the primary is
 *   healthy, pausing when it is not. A crash between the primary write and the spool delete
 *   forwards an envelope twice; the writer's idempotent insert absorbs it.
 * Both run in background fibers scoped to the caller (the layer: the process); closing the scope
 * stops them between batches.
 */
import { Duration, Effect, Layer, Schedule } from "effect"
import type { Scope } from "effect"
import { cappedBackoff } from "../domain/Backoff.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { EventQueue } from "../layers/EventQueue.ts"

export interface ProbeAndDrainOptions {
  /** PROBE_INTERVAL_MS */
  readonly probeInterval: Duration.Input
  /** how often the idle drain fiber looks at the spool (default 100 ms) */
  readonly drainPoll?: Duration.Input
}

/** spool read/delete failures: 100 ms doubling to 5 s, jittered, for as long as it takes */
const drainBackoff = cappedBackoff(100, 5_000)

/** Forwards the spool to the primary whenever there is something to forward; never ends. */
const drainLoop = (queue: EventQueue["Service"], poll: Duration.Input) =>
  Effect.gen(function*() {
    let draining = false
    let moved = 0
    while (true) {
      const batch = yield* queue.drainOnce.pipe(
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
        const depth = yield* queue.spoolDepth.pipe(Effect.orElseSucceed(() => -1))
        yield* Effect.logInfo(`drain ${depth === 0 ? "finished" : "paused"}: ${moved} events forwarded, ${depth} left`)
        draining = false
        moved = 0
      }
      yield* Effect.sleep(poll)
    }
  })

/** Starts the probe schedule and the drain fiber of `queue` in the current scope. */
export const startProbeAndDrain = (
  queue: EventQueue["Service"],
  options: ProbeAndDrainOptions
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Effect.forkScoped(Effect.repeat(queue.probe, Schedule.spaced(options.probeInterval)))
    yield* Effect.forkScoped(drainLoop(queue, options.drainPoll ?? Duration.millis(100)))
  })

/** The workflow for the process's EventQueue, every PROBE_INTERVAL_MS. */
export const ProbeAndDrain = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const queue = yield* EventQueue
    yield* startProbeAndDrain(queue, { probeInterval: Duration.millis(config.probeIntervalMs) })
  })
)
