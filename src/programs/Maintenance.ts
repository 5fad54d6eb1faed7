/**
 * Maintenance (SPEC §6–7): partitions created ahead, expired partitions dropped, visitor
 * salts older than the spool horizon deleted (after that a visitor id is unrecoverable).
 * Run hourly by the writer and on demand by `spoolway retention` / `spoolway salts rotate`.
 */
import { Effect } from "effect"
import { Salts } from "../layers/Salts.ts"
import { applyRetention, ensurePartitionsAround, type RetentionResult, utcDay } from "./Partitions.ts"

export interface MaintenanceResult extends RetentionResult {
  readonly createdPartitions: number
  readonly purgedSalts: number
}

export const runMaintenance = Effect.fn("runMaintenance")(function*(options: {
  readonly nowMs: number
  readonly retentionDays: number
  readonly saltKeepDays: number
}) {
  const createdPartitions = yield* ensurePartitionsAround(options.nowMs, 7)
  if (createdPartitions > 0) yield* Effect.logInfo(`created ${createdPartitions} raw_events partition(s)`)
  const retention = yield* applyRetention({ nowMs: options.nowMs, retentionDays: options.retentionDays })
  const purgedSalts = yield* rotateSalts(options.nowMs, options.saltKeepDays).pipe(Effect.map((r) => r.purged))
  return { ...retention, createdPartitions, purgedSalts } satisfies MaintenanceResult
})

/** Makes sure today's salt exists and deletes the salts older than `keepDays`. */
export const rotateSalts = Effect.fn("rotateSalts")(function*(nowMs: number, keepDays: number) {
  const salts = yield* Salts
  const today = utcDay(nowMs)
  yield* salts.saltFor(today)
  const purged = yield* salts.purge(today, keepDays)
  return { today, purged }
})
