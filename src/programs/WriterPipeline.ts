/**
 * The writer's read-ahead pipeline and its shutdown handoff.
 *
 * While batches N and N+1 are being written (one transaction and connection each, up to
 * `depth` = WRITER_TRANSACTIONS at once), batch N+2 is read and prepared (decode, enrich,
 * rollups, the sink's parameters). One write waiting for its COMMIT's WAL flush, or for a
 * rollup row the other holds, leaves the database and this process work to do on the next one.
 * Overlapping writes are safe because the sink orders its locks (PostgreSQL: every statement
 * takes its row locks in one global order — no deadlocks; a row inserted by both is kept and
 * counted by the one that commits first, the other waits on its key, then finds it ON
 * CONFLICT; its WriteCache only learns what has committed). Acknowledgements follow the
 * commits, in commit order.
 *
 * Session lanes (domain/SessionLanes.ts): a write of a lane starts only once the lane's previous
 * write has ended, whatever else is in flight — so one session is never in two of this writer's
 * transactions at once, even when consecutive reads fill one lane only (small reads).
 *
 * When interrupted, the writes in flight finish their current attempt (uninterruptible) and a
 * batch already read ahead is written too (one attempt) — whatever remains pending is released
 * to the other writers by the writer's `leaveGroup`. After a defect the read-ahead and the other
 * writes' retries stop; their entries stay pending and are reclaimed later.
 */
import { Cause, Effect, Fiber } from "effect"

export interface PipelineSteps<W> {
  /** writes in flight at most (≥ 1) */
  readonly depth: number
  /** Reads and prepares the next batch; undefined when there was nothing to read. */
  readonly fetch: Effect.Effect<W | undefined>
  /** The session lane of a batch (undefined: none — it may run beside any other). */
  readonly laneOf?: (work: W) => number | undefined
  /** Writes a batch (retrying, splitting as needed) and settles it. */
  readonly commit: (work: W) => Effect.Effect<void>
  /** One attempt at writing the batch read ahead, when stopping; settles it. */
  readonly commitOnStop: (work: W) => Effect.Effect<void>
  readonly awaitAcks: Effect.Effect<void>
  /** One more look at idle entries too, before a drain ends. */
  readonly lookAgain: () => void
  /** After a defect: forget what is in flight. */
  readonly reset: () => void
}

/** Runs until idle twice in a row (`stopWhenIdle`: tests, benchmarks) or forever. */
export const runPipeline = <W>(steps: PipelineSteps<W>, stopWhenIdle: boolean): Effect.Effect<void> => {
  const depth = Math.max(1, Math.floor(steps.depth))
  let next: Fiber.Fiber<W | undefined> | undefined
  /**
   * Batches being written, oldest first. A fiber leaves the list only once it has ended, so
   * that a stop (or a defect) arriving while the loop waits for one still finds it.
   */
  const committing: Array<{ readonly fiber: Fiber.Fiber<void>; readonly lane: number | undefined }> = []
  /** the write ended (joined), then out of the list — unless a stop emptied the list meanwhile */
  const awaitWrite = (write: typeof committing[number]) =>
    Fiber.join(write.fiber).pipe(Effect.andThen(Effect.sync(() => {
      const at = committing.indexOf(write)
      if (at !== -1) committing.splice(at, 1)
    })))
  const awaitOldest = Effect.suspend(() => awaitWrite(committing[0]!))
  /** the write in flight of `lane`, if any, ended first */
  const awaitLane = (lane: number | undefined) =>
    Effect.suspend(() => {
      const write = lane === undefined ? undefined : committing.find((w) => w.lane === lane)
      return write === undefined ? Effect.void : awaitWrite(write)
    })
  const awaitCommits = Effect.suspend(() => Effect.forEach([...committing], (w) => Fiber.join(w.fiber), { discard: true })).pipe(
    Effect.andThen(Effect.sync(() => {
      committing.length = 0
    }))
  )
  // an interrupted commit still finishes its current attempt (it is uninterruptible)
  const stopCommits = Effect.suspend(() => Effect.forEach([...committing], (w) => Fiber.interrupt(w.fiber), { discard: true })).pipe(
    Effect.andThen(Effect.sync(() => {
      committing.length = 0
    }))
  )
  const handoff = Effect.gen(function*() {
    yield* stopCommits
    const fiber = next
    if (fiber === undefined) return
    yield* Fiber.interrupt(fiber)
    const exit = yield* Fiber.await(fiber)
    if (exit._tag !== "Success" || exit.value === undefined) return
    yield* steps.commitOnStop(exit.value)
  }).pipe(Effect.ensuring(steps.awaitAcks))
  return Effect.gen(function*() {
    let idle = 0
    next = yield* Effect.forkChild(steps.fetch)
    while (true) {
      // a free write slot first: meanwhile the read-ahead batch stays in `next`, where the
      // shutdown handoff finds it
      if (committing.length >= depth) yield* awaitOldest
      const work = yield* Fiber.join(next)
      if (work === undefined) {
        yield* awaitCommits // nothing new: let the writes in flight finish (or fail)
        if (stopWhenIdle) {
          if (++idle > 1) return yield* steps.awaitAcks
          steps.lookAgain()
        }
        next = yield* Effect.forkChild(steps.fetch)
        continue
      }
      idle = 0
      // its lane's write in flight ends first (meanwhile the batch stays in `next`, where the
      // shutdown handoff finds it)
      const lane = steps.laneOf?.(work)
      yield* awaitLane(lane)
      next = yield* Effect.forkChild(steps.fetch)
      committing.push({ fiber: yield* Effect.forkChild(steps.commit(work)), lane })
    }
  }).pipe(
    Effect.onExit((exit) => {
      if (exit._tag === "Success") return Effect.void
      if (Cause.hasInterruptsOnly(exit.cause)) return handoff
      const fiber = next
      return stopCommits.pipe(
        Effect.andThen(fiber === undefined ? Effect.void : Fiber.interrupt(fiber)),
        Effect.andThen(Effect.sync(steps.reset))
      )
    })
  )
}
