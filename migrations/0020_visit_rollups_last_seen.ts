/**
 * The visit rollups' total and bots rows keep the latest last event of their visits (issue 17,
 * the dashboard's Events page under a filter; docs/visits.md "Visit rollups"):
 * `visit_rollups.last_seen`, per site and UTC hour of the visits' start — at least the greatest
 * `last_seen_at` of the hour's human visits (the `total` row) or bot visits (the `bots` row).
 *
 * A query over the events of a period's visits reads the events from the period's start to its
 * visits' last event (StatsSql.ts): that bound was `max(last_seen_at)` over the period's visits —
 * a scan of every visit row of the period, since `last_seen_at` changes with nearly every event
 * and is in no index (0.25–0.7 s over 30 days of the 10M data set's largest site, before the
 * events were read at all). Now it is the maximum of a few hundred rollup rows.
 *
 * The writer keeps it (PgSinkStatements.ts, `UPSERT_VISIT_ROLLUPS`: the greatest value sent,
 * from each changed visit's last event). It is an upper bound, exact while no visit moves: a
 * visit whose start moves to another hour, or that turns out to be a bot's, leaves its last event
 * in the old row's bound — the query then reads a few more events than it needs, never fewer.
 * The daily rows have no bound (the hourly rows of a period answer it).
 *
 * Backfill: from the stored visits, in this migration's transaction. A writer of an older version
 * still running afterwards writes rows without it — an event query then misses those visits'
 * later events: stop older writers first (docs/operations.md "Upgrading").
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { BACKFILL_LAST_SEEN_SQL } from "../src/domain/VisitRollups.ts"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`ALTER TABLE visit_rollups ADD COLUMN last_seen timestamptz`)
  yield* sql.unsafe(BACKFILL_LAST_SEEN_SQL)
})
