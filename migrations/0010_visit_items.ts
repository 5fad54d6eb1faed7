/**
 * Visit contents (issue 14 targets; docs/visits.md "Visit contents", src/domain/VisitItems.ts):
 *
 * - `visit_items`: per (site, session, content dimension, value) the visit's pageviews, events,
 *   conversions and revenue with that value (`page`, `event_type`; NULL value =
 *   none). Its key serves "the items of these visits" (the writer's moves, the query API's joins).
 * - `item_rollups` / `item_rollups_daily`: per (site, dim, UTC hour / day of the visit's start,
 *   value) the human visits that had the value and their figures with it.
 * - `visits.conversions`, `visits.revenue`: the visit's conversion events and their values.
 *
 * Backfill: everything is computed from the stored events and visits in this migration's
 * transaction (one pass over `raw_events`), so an install upgrading keeps exact numbers; the
 * writer maintains it from then on.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { backfillItemsSql } from "../src/domain/VisitItems.ts"

const ROLLUP_COLUMNS = `
      visits bigint NOT NULL,
      pageviews bigint NOT NULL,
      events bigint NOT NULL,
      conversions bigint NOT NULL,
      revenue numeric NOT NULL`

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`ALTER TABLE visits ADD COLUMN conversions integer NOT NULL DEFAULT 0, ADD COLUMN revenue numeric NOT NULL DEFAULT 0`

  yield* sql`
    CREATE TABLE visit_items (
      site_id integer NOT NULL,
      session_id text NOT NULL,
      dim text NOT NULL,
      value text,
      pageviews integer NOT NULL,
      events integer NOT NULL,
      conversions integer NOT NULL,
      revenue numeric NOT NULL
    ) WITH (fillfactor = 90)`

  yield* sql.unsafe(`
    CREATE TABLE item_rollups (
      site_id integer NOT NULL,
      dim text NOT NULL,
      hour timestamptz NOT NULL,
      value text,${ROLLUP_COLUMNS}
    ) WITH (fillfactor = 70)`)
  yield* sql.unsafe(`
    CREATE TABLE item_rollups_daily (
      site_id integer NOT NULL,
      dim text NOT NULL,
      day date NOT NULL,
      value text,${ROLLUP_COLUMNS}
    ) WITH (fillfactor = 70)`)

  // backfill (before the rollups' indexes: one bulk build each; the items' key first, the rollups join by it)
  // (the table has no start hours yet: 0019 adds them)
  const [items, conversions, rollups, daily] = backfillItemsSql({ hours: false })
  yield* sql.unsafe(items!)
  yield* sql.unsafe(`CREATE UNIQUE INDEX visit_items_key ON visit_items (site_id, session_id, dim, value) NULLS NOT DISTINCT`)
  yield* sql.unsafe(conversions!)
  yield* sql.unsafe(rollups!)
  yield* sql.unsafe(daily!)
  yield* sql.unsafe(`CREATE UNIQUE INDEX item_rollups_key ON item_rollups (site_id, dim, hour, value) NULLS NOT DISTINCT`)
  yield* sql.unsafe(`CREATE UNIQUE INDEX item_rollups_daily_key ON item_rollups_daily (site_id, dim, day, value) NULLS NOT DISTINCT`)
})
