/** The retry delay both the writer and the spool drain use. */
import { Duration, Effect, Schedule } from "effect"

/** Exponential from `baseMs` (doubling), each delay capped at `maxMs`, jittered; never ends. */
export const cappedBackoff = (baseMs: number, maxMs: number) =>
  Schedule.exponential(Duration.millis(baseMs)).pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(maxMs)))),
    Schedule.jittered
  )
