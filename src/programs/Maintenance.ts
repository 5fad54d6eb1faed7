/**
 * Maintenance (docs/operations.md, retention and salts): partitions created ahead, expired
 * partitions dropped, visitor salts older than the spool horizon deleted (after that a visitor
 * id is unrecoverable). Run on demand by `spoolway retention` / `spoolway salts rotate`; the
 * writer runs the same steps hourly (its sink's `maintain`, then `rotateSalts`).
 */
import { Effect } from "effect"
import { utcDay } from "../domain/Time.ts"
import { maintainPartitions, type PartitionMaintenance } from "../layers/Partitions.ts"
import { Salts } from "../layers/Salts.ts"

export interface MaintenanceResult extends PartitionMaintenance {
  readonly purgedSalts: number
}

export const runMaintenance = Effect.fn("runMaintenance")(function*(options: {
  readonly nowMs: number
  readonly retentionDays: number
  readonly saltKeepDays: number
}) {
  const partitions = yield* maintainPartitions({ nowMs: options.nowMs, retentionDays: options.retentionDays })
  const purgedSalts = yield* rotateSalts(options.nowMs, options.saltKeepDays).pipe(Effect.map((r) => r.purged))
  return { ...partitions, purgedSalts } satisfies MaintenanceResult
})

/** Makes sure today's salt exists and deletes the salts older than `keepDays`. */
export const rotateSalts = Effect.fn("rotateSalts")(function*(nowMs: number, keepDays: number) {
  const salts = yield* Salts
  const today = utcDay(nowMs)
  yield* salts.saltFor(today)
  const purged = yield* salts.purge(today, keepDays)
  return { today, purged }
})
