/**
 * The visits' start index carries the many-valued first-touch dimensions (issue 17, the
 * dashboard's breakdowns on 30 days of a large site): `visits_site_started_idx` becomes
 * `(site_id, started_at) INCLUDE (is_bot, referrer, region, city, org, asn)`, so a breakdown by
 * one of them (the Traffic page's referrers, the Audience page's regions and cities, the Network
 * page's organisations and ASNs — dimensions the visit rollups do not keep) is an index-only scan
 * plus a hashed count (StatsSql.ts, `visitorsBySurplus`) instead of a fetch of every visit row of
 * the period from the heap.
 *
 * Only columns a visit keeps once its entry is known: an update that changes none of an index's
 * columns stays a HOT update (no new index entries), and these change only when an earlier event
 * moves the entry — the writer's statement otherwise keeps them as stored. Counts, exit page,
 * engagement (which change with most events) are left out for that reason; entry and exit pages
 * and bounce rates still read the visit rows.
 *
 * The old index is replaced (same name, same key order) rather than joined by a second one: the
 * writer maintains one index on `started_at`, as before, with wider entries.
 *
 * An index-only scan skips the heap only on pages the visibility map marks all-visible, which
 * (auto)vacuum sets: by default a table is vacuumed after 20 % of its rows changed — days of
 * visits on a large install, all read from the heap meanwhile. `visits` is vacuumed after 2 % of
 * inserts or updates instead (a vacuum reads only the pages changed since the last one).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/** The columns the start index carries (besides its key), in order. */
const VISITS_STARTED_INCLUDE = ["is_bot", "referrer", "region", "city", "org", "asn"] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DROP INDEX visits_site_started_idx`)
  yield* sql.unsafe(`CREATE INDEX visits_site_started_idx ON visits (site_id, started_at) INCLUDE (${VISITS_STARTED_INCLUDE.join(", ")})`)
  yield* sql.unsafe(`ALTER TABLE visits SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02)`)
})
