/**
 * The bot visits' own start index (issue 17, the dashboard's Network page): `bot_events` alone
 * reads the bot visits of the period (StatsSql.ts, the visits path with `v.is_bot`; the API asks
 * for them apart from the human metrics, Stats.ts `runInput`) instead of every visit of the
 * period. Partial: only bot visits (≈ 3 % of them) have an entry, so the writer maintains it
 * for those alone.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE INDEX visits_site_started_bots_idx ON visits (site_id, started_at) WHERE is_bot`)
})
