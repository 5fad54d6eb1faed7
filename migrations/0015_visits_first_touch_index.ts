/**
 * The visits' start index carries every first-touch dimension (issue 17, switching a filter on
 * the dashboard): `visits_site_started_idx` becomes `(site_id, started_at) INCLUDE (is_bot,
 * <every visit dimension but the exit page>)`. With a filter, a breakdown names two dimensions
 * (the Traffic page's referrers and campaigns filtered by a source, the Audience page's cities
 * filtered by a country…), which the rollups do not keep: such a query read every visit row of
 * the period from the heap (0.4–0.5 s each over 30 days of the 10M data set's largest site); it
 * is now an index-only scan (≈ 0.14 s), as one many-valued dimension already was (0011).
 *
 * As in 0011, only columns a visit keeps once its entry is known: the writer's updates change
 * none of them unless an earlier event moves the entry, so they stay HOT. The exit page, the
 * counts and the engagement change with most events and stay out. The index is about the size of
 * 0011's (400 MB on the 10M data set: its entries are wider, but freshly built).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * The columns the start index carries (besides its key), in order: every visit dimension of the
 * query API at this migration (StatsQuery.ts `VISIT_DIMENSIONS`) but the exit page — written out,
 * so that this migration builds the same index whatever that list becomes.
 */
export const VISITS_STARTED_INCLUDE = [
  "is_bot",
  "source",
  "referrer",
  "utm_source",
  "utm_medium",
  "utm_campaign",
  "utm_content",
  "utm_term",
  "device",
  "browser",
  "browser_version",
  "os",
  "os_version",
  "country",
  "region",
  "city",
  "language",
  "asn",
  "org",
  "org_type",
  "entry_page"
] as const

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`DROP INDEX visits_site_started_idx`)
  yield* sql.unsafe(`CREATE INDEX visits_site_started_idx ON visits (site_id, started_at) INCLUDE (${VISITS_STARTED_INCLUDE.join(", ")})`)
})
