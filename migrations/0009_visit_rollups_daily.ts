/**
 * Daily visit rollups (docs/visits.md "Visit rollups"): the hourly `visit_rollups` (migration
 * 0008) summed per UTC day, kept by the writer in the same statement (PgSinkStatements.ts,
 * `UPSERT_VISITS`). A breakdown over 30 days then reads the whole UTC days of its range here —
 * 30 rows per value instead of 720 — and only the hours at its ends (a site-local midnight is
 * not a UTC one) from the hourly table. Same columns and rules as `visit_rollups`.
 *
 * Backfill: filled from the stored visits in this migration's transaction.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { BACKFILL_DAILY_ROLLUPS_SQL } from "../src/domain/VisitRollups.ts"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE visit_rollups_daily (
      site_id integer NOT NULL,
      dim text NOT NULL,
      day date NOT NULL,
      value text,
      visits bigint NOT NULL,
      pageviews bigint NOT NULL,
      events bigint NOT NULL,
      bounces bigint NOT NULL,
      duration numeric NOT NULL
    ) WITH (fillfactor = 70)`
  yield* sql.unsafe(`CREATE UNIQUE INDEX visit_rollups_daily_key ON visit_rollups_daily (site_id, dim, day, value) NULLS NOT DISTINCT`)
  yield* sql.unsafe(BACKFILL_DAILY_ROLLUPS_SQL)
})
