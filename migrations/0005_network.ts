/**
 * Network enrichment (issue 15, docs/network.md): what kind of network a session came from,
 * looked up by the writer from the visitor's IP (which is still never stored).
 *
 * - `session_fingerprints`: the network of the session's first-touch view (first touch wins,
 *   like geo).
 * - `visits`: the same columns, from the visit's first-touch event.
 * - `sites.datacenter_traffic`: what a site does with traffic from hosting / VPN networks —
 *   `count` (like any traffic), `flag` (default: stored with the flags, filterable) or
 *   `exclude` (counted as bot events, `is_bot`).
 *
 * Every column is nullable and added without a default, so the ALTERs touch no row.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

const NETWORK_COLUMNS = `
  ADD COLUMN asn bigint,
  ADD COLUMN org text,
  ADD COLUMN org_type text,
  ADD COLUMN is_datacenter boolean,
  ADD COLUMN is_vpn boolean,
  ADD COLUMN is_government boolean,
  ADD COLUMN is_tor boolean,
  ADD COLUMN proxy_type text,
  ADD COLUMN response_tier text`

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql.unsafe(`ALTER TABLE session_fingerprints ${NETWORK_COLUMNS}`)
  yield* sql.unsafe(`ALTER TABLE visits ${NETWORK_COLUMNS}`)
  yield* sql`
    ALTER TABLE sites ADD COLUMN datacenter_traffic text NOT NULL DEFAULT 'flag'
      CHECK (datacenter_traffic IN ('count', 'flag', 'exclude'))`
})
