/**
 * Visit rollups (docs/visits.md "Visit rollups", issue 14 targets): per site, UTC hour of the
 * visit's start and one first-touch dimension value, the additive figures of its human visits —
 * visits, pageviews, events, bounces and the sum of durations — so that the stats query API reads
 * O(hours × values) rows instead of every visit of the period. Kept by the writer in the visits
 * statement itself (PgSinkStatements.ts, `UPSERT_VISITS`): each changed visit row takes out what
 * its previous version had added and adds what the new one adds, so the rollups equal a GROUP BY
 * over `visits` at every commit, whatever order events arrive in.
 *
 * Distinct visitors are not additive; the API counts them as visits minus the surplus of
 * visitors with more than one visit (`visitor_visits` lists every daily visitor id seen on two
 * or more visits of a site, with the range of those visits' starts), read from `visits` for those
 * few visitors only (StatsSql.ts).
 *
 * Pure: the column lists and SQL fragments shared by the migration (backfill), the writer's
 * statement and the query compiler.
 */
import type { VisitDimension } from "./StatsQuery.ts"

/** The dimension of the site's totals (value NULL). */
export const TOTAL_DIMENSION = "total"

/** The first-touch / entry / exit dimensions the rollup keeps (a visits column each). */
export const ROLLUP_DIMENSIONS: ReadonlyArray<VisitDimension> = [
  "source",
  "referrer",
  "utm_source",
  "utm_medium",
  "utm_campaign",
  "device",
  "browser",
  "os",
  "country",
  "region",
  "city",
  "language",
  "entry_page",
  "exit_page",
  "org_type"
]

export const isRollupDimension = (d: string): d is VisitDimension => (ROLLUP_DIMENSIONS as ReadonlyArray<string>).includes(d)

/** Rollup bucket: the UTC hour of the visit's start. */
export const ROLLUP_BUCKET_MS = 3_600_000

/** The rollup dimension values of a visit row `alias` (columns named as in `visits`), as a text[]. */
export const dimsArraySql = (alias: string): string => `ARRAY[${ROLLUP_DIMENSIONS.map((d) => `${alias}.${d}`).join(", ")}]::text[]`

/**
 * `LATERAL` unpivot of a visit's rollup dimension values (`dims`, a text[] in the order of
 * {@link ROLLUP_DIMENSIONS}) into (dim, value) rows: the total and one per rollup dimension.
 */
export const unpivotSql = (dims: string): string =>
  `unnest(ARRAY['${TOTAL_DIMENSION}', ${ROLLUP_DIMENSIONS.map((d) => `'${d}'`).join(", ")}]::text[], ARRAY[NULL]::text[] || ${dims})`

/**
 * One visit's contribution, as the select list over a row `r` with columns `started_at`,
 * `last_seen_at`, `pageviews`, `events`, `engaged` and a `sign` (1 or -1): hour, visits,
 * `r_hour`, `r_visits`, `r_pageviews`, `r_events`, `r_bounces`, `r_duration` (seconds, numeric:
 * exact).
 */
export const contributionSql = (r: string) => [
  `date_trunc('hour', ${r}.started_at, 'UTC') AS r_hour`,
  `${r}.sign AS r_visits`,
  `${r}.sign * ${r}.pageviews AS r_pageviews`,
  `${r}.sign * ${r}.events AS r_events`,
  `CASE WHEN ${r}.pageviews <= 1 AND NOT ${r}.engaged THEN ${r}.sign ELSE 0 END AS r_bounces`,
  `${r}.sign * extract(epoch FROM ${r}.last_seen_at - ${r}.started_at) AS r_duration`
]

/** The rollup rows of the stored visits: (site_id, dim, hour, value, visits, pageviews, events, bounces, duration). */
export const ROLLUPS_OF_VISITS_SQL = `
  SELECT c.site_id, d.dim, c.r_hour AS hour, d.value, sum(c.r_visits) AS visits, sum(c.r_pageviews) AS pageviews,
         sum(c.r_events) AS events, sum(c.r_bounces) AS bounces, sum(c.r_duration) AS duration
  FROM (
    SELECT v.*, ${contributionSql("v").join(", ")}
    FROM (SELECT *, 1 AS sign FROM visits WHERE NOT is_bot) v
  ) c
  CROSS JOIN LATERAL ${unpivotSql(dimsArraySql("c"))} AS d(dim, value)
  GROUP BY 1, 2, 3, 4`

/** Fills `visit_rollups` from the stored visits (migration 0008's backfill; empty table assumed). */
export const BACKFILL_ROLLUPS_SQL = `
  INSERT INTO visit_rollups (site_id, dim, hour, value, visits, pageviews, events, bounces, duration)
  ${ROLLUPS_OF_VISITS_SQL}`

/** Fills `visitor_visits` from the stored visits (empty table assumed). */
export const BACKFILL_VISITORS_SQL = `
  INSERT INTO visitor_visits (site_id, visitor_id_daily, visits, first_start, last_start)
  SELECT site_id, visitor_id_daily, count(*), min(started_at), max(started_at)
  FROM visits WHERE visitor_id_daily IS NOT NULL
  GROUP BY 1, 2`
