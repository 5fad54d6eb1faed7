/**
 * Sites (issue 13): first-class tenants with hostnames, origins, a timezone and two keys.
 *
 * - A site's id IS the `domains.id` of its primary hostname, so every table keyed by
 *   `domain_id` (raw_events, rollups, fingerprints, …) is per site without a new column.
 * - Aliases (`www.example.com`) are `domains` rows with `role = 'alias'`; `domains.site_id`
 *   names the site a hostname belongs to (its own id for a primary row, the primary's id for an
 *   alias, NULL for a domain registered without a site). The writer's tenant lookup maps every
 *   hostname to `coalesce(site_id, id)`, so an alias's events land on the site's id.
 *   `domains.hostname` stays unique: no hostname belongs to two sites.
 * - Keys are stored as hex SHA-256 digests only (src/domain/Site.ts). A rotated-out key keeps
 *   working until `*_prev_expires_at` (grace period).
 * - `site_registry.version` grows with every change made through `spoolway sites`; the
 *   snapshot published to the primary Redis carries it, so a stale publisher never replaces a
 *   newer snapshot.
 * Existing `domains` rows get no site: open mode stays until the first `spoolway sites add`
 * (which adopts an existing domain row of the same hostname, keeping its data).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`ALTER TABLE domains ADD COLUMN site_id integer REFERENCES domains (id) ON DELETE CASCADE`
  yield* sql`CREATE INDEX domains_site_idx ON domains (site_id)`

  yield* sql`
    CREATE TABLE sites (
      id integer PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
      timezone text NOT NULL DEFAULT 'UTC',
      -- explicit allowed origins; NULL = every hostname of the site over http(s)
      origins text[],
      write_key_hash text NOT NULL UNIQUE CHECK (length(write_key_hash) = 64),
      write_key_prev_hash text CHECK (length(write_key_prev_hash) = 64),
      write_key_prev_expires_at timestamptz,
      server_key_hash text NOT NULL UNIQUE CHECK (length(server_key_hash) = 64),
      server_key_prev_hash text CHECK (length(server_key_prev_hash) = 64),
      server_key_prev_expires_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      removed_at timestamptz,
      CHECK ((write_key_prev_hash IS NULL) = (write_key_prev_expires_at IS NULL)),
      CHECK ((server_key_prev_hash IS NULL) = (server_key_prev_expires_at IS NULL))
    )`
  // server-key authentication (stats API) looks a key up by its digest, current or previous
  yield* sql`CREATE INDEX sites_server_key_prev_idx ON sites (server_key_prev_hash) WHERE server_key_prev_hash IS NOT NULL`

  yield* sql`
    CREATE TABLE site_registry (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      version bigint NOT NULL
    )`
  yield* sql`INSERT INTO site_registry (version) VALUES (0)`
})
