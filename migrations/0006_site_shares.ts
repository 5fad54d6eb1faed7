/**
 * View-only share links of a site's dashboard (issue 17): `spoolway sites share <hostname>`
 * makes one, `spoolway sites share revoke` ends it. A link carries a random token
 * (`sw_shr_…`, src/domain/Site.ts); only its hex SHA-256 digest is stored, like the keys. A
 * token reads the site's data through the query API (query and funnel endpoints) and nothing
 * else. Revoked rows are kept (who shared what, when) with `revoked_at` set; a site's shares go
 * with the site (purge).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE site_shares (
      id serial PRIMARY KEY,
      site_id integer NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
      token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
      label text,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz
    )`
  yield* sql`CREATE INDEX site_shares_site_idx ON site_shares (site_id)`
})
