/**
 * Visit rollups (docs/visits.md "Visit rollups", issue 14 targets): per site, UTC hour of the
 * visit's start and one first-touch dimension value, the additive figures of its human visits —
 * visits, pageviews, events, bounces and the sum of durations — so that the stats query API reads
 * O(hours × values) rows instead of every visit of the period (a dimension value's rows hold
 * visits and bounces, the site's total rows every figure). Kept by the writer in the batch's
 * transaction: the visits statement (PgSinkStatements.ts, `UPSERT_VISITS`) returns each changed
 * visit as it is now and was before, {@link visitRollupDeltas} takes out what its previous version
 * had added and adds what the new one adds, and `UPSERT_VISIT_ROLLUPS` adds those changes — so
 * the rollups equal a GROUP BY over `visits` at every commit, whatever order events arrive in.
 *
 * Distinct visitors are not additive; the API counts them as visits minus the surplus of
 * visitors with more than one visit (`visitor_visits` lists every daily visitor id seen on two
 * or more visits of a site, with the range of those visits' starts), read from `visits` for those
 * few visitors only (StatsSql.ts).
 *
 * Pure: the column lists and SQL fragments shared by the migration (backfill), the writer's
 * statements and the query compiler, and the writer's rollup changes ({@link visitRollupDeltas}).
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
 * The exit page is last: the writer rebuilds a visit's previous values from the new ones and
 * `prev_exit_page` ({@link visitRollupDeltas}).
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

/** Dimension names as a text[] (the order of {@link dimsArraySql}). */
const dimensionNamesSql = (dimensions: ReadonlyArray<VisitDimension>): string => `ARRAY[${dimensions.map((d) => `'${d}'`).join(", ")}]::text[]`

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

/**
 * Per site, UTC hour of the start and kind (the total rows' human visits, the bots' rows' bot
 * visits) the latest last event of the stored visits: (site_id, dim, hour, last_seen) — what
 * `visit_rollups.last_seen` holds at least (migration 0020's backfill).
 */
export const LAST_SEEN_OF_VISITS_SQL = `
  SELECT site_id, CASE WHEN is_bot THEN '${BOTS_DIMENSION}' ELSE '${TOTAL_DIMENSION}' END AS dim, ${hourSql("started_at")} AS hour,
         max(last_seen_at) AS last_seen
  FROM visits
  GROUP BY 1, 2, 3`

/** Sets `visit_rollups.last_seen` of the total and bots rows from the stored visits (migration 0020's backfill). */
export const BACKFILL_LAST_SEEN_SQL = `
  UPDATE visit_rollups r SET last_seen = m.last_seen
  FROM (${LAST_SEEN_OF_VISITS_SQL}) m
  WHERE r.site_id = m.site_id AND r.dim = m.dim AND r.hour = m.hour AND r.value IS NULL`

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

/**
 * A visit of a batch as the writer's visits statement returns it (PgSinkStatements.ts,
 * `UPSERT_VISITS`): its figures as stored now and before the statement (`prev_*` null: inserted
 * by it). Hours are epoch ms of the UTC hour of the start; durations whole microseconds.
 * `dims`: the rollup dimension values ({@link ROLLUP_DIMENSIONS} order) — returned only when the
 * visit's dimension rows all move (it is new, its hour, bot flag or bounce changed, or its entry
 * changed), else null: then at most its exit page moved (`exit_page`, `prev_exit_page`).
 * `prev_dims`: the previous values when the entry changed, else null.
 */
export interface StoredVisit {
  readonly site_id: number
  readonly hour: number
  readonly is_bot: boolean
  readonly prev_hour: number | null
  readonly prev_is_bot: boolean | null
  readonly inserted: boolean
  readonly pageviews: number
  readonly events: number
  readonly prev_pageviews: number | null
  readonly prev_events: number | null
  readonly bounce: boolean
  readonly prev_bounce: boolean | null
  readonly dur_us: number
  readonly prev_dur_us: number | null
  /** its last event's time (epoch ms): the bound of its hour's total / bots row ({@link VisitRollupDelta}) */
  readonly last_seen: number
  readonly exit_page: string | null
  readonly prev_exit_page: string | null
  readonly dims: ReadonlyArray<string | null> | null
  readonly prev_dims: ReadonlyArray<string | null> | null
}

/** A change to one `visit_rollups` row (its key, then the figures to add; duration in microseconds). */
export interface VisitRollupDelta {
  readonly siteId: number
  readonly dim: string
  readonly hour: number
  readonly value: string | null
  visits: number
  pageviews: number
  events: number
  bounces: number
  durationUs: number
  /**
   * The site's total and bots rows only (else null): the latest last event of the row's visits
   * (epoch ms), kept as the greatest ever sent (`visit_rollups.last_seen`, migration 0020).
   */
  lastSeen: number | null
}

/**
 * The changes a batch's visits make to the visit rollups, one per rollup row and without those
 * that cancel out: each changed visit takes out what its previous version added and adds what it
 * adds now — to its hour's total row (every figure; a bot visit's to the bots' row instead:
 * visits, pageviews, events), and to each dimension value's row (visits, bounces) only where the
 * visit came or went, moved hour, changed bounce or first touch (a visit's later event otherwise
 * changes its total row alone, and its exit page's rows when the exit page moved). The rule the
 * rollups hold to (each equals a GROUP BY over `visits`, {@link rollupsOfVisitsSql}) is checked
 * by test/stats-rollups.test.ts against the stored visits. The total / bots row of the visit's
 * hour also gets its last event's time (`lastSeen`: the row keeps the greatest, an upper bound of
 * its visits' last events — a visit that moves away leaves it where it was).
 */
export const visitRollupDeltas = (visits: ReadonlyArray<StoredVisit>): Array<VisitRollupDelta> => {
  // rows by hour, site, dimension (its place in ROLLUP_DIMENSIONS; then the total, the bots) and
  // value: no key strings to build (a batch adds a dozen rows per new visit)
  const buckets = new Map<number, Map<number, Array<Map<string | null, VisitRollupDelta> | undefined>>>()
  const out: Array<VisitRollupDelta> = []
  const add = (
    siteId: number,
    slot: number,
    hour: number,
    value: string | null,
    visits: number,
    pageviews: number,
    events: number,
    bounces: number,
    durationUs: number,
    lastSeen: number | null = null
  ) => {
    let sites = buckets.get(hour)
    if (sites === undefined) buckets.set(hour, sites = new Map())
    let slots = sites.get(siteId)
    if (slots === undefined) sites.set(siteId, slots = [])
    let values = slots[slot]
    if (values === undefined) slots[slot] = values = new Map()
    const row = values.get(value)
    if (row === undefined) {
      const created = { siteId, dim: SLOT_NAMES[slot]!, hour, value, visits, pageviews, events, bounces, durationUs, lastSeen }
      values.set(value, created)
      out.push(created)
      return
    }
    row.visits += visits
    row.pageviews += pageviews
    row.events += events
    row.bounces += bounces
    row.durationUs += durationUs
    if (lastSeen !== null && (row.lastSeen === null || lastSeen > row.lastSeen)) row.lastSeen = lastSeen
  }
  const last = ROLLUP_DIMENSIONS.length - 1
  for (const v of visits) {
    const newOn = !v.is_bot
    const oldOn = !v.inserted && v.prev_is_bot === false
    const oldBot = !v.inserted && v.prev_is_bot === true
    const oldHour = v.prev_hour ?? v.hour
    const oldBounce = v.prev_bounce === true
    if (newOn) add(v.site_id, TOTAL_SLOT, v.hour, null, 1, v.pageviews, v.events, v.bounce ? 1 : 0, v.dur_us, v.last_seen)
    else add(v.site_id, BOTS_SLOT, v.hour, null, 1, v.pageviews, v.events, 0, 0, v.last_seen)
    if (oldOn) {
      add(v.site_id, TOTAL_SLOT, oldHour, null, -1, -(v.prev_pageviews ?? 0), -(v.prev_events ?? 0), oldBounce ? -1 : 0, -(v.prev_dur_us ?? 0))
    } else if (oldBot) {
      add(v.site_id, BOTS_SLOT, oldHour, null, -1, -(v.prev_pageviews ?? 0), -(v.prev_events ?? 0), 0, 0)
    }
    const dims = v.dims
    if (dims === null) {
      // same hour, bot flag, bounce and entry: only the exit page's rows can move
      if (v.exit_page === v.prev_exit_page) continue
      if (newOn) add(v.site_id, last, v.hour, v.exit_page, 1, 0, 0, v.bounce ? 1 : 0, 0)
      if (oldOn) add(v.site_id, last, oldHour, v.prev_exit_page, -1, 0, 0, oldBounce ? -1 : 0, 0)
      continue
    }
    const level = v.inserted || newOn !== oldOn || v.hour !== oldHour || v.bounce !== oldBounce
    for (let d = 0; d <= last; d++) {
      const nv = dims[d] ?? null
      const ov = v.prev_dims !== null ? v.prev_dims[d] ?? null : d === last ? v.prev_exit_page : nv
      if (!level && ov === nv) continue
      if (newOn) add(v.site_id, d, v.hour, nv, 1, 0, 0, v.bounce ? 1 : 0, 0)
      if (oldOn) add(v.site_id, d, oldHour, ov, -1, 0, 0, oldBounce ? -1 : 0, 0)
    }
  }
  return out.filter((row) =>
    row.visits !== 0 || row.pageviews !== 0 || row.events !== 0 || row.bounces !== 0 || row.durationUs !== 0 || row.lastSeen !== null
  )
}

/** {@link visitRollupDeltas}' slots: the rollup dimensions in order, then the total and the bots. */
const TOTAL_SLOT = ROLLUP_DIMENSIONS.length
const BOTS_SLOT = TOTAL_SLOT + 1
const SLOT_NAMES: ReadonlyArray<string> = [...ROLLUP_DIMENSIONS, TOTAL_DIMENSION, BOTS_DIMENSION]

/** Whole microseconds as exact decimal seconds with six places (`numeric`, as `extract(epoch …)` gives them). */
export const secondsOfMicros = (us: number): string => {
  const sign = us < 0 ? "-" : ""
  const abs = Math.abs(us)
  return `${sign}${Math.floor(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, "0")}`
}
