/**
 * Visit rollups (issue 14 targets; docs/visits.md "Visit rollups", src/domain/VisitRollups.ts):
 *
 * - `visit_rollups`: per (site, UTC hour of the visit's start, dimension, value) the additive
 *   figures of the human visits — visits, pageviews, events, bounces, duration sum (seconds,
 *   numeric). `dim = 'total'` (value NULL) is the site's total; otherwise one row per value of
 *   each rollup dimension (NULL = unknown). The key's order serves the query "site S, dimension D,
 *   hours in [from, to)".
 * - `visitor_visits`: per (site, daily visitor id) how many visits ever carried it, and the least
 *   / greatest start of those visits. Counts only grow, bounds only widen: a superset of the
 *   visitors that may be counted twice, which is all the API needs to subtract the surplus
 *   exactly (partial index on the repeated ones).
 * - `visits.prev_*`: the writer's upsert copies a visit's previous figures here on every update,
 *   so that the same statement can take the previous version's contribution out of the rollups
 *   (PostgreSQL 15's RETURNING gives only the new row). `prev_dims` holds the previous rollup
 *   dimension values only when the entry changed (NULL: unchanged; the exit page: migration 0013); `prev_vid_changed`
 *   whether the update gave the visit another (lesser) daily visitor id.
 *
 * Backfill: both tables are filled from the stored visits in this migration's transaction, so an
 * install upgrading keeps exact numbers; the writer maintains them from then on.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { BACKFILL_ROLLUPS_SQL, BACKFILL_VISITORS_SQL } from "../src/domain/VisitRollups.ts"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    ALTER TABLE visits
      ADD COLUMN prev_started_at timestamptz,
      ADD COLUMN prev_last_seen_at timestamptz,
      ADD COLUMN prev_pageviews integer,
      ADD COLUMN prev_events integer,
      ADD COLUMN prev_engaged boolean,
      ADD COLUMN prev_is_bot boolean,
      ADD COLUMN prev_vid_changed boolean,
      ADD COLUMN prev_dims text[]`

  yield* sql`
    CREATE TABLE visit_rollups (
      site_id integer NOT NULL,
      dim text NOT NULL,
      hour timestamptz NOT NULL,
      value text,
      visits bigint NOT NULL,
      pageviews bigint NOT NULL,
      events bigint NOT NULL,
      bounces bigint NOT NULL,
      duration numeric NOT NULL
    ) WITH (fillfactor = 70)`
  yield* sql.unsafe(`CREATE UNIQUE INDEX visit_rollups_key ON visit_rollups (site_id, dim, hour, value) NULLS NOT DISTINCT`)

  yield* sql`
    CREATE TABLE visitor_visits (
      site_id integer NOT NULL,
      visitor_id_daily bytea NOT NULL,
      visits integer NOT NULL,
      first_start timestamptz NOT NULL,
      last_start timestamptz NOT NULL,
      PRIMARY KEY (site_id, visitor_id_daily)
    ) WITH (fillfactor = 80)`
  yield* sql`CREATE INDEX visitor_visits_repeated_idx ON visitor_visits (site_id, last_start) WHERE visits > 1`

  // backfill from the stored visits
  yield* sql.unsafe(BACKFILL_ROLLUPS_SQL)
  yield* sql.unsafe(BACKFILL_VISITORS_SQL)
})
