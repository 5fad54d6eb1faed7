/**
 * The visit contents carry their visit's start hour (issue 17, filtering the dashboard by a page
 * or an event type; docs/visits.md "Visit contents"): `visit_items.hour`, the UTC hour of the
 * visit's start — the hour its item rollups count it in — and the contents' value index becomes
 * `(site_id, dim, value, hour) INCLUDE (session_id)`.
 *
 * A query filtered by a page with visit figures (the Pages page's entry and exit pages, the
 * Overview's bounce rate and duration under a page filter: StatsSql.ts, the visits path with
 * `having`) asks for the visits of the period that had the page. Without the hour the value index
 * gave every visit of the site that ever had it, all periods together, so the period's visits
 * were all read and matched against them; with it, the index gives the period's visits with
 * the page, and those visits alone are read (docs/api.md "How the numbers are computed").
 *
 * The writer keeps it (PgSinkStatements.ts): new items get their visit's hour as the visits
 * statement just stored it; when that statement moves a visit's start to another hour (an
 * earlier event arrived late), the visit's stored items move with it first (`MOVE_VISIT_ITEMS_HOUR`).
 *
 * Backfill: the table is rebuilt with the column filled from the visits (one pass, then the two
 * indexes built in bulk), in this migration's transaction. A writer of an older version still
 * running afterwards fails on the new column (it writes no hour): its batches fail, are retried
 * and split, and end in `ingest_failures`, from where `spoolway replay-failures` brings them back
 * once a current writer runs — stop older writers first (docs/operations.md "Upgrading").
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { withVisitHourSql } from "../src/domain/VisitItems.ts"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // the same columns (0010) and storage settings (0010, 0014), the hour last
  yield* sql.unsafe(`
    CREATE TABLE visit_items_next (LIKE visit_items INCLUDING ALL EXCLUDING INDEXES, hour timestamptz NOT NULL)
    WITH (fillfactor = 90, autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02)`)
  yield* sql.unsafe(`INSERT INTO visit_items_next ${withVisitHourSql("SELECT * FROM visit_items")}`)
  yield* sql.unsafe(`DROP TABLE visit_items`)
  yield* sql.unsafe(`ALTER TABLE visit_items_next RENAME TO visit_items`)
  yield* sql.unsafe(`CREATE UNIQUE INDEX visit_items_key ON visit_items (site_id, session_id, dim, value) NULLS NOT DISTINCT`)
  yield* sql.unsafe(`CREATE INDEX visit_items_value_idx ON visit_items (site_id, dim, value, hour) INCLUDE (session_id)`)
  yield* sql.unsafe(`ANALYZE visit_items`)
})
