/**
 * The visits' start index carries the session id too (issue 17, a filter on a page): with a
 * filter on a page or an event type, a breakdown by a visit dimension reads the visits of the
 * period that have the value — a semi-join of the period's visits with `visit_items` on the
 * session id (StatsSql.ts, the `having` path). Without the session id in the start index that
 * read every visit row from the heap: a sequential scan of the whole table (1.1 GB on the 10M
 * data set, 0.5–0.7 s a query over 30 days of its largest site, filtered by its top page); with
 * it, it is an index-only scan (0.28–0.37 s, the rest being the page's sessions from the
 * value index). A session id never changes, so the writer's updates stay HOT.
 *
 * Rebuilt as 0015 left it, the session id added: the list is 0015's own (a migration's, never
 * changed), so this one builds the same index whatever the query API's dimensions become.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { VISITS_STARTED_INCLUDE as FIRST_TOUCH_INCLUDE } from "./0015_visits_first_touch_index.ts"

/** 0015's columns (frozen with that migration), the session id after `is_bot`. */
const VISITS_STARTED_INCLUDE = ["is_bot", "session_id", ...FIRST_TOUCH_INCLUDE.filter((c) => c !== "is_bot")] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DROP INDEX visits_site_started_idx`)
  yield* sql.unsafe(`CREATE INDEX visits_site_started_idx ON visits (site_id, started_at) INCLUDE (${VISITS_STARTED_INCLUDE.join(", ")})`)
})
