/**
 * Rollup tables leave free space on every page (issue 5, writer throughput).
 *
 * Every writer batch upserts ~1,000 `aggregated_metrics` rows (`value = value + excluded.value`)
 * and a few `daily_metrics` rows; the same hot rows are updated again and again. With full
 * pages (fillfactor 100) the new row version often does not fit on its page, so the update is
 * not HOT: it inserts into the 7-column unique index and leaves index bloat behind. With 30 %
 * free space the updates stay on the page (HOT) and are pruned in place: PostgreSQL CPU for the
 * metrics upsert fell by ~13 % on the writer benchmark (bench/README.md, "Writer (issue 5)").
 *
 * Only a storage parameter: no rewrite, a brief lock. Pages written from now on use it
 * (existing pages keep their layout until rewritten, e.g. by VACUUM FULL); new buckets always
 * land on new pages, so an existing install converges as it ingests.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE aggregated_metrics SET (fillfactor = 70)`
  yield* sql`ALTER TABLE daily_metrics SET (fillfactor = 70)`
})
