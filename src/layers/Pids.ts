/** Processes left by earlier runs (embedded servers, a running daemon), by pid. */
import { readFileSync } from "node:fs"
import { Duration, Effect, Schedule } from "effect"

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** `pid` is alive and its command line mentions `program` (guards against pid reuse). */
export const isRunning = (pid: number, program: string): boolean => {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !isAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(program)
  } catch {
    return false
  }
}

/** Sends `signal` and waits (up to 30 s) until the process is gone. */
export const stopPid = (pid: number, signal: NodeJS.Signals) =>
  Effect.sync(() => process.kill(pid, signal)).pipe(
    Effect.andThen(Effect.sync(() => isAlive(pid)).pipe(
      Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: (alive) => !alive, times: 300 })
    )),
    Effect.asVoid
  )
