/**
 * Visit rollups (docs/visits.md "Visit rollups", issue 14 targets): per site, UTC hour of the
 * visit's start and one first-touch dimension value, the additive figures of its human visits —
 * visits, pageviews, events, bounces and the sum of durations — so that the stats query API reads
 * O(hours × values) rows instead of every visit of the period (a dimension value's rows hold
 * visits and bounces, the site's total rows every figure). Kept by the writer in the visits
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

/**
 * The dimension of the site's bot visits (value NULL): their visits, pageviews and events (no
 * bounces, no duration) — the Network page's "bot events" from a few rows instead of every bot
 * visit's row (migration 0018). Every other rollup row counts human visits only.
 */
export const BOTS_DIMENSION = "bots"

/**
 * The visit dimensions the rollup keeps (a visits column each): the first-touch ones with few
 * values per hour, and the entry and exit pages (the Pages page of the dashboard). Each is a row
 * per (hour, value) written for every new visit; the exit page also moves a visit between rows
 * whenever a later pageview changes it (one row out, one in, per batch and value). The other
 * many-valued ones (referrer, region, city, organisation, ASN) are left to the visits path
 * (migration 0011's covering start index serves them) — they would cost the writer a row per new
 * visit and value for breakdowns few people open.
 *
 * The exit page is last: the writer's statement rebuilds a visit's previous values from the new
 * ones and `prev_exit_page` ({@link oldDimsSql}).
 */
export const ROLLUP_DIMENSIONS: ReadonlyArray<VisitDimension> = [
  "source",
  "utm_source",
  "utm_medium",
  "utm_campaign",
  "device",
  "browser",
  "os",
  "country",
  "language",
  "org_type",
  "entry_page",
  "exit_page"
]

export const isRollupDimension = (d: string): d is VisitDimension => (ROLLUP_DIMENSIONS as ReadonlyArray<string>).includes(d)

/** Rollup bucket: the UTC hour of the visit's start. */
export const ROLLUP_BUCKET_MS = 3_600_000

/** The rollup dimension values of a visit row `alias` (columns named as in `visits`), as a text[]. */
export const dimsArraySql = (alias: string, dimensions: ReadonlyArray<VisitDimension> = ROLLUP_DIMENSIONS): string =>
  `ARRAY[${dimensions.map((d) => `${alias}.${d}`).join(", ")}]::text[]`

/**
 * A visit's previous rollup dimension values in the writer's upsert (`alias`: its RETURNING
 * rows): `prev_dims` when the entry changed (it holds every previous value, the exit page too),
 * else the new values with the previous exit page in the last place (`prev_exit_page`, set on
 * every update).
 */
export const oldDimsSql = (alias: string): string =>
  `coalesce(${alias}.prev_dims, array_append(${alias}.dims[1:${ROLLUP_DIMENSIONS.length - 1}], ${alias}.prev_exit_page))`

/** Dimension names as a text[] (the order of {@link dimsArraySql}). */
const dimensionNamesSql = (dimensions: ReadonlyArray<VisitDimension>): string => `ARRAY[${dimensions.map((d) => `'${d}'`).join(", ")}]::text[]`

/** The rollup dimensions' names as a text[] (the order of {@link dimsArraySql}). */
export const DIMENSION_NAMES_SQL = dimensionNamesSql(ROLLUP_DIMENSIONS)

/** Whether a visit bounced, from its pageviews and engaged columns. */
export const bounceSql = (pageviews: string, engaged: string) => `(${pageviews} <= 1 AND NOT ${engaged})`

/** A visit's duration in seconds (numeric, exact), as the visits path computes it. */
export const durationSql = (started: string, lastSeen: string) => `extract(epoch FROM ${lastSeen} - ${started})`

/** The UTC hour of an instant (the rollup bucket). */
export const hourSql = (column: string) => `date_trunc('hour', ${column}, 'UTC')`

/** The UTC day (date) of an instant (the daily rollup bucket). */
export const daySql = (column: string) => `(${column} AT TIME ZONE 'UTC')::date`

/**
 * The rollup rows of the stored visits: (site_id, dim, hour, value, visits, pageviews, events,
 * bounces, duration). The `total` rows carry every figure; the rows of a dimension value carry
 * visits and bounces (pageviews, events and duration 0): the figures a breakdown reads — a
 * new event in a visit then changes its total row only, not one row per dimension.
 * `dimensions`: only those dimensions' rows, without the totals (a migration adding dimensions).
 */
export const rollupsOfVisitsSql = (dimensions?: ReadonlyArray<VisitDimension>): string => {
  const kept = dimensions ?? ROLLUP_DIMENSIONS
  const total = `
  SELECT site_id, '${TOTAL_DIMENSION}'::text AS dim, ${hourSql("started_at")} AS hour, NULL::text AS value, count(*) AS visits,
         sum(pageviews) AS pageviews, sum(events) AS events, count(*) FILTER (WHERE ${bounceSql("pageviews", "engaged")}) AS bounces,
         sum(${durationSql("started_at", "last_seen_at")}) AS duration
  FROM visits WHERE NOT is_bot
  GROUP BY 1, 2, 3, 4
  UNION ALL`
  return `${dimensions === undefined ? total : ""}
  SELECT v.site_id, d.dim, ${hourSql("v.started_at")} AS hour, d.value, count(*) AS visits, 0 AS pageviews, 0 AS events,
         count(*) FILTER (WHERE ${bounceSql("v.pageviews", "v.engaged")}) AS bounces, 0 AS duration
  FROM visits v CROSS JOIN LATERAL unnest(${dimensionNamesSql(kept)}, ${dimsArraySql("v", kept)}) AS d(dim, value)
  WHERE NOT v.is_bot
  GROUP BY 1, 2, 3, 4`
}

/** Hourly rollup rows (columns as {@link rollupsOfVisitsSql}) summed per UTC day. */
const dailyOf = (hourly: string): string => `
  SELECT site_id, dim, ${daySql("hour")} AS day, value, sum(visits) AS visits, sum(pageviews) AS pageviews, sum(events) AS events,
         sum(bounces) AS bounces, sum(duration) AS duration
  FROM (${hourly}) h
  GROUP BY 1, 2, 3, 4`

/** The bot visits' rollup rows ({@link BOTS_DIMENSION}), columns as {@link rollupsOfVisitsSql}. */
export const BOT_ROLLUPS_OF_VISITS_SQL = `
  SELECT site_id, '${BOTS_DIMENSION}'::text AS dim, ${hourSql("started_at")} AS hour, NULL::text AS value, count(*) AS visits,
         sum(pageviews) AS pageviews, sum(events) AS events, 0 AS bounces, 0 AS duration
  FROM visits WHERE is_bot
  GROUP BY 1, 2, 3, 4`

/** Every rollup row of the stored visits: the totals, the dimensions' rows and the bots' (what the writer keeps). */
export const ROLLUPS_OF_VISITS_SQL = `${rollupsOfVisitsSql()}
  UNION ALL${BOT_ROLLUPS_OF_VISITS_SQL}`

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

/** The daily rollup rows: the hourly ones of {@link rollupsOfVisitsSql} summed per UTC day. */
export const dailyRollupsOfVisitsSql = (dimensions?: ReadonlyArray<VisitDimension>): string => dailyOf(rollupsOfVisitsSql(dimensions))

/** The daily rows of {@link ROLLUPS_OF_VISITS_SQL}. */
export const DAILY_ROLLUPS_OF_VISITS_SQL = dailyOf(ROLLUPS_OF_VISITS_SQL)

/** The daily rows of {@link BOT_ROLLUPS_OF_VISITS_SQL}. */
export const DAILY_BOT_ROLLUPS_OF_VISITS_SQL = dailyOf(BOT_ROLLUPS_OF_VISITS_SQL)

/** Fills `visit_rollups_daily` from the stored visits (migration 0009's backfill; empty table assumed). */
export const BACKFILL_DAILY_ROLLUPS_SQL = `
  INSERT INTO visit_rollups_daily (site_id, dim, day, value, visits, pageviews, events, bounces, duration)
  ${DAILY_ROLLUPS_OF_VISITS_SQL}`
