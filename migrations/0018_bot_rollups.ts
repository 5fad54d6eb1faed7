/**
 * The bot visits in the visit rollups (issue 17, the dashboard's Network page; docs/visits.md
 * "Visit rollups", src/domain/VisitRollups.ts `BOTS_DIMENSION`): per site and UTC hour / day of
 * the visit's start, the bot visits' visits, pageviews and events, kept by the writer's visits
 * statement like the site's totals. "Bot events" over 30 days read each bot visit's row before
 * (0.3–0.4 s on the 10M data set's largest site: ten thousand visits on as many heap pages,
 * which their partial index, 0012, finds but cannot answer); now a few hundred rollup rows.
 *
 * Backfill: the rows from the stored visits, in this migration's transaction (any rows of the
 * dimension are replaced: an install that ran 0008 / 0009 with this code already has them).
 * Like the other rollup backfills (0008, 0009, 0013) it counts the visits stored when it runs:
 * writers of an older version still running meanwhile would not count their bot visits here
 * (docs/operations.md "Upgrading": stop them first).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { BOT_ROLLUPS_OF_VISITS_SQL, BOTS_DIMENSION, DAILY_BOT_ROLLUPS_OF_VISITS_SQL } from "../src/domain/VisitRollups.ts"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DELETE FROM visit_rollups WHERE dim = '${BOTS_DIMENSION}'`)
  yield* sql.unsafe(`DELETE FROM visit_rollups_daily WHERE dim = '${BOTS_DIMENSION}'`)
  yield* sql.unsafe(`
    INSERT INTO visit_rollups (site_id, dim, hour, value, visits, pageviews, events, bounces, duration)
    ${BOT_ROLLUPS_OF_VISITS_SQL}`)
  yield* sql.unsafe(`
    INSERT INTO visit_rollups_daily (site_id, dim, day, value, visits, pageviews, events, bounces, duration)
    ${DAILY_BOT_ROLLUPS_OF_VISITS_SQL}`)
})
