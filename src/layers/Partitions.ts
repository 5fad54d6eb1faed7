/**
 * Maintenance of the `raw_events` partitions (docs/operations.md, retention) and of the other
 * time-bound tables of the PostgreSQL store.
 *
 * - {@link ensurePartitions}: daily partitions `raw_events_pYYYYMMDD` for [fromDay, fromDay +
 *   days), via the SQL function of migration 0001 (idempotent, safe to call concurrently; rows
 *   that had fallen into the DEFAULT partition are moved). The PostgreSQL sink calls it when the
 *   writer starts, for yesterday … +7 days, and then every hour ({@link maintainPartitions}).
 * - {@link applyRetention}: drops daily partitions that end before `now − retentionDays`,
 *   deletes expired rows that sit in the DEFAULT partition, and prunes the visitor seen-set
 *   and the visitors' latest sessions (`visitor_sessions`) older than 7 days.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { DAY_MS, utcDay } from "../domain/Time.ts"

/** Creates the missing daily partitions; returns how many were created. */
export const ensurePartitions = Effect.fn("ensurePartitions")(function*(fromDay: string, days: number) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly created: number }>`
    SELECT spoolway_ensure_raw_event_partitions(${fromDay}::date, ${days}::integer) AS created`
  return rows[0]?.created ?? 0
})

/** Partitions for yesterday … today + `ahead` days, relative to `nowMs`. */
export const ensurePartitionsAround = (nowMs: number, ahead = 7) => ensurePartitions(utcDay(nowMs - DAY_MS), ahead + 2)

export interface RetentionResult {
  readonly droppedPartitions: ReadonlyArray<string>
  readonly deletedDefaultRows: number
  readonly deletedSeenRows: number
  /** `visitor_sessions` rows (server-side session assignment) last seen before the seen-set cutoff */
  readonly deletedVisitorSessions: number
}

/**
 * Drops `raw_events` partitions whose whole day is older than `retentionDays` before `nowMs`,
 * deletes older rows from the DEFAULT partition, and prunes `visitor_seen` rows older than
 * `seenDays` (default 7: a late, spooled event for an older day could only be counted twice
 * as a unique visitor after that).
 */
export const applyRetention = Effect.fn("applyRetention")(function*(options: {
  readonly nowMs: number
  readonly retentionDays: number
  readonly seenDays?: number
}) {
  const sql = yield* SqlClient.SqlClient
  const cutoffDay = utcDay(options.nowMs - options.retentionDays * DAY_MS)
  const cutoff = `${cutoffDay}T00:00:00Z`
  const partitions = yield* sql<{ readonly name: string }>`
    SELECT c.relname AS name
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'raw_events'::regclass AND c.relname ~ '^raw_events_p[0-9]{8}$'`
  const compact = cutoffDay.replaceAll("-", "")
  const expired = partitions.map((p) => p.name).filter((name) => name.slice("raw_events_p".length) < compact).sort()
  for (const name of expired) {
    yield* sql.unsafe(`DROP TABLE IF EXISTS "${name}"`)
  }
  const deletedDefault = yield* sql<{ readonly n: number }>`
    WITH d AS (DELETE FROM raw_events_default WHERE received_at < ${cutoff}::timestamptz RETURNING 1)
    SELECT count(*)::int AS n FROM d`
  const seenCutoff = `${utcDay(options.nowMs - (options.seenDays ?? 7) * DAY_MS)}T00:00:00Z`
  const deletedSeen = yield* sql<{ readonly n: number }>`
    WITH d AS (DELETE FROM visitor_seen WHERE bucket_start < ${seenCutoff}::timestamptz RETURNING 1)
    SELECT count(*)::int AS n FROM d`
  // a visitor's daily id only recurs on its own (receivedAt) day: its latest session is needed
  // as long as late, spooled events of that day may still arrive — the seen-set's horizon
  const deletedSessions = yield* sql<{ readonly n: number }>`
    WITH d AS (DELETE FROM visitor_sessions WHERE last_seen_at < ${seenCutoff}::timestamptz RETURNING 1)
    SELECT count(*)::int AS n FROM d`
  if (expired.length > 0) yield* Effect.logInfo(`retention: dropped partitions ${expired.join(", ")}`)
  return {
    droppedPartitions: expired,
    deletedDefaultRows: deletedDefault[0]?.n ?? 0,
    deletedSeenRows: deletedSeen[0]?.n ?? 0,
    deletedVisitorSessions: deletedSessions[0]?.n ?? 0
  } satisfies RetentionResult
})

export interface PartitionMaintenance extends RetentionResult {
  readonly createdPartitions: number
}

/** Partitions ahead (yesterday … +7 days), then retention: the store's hourly maintenance. */
export const maintainPartitions = Effect.fn("maintainPartitions")(function*(options: {
  readonly nowMs: number
  readonly retentionDays: number
}) {
  const createdPartitions = yield* ensurePartitionsAround(options.nowMs, 7)
  if (createdPartitions > 0) yield* Effect.logInfo(`created ${createdPartitions} raw_events partition(s)`)
  const retention = yield* applyRetention({ nowMs: options.nowMs, retentionDays: options.retentionDays })
  return { ...retention, createdPartitions } satisfies PartitionMaintenance
})
