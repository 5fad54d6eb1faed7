/**
 * Entry and exit pages in the visit rollups (issue 17, the dashboard's Pages page; docs/visits.md
 * "Visit rollups", src/domain/VisitRollups.ts): their breakdowns read every visit row of the
 * period before (0.4–0.8 s each over 30 days of the 10M data set).
 *
 * - `visits.prev_exit_page`: the writer's upsert copies a visit's previous exit page here on every
 *   update, so that the same statement can move the visit from its old exit page's rollup row to
 *   the new one's (as `prev_dims` does for the first-touch values; PostgreSQL 15's RETURNING gives
 *   only the new row).
 * - Backfill: the two dimensions' hourly and daily rows from the stored visits, in this
 *   migration's transaction (any rows of theirs are replaced: an install that ran 0008 / 0009 with
 *   this code already has them).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { dailyRollupsOfVisitsSql, rollupsOfVisitsSql } from "../src/domain/VisitRollups.ts"

const PAGES = ["entry_page", "exit_page"] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE visits ADD COLUMN prev_exit_page text`
  yield* sql`DELETE FROM visit_rollups WHERE dim IN ('entry_page', 'exit_page')`
  yield* sql`DELETE FROM visit_rollups_daily WHERE dim IN ('entry_page', 'exit_page')`
  yield* sql.unsafe(`
    INSERT INTO visit_rollups (site_id, dim, hour, value, visits, pageviews, events, bounces, duration)
    ${rollupsOfVisitsSql(PAGES)}`)
  yield* sql.unsafe(`
    INSERT INTO visit_rollups_daily (site_id, dim, day, value, visits, pageviews, events, bounces, duration)
    ${dailyRollupsOfVisitsSql(PAGES)}`)
})
