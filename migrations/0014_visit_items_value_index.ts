/**
 * The visit contents by value (issue 17, filtering the dashboard by a page or an event type):
 * `visit_items_value_idx` on `(site_id, dim, value) INCLUDE (session_id)`. A query with a filter on
 * a page and visit figures by visit dimensions (the Pages page's entry and exit pages filtered by
 * a page) asks for the visits of the period that have a matching item (StatsSql.ts, the visits
 * path with `having`): this index gives the matching items' visits at once (an index-only scan),
 * to hash-join with the period's visits, instead of one probe of `visit_items_key` per visit of
 * the period (3.2 s for the top page over 30 days of the 10M data set's largest site).
 *
 * The columns never change once a row is stored, so the writer's updates of an item's counts stay
 * HOT; a new (visit, value) pair costs one more index entry. Index-only scans need the visibility
 * map: `visit_items` is vacuumed after 2 % of inserts or updates, as `visits` is (0011).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE INDEX visit_items_value_idx ON visit_items (site_id, dim, value) INCLUDE (session_id)`)
  yield* sql.unsafe(`ALTER TABLE visit_items SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02)`)
})
