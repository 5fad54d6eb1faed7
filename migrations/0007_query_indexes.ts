/**
 * The stats query API (issue 14): the page path and host of an event's page URL as SQL
 * functions, so that queries group and filter by them the same way everywhere (docs/api.md,
 * "Stats query API"). Both are single-expression SQL functions (inlined by the planner) and
 * IMMUTABLE, so an expression index may use them.
 *
 * - `spoolway_page_path(url)`: the path without query and fragment — of a site-relative URL
 *   (`/pricing?x=1` → `/pricing`) or of an absolute one (`https://a.example/pricing#top` →
 *   `/pricing`, no path → `/`); NULL for anything else (a content id, an empty string). The same
 *   rule as the writer's `pagePath` (src/domain/Rollups.ts) for the URLs browsers send (it does
 *   not decode or normalise percent-escapes or dot segments as WHATWG URL parsing does).
 * - `spoolway_url_host(url)`: the lower-case host of an absolute URL (no userinfo, no port),
 *   else NULL.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  // string functions only (no regular expressions): they run once per scanned event
  const rest = "split_part(split_part(substr(url, strpos(url, '://') + 3), '#', 1), '?', 1)"
  yield* sql.unsafe(`
    CREATE FUNCTION spoolway_page_path(url text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
      SELECT CASE
        WHEN url LIKE '/%' THEN split_part(split_part(url, '?', 1), '#', 1)
        WHEN strpos(url, '://') > 0 THEN coalesce(substr(${rest}, nullif(strpos(${rest}, '/'), 0)), '/')
      END
    $fn$`)

  yield* sql.unsafe(`
    CREATE FUNCTION spoolway_url_host(url text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
      SELECT CASE WHEN strpos(url, '://') > 0 THEN
        lower(split_part(split_part(split_part(split_part(split_part(substr(url, strpos(url, '://') + 3), '/', 1), '?', 1), '#', 1), '@', -1), ':', 1))
      END
    $fn$`)
})
