/**
 * The writer's acknowledgements: `XACK` + `XDEL` of a batch's entries once its write committed.
 * They run in the background, overlapping the next batch's write, and stay in commit order
 * (each waits for the previous one). A failed acknowledgement is retried, then given up: the
 * entries are redelivered later and stored as duplicates (nothing twice).
 *
 * The writer's intake must not reclaim what is being acknowledged: `isAcking` tells the
 * entries still on their way, and `watchClaim` the ones acknowledged while an XAUTOCLAIM was
 * on its way (its reply may still list them, claimed before the ack reached Redis).
 */
import { Duration, Effect, Fiber, Schedule } from "effect"
import type { StreamPartition } from "../layers/StreamConsumer.ts"

export interface Acks {
  /** Starts acknowledging `ids` (after those started before); returns at once. */
  readonly start: (ids: ReadonlyArray<string>) => Effect.Effect<void>
  /** Waits for every acknowledgement started so far. */
  readonly await: Effect.Effect<void>
  readonly isAcking: (id: string) => boolean
  /**
   * Collects the ids acknowledged from now on until `unwatch` (one claim at a time): the ids a
   * claim's reply may list although they are acknowledged.
   */
  readonly watchClaim: () => { readonly acked: ReadonlySet<string>; readonly unwatch: Effect.Effect<void> }
}

export const makeAcks = (partition: StreamPartition): Acks => {
  const ackAfterCommit = Effect.fn("Writer.ack")(function*(ids: ReadonlyArray<string>) {
    yield* partition.ackAndDelete(ids).pipe(
      Effect.retry({ schedule: Schedule.spaced(Duration.millis(200)), times: 10 }),
      Effect.catch((error) =>
        Effect.logWarning(
          `writer: batch committed but XACK failed (${error.message}); its ${ids.length} entries will be redelivered and skipped as duplicates`
        )
      )
    )
  })

  let pendingAck: Fiber.Fiber<void> | undefined
  /** committed entries whose acknowledgement is still on its way (not to be reclaimed) */
  const acking = new Set<string>()
  /** entries acknowledged while an XAUTOCLAIM is on its way */
  let claimWatch: Set<string> | undefined

  const start = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const previous = pendingAck
      for (const id of ids) acking.add(id)
      pendingAck = yield* Effect.forkDetach(
        Effect.gen(function*() {
          if (previous !== undefined) yield* Fiber.join(previous)
          yield* ackAfterCommit(ids)
        }).pipe(
          Effect.ensuring(Effect.sync(() => {
            for (const id of ids) {
              acking.delete(id)
              claimWatch?.add(id)
            }
          }))
        ),
        { uninterruptible: true }
      )
    })

  const watchClaim = () => {
    const watch = new Set<string>()
    claimWatch = watch
    return {
      acked: watch,
      unwatch: Effect.sync(() => {
        if (claimWatch === watch) claimWatch = undefined
      })
    }
  }

  return {
    start,
    await: Effect.suspend(() => (pendingAck === undefined ? Effect.void : Fiber.join(pendingAck))),
    isAcking: (id) => acking.has(id),
    watchClaim
  }
}
