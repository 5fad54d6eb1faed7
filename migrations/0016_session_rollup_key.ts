/**
 * A session's count in the rollups follows its first touch (docs/architecture.md, Rollups): the
 * writer counts a new session in `aggregated_metrics` (`sessions`, by its landing dimensions)
 * and `daily_metrics` with its first view. When an earlier view takes the first touch over later
 * (a late spool drain, or the session's views in transactions written at once), that count used
 * to stay with the previous view's hour and landing values.
 *
 * - `session_fingerprints.rollup_key`: what was counted for the session (domain/Rollups.ts,
 *   `sessionRollupKey`), set with the first touch;
 * - `session_fingerprints.prev_rollup_key`: the upsert copies the previous key here when an
 *   earlier view takes over (NULL on any other update), so the writer, given it back by the same
 *   statement, moves the count (PostgreSQL 15's RETURNING gives only the new row).
 *
 * Sessions stored before this migration have no key: a takeover of theirs leaves the count where
 * it is, as before. Adding nullable columns rewrites nothing.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`ALTER TABLE session_fingerprints ADD COLUMN rollup_key text, ADD COLUMN prev_rollup_key text`)
})
