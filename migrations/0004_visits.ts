/**
 * Visits (issue 14): one row per session of a site, kept by the writer in the same transaction
 * as `raw_events` and the rollups, from newly inserted rows only (so redelivery changes nothing).
 *
 * Every column is maintained by a commutative merge, so the row is the same whatever order the
 * events of a session arrive in and however many writer transactions touch it concurrently:
 * - `started_at` / `last_seen_at`: least / greatest event time;
 * - `pageviews`, `events`: sums; `engaged`: or;
 * - `entry_page` is the page of the earliest page view (`entry_at`), `exit_page` the page of the
 *   latest (`exit_at`); ties broken by the page text (then, for the entry, by its event id,
 *   `entry_event_id`) so the result is order-free;
 * - the first-touch dimensions (hostname, source, referrer, UTM, device, browser, OS, geo,
 *   language) come from that entry view (only views carry them), same tie rule;
 * - `visitor_id_daily`: the least of the session's daily visitor ids;
 * - `is_bot`: or (a session seen once as a bot is a bot's).
 * Event time is the edge `receivedAt` (as the rollups); `engaged` = any non-view event; the
 * writer side is documented in docs/visits.md.
 * Derived: bounce = `pageviews <= 1 AND NOT engaged`; duration = `last_seen_at - started_at`.
 *
 * Only events of a known site (`raw_events.domain_id` not NULL) get a visit.
 *
 * `visitor_sessions` carries the server-side session assignment (events sent without a
 * sessionId): the latest session per (site, daily visitor id) and its last event time.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE visits (
      site_id integer NOT NULL,
      session_id text NOT NULL,
      visitor_id_daily bytea,
      started_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL,
      pageviews integer NOT NULL DEFAULT 0,
      events integer NOT NULL DEFAULT 0,
      engaged boolean NOT NULL DEFAULT false,
      is_bot boolean NOT NULL DEFAULT false,
      entry_page text,
      entry_at timestamptz,
      entry_event_id uuid,
      exit_page text,
      exit_at timestamptz,
      hostname text,
      source text,
      referrer text,
      utm_source text,
      utm_medium text,
      utm_campaign text,
      utm_content text,
      utm_term text,
      device text,
      browser text,
      browser_version text,
      os text,
      os_version text,
      country text,
      region text,
      city text,
      language text,
      PRIMARY KEY (site_id, session_id)
    ) WITH (fillfactor = 80)`
  // the query API's time-range scans per site
  yield* sql`CREATE INDEX visits_site_started_idx ON visits (site_id, started_at)`
  // the writer's server-side session assignment: a visitor's earlier sessions (late events)
  yield* sql`CREATE INDEX visits_site_visitor_idx ON visits (site_id, visitor_id_daily)`

  yield* sql`
    CREATE TABLE visitor_sessions (
      site_id integer NOT NULL,
      visitor_id_daily bytea NOT NULL,
      session_id text NOT NULL,
      started_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL,
      PRIMARY KEY (site_id, visitor_id_daily)
    )`
})
