/**
 * SQL of the stats query API, built from a validated query (StatsQuery.ts). Pure: a statement
 * text with `$n` placeholders and its parameters (text arrays as `{ textArray }`, encoded by
 * the program that runs it).
 *
 * Every number counts a visit in the period it started in, with everything it did (realtime:
 * the visits active in the last 5 minutes, their events since then). The paths, chosen by what
 * the query touches (docs/api.md "How the numbers are computed", {@link queryPath}):
 * - visit rollups — totals and one few-valued first-touch dimension (VisitRollups.ts);
 * - item rollups — one content dimension kept per visit (page, event type) as a breakdown, with the
 *   figures an item holds (VisitItems.ts);
 * - visits, `FROM visits` — every dimension and filter is a visit's (source, country, entry page,
 *   …); conversions, revenue and bot events are visit figures too; with a filter on a page or an
 *   event type and visit figures only, the visits that have a matching item (`EXISTS`, by the
 *   items' value index);
 * - items, `FROM visits JOIN visit_items` — one content dimension with anything else: per
 *   (dimensions, visit) first, then per dimensions;
 * - events, `FROM raw_events JOIN visits` — a hostname, two content dimensions (a conversion *on* a page),
 *   or realtime with a content dimension: the events of the visits, grouped the same way.
 * Humans only (`NOT is_bot` of the visit), except `bot_events`.
 */
import type { Dimension, EventDimension, Filter, FunnelStep, Metric, Period, PropertyDimension } from "./StatsQuery.ts"
import { isEventDimension, isTimeDimension, timeGrainOf } from "./StatsQuery.ts"
import { offsetAt } from "./LocalTime.ts"
import { DAY_MS } from "./Time.ts"
import { type ItemDimension, isItemDimension } from "./VisitItems.ts"
import { BOTS_DIMENSION, hourSql, isRollupDimension, ROLLUP_BUCKET_MS, TOTAL_DIMENSION } from "./VisitRollups.ts"

export type SqlParam = string | { readonly textArray: ReadonlyArray<string> }

export interface CompiledSql {
  readonly text: string
  readonly params: ReadonlyArray<SqlParam>
}

class Params {
  readonly values: Array<SqlParam> = []
  add(value: SqlParam): string {
    this.values.push(value)
    return `$${this.values.length}`
  }
}

/** Every statement's first parameters: the site, then the period's start and end. */
const periodParams = (input: { readonly siteId: number; readonly period: Period }) => {
  const params = new Params()
  const site = params.add(String(input.siteId))
  const from = params.add(new Date(input.period.fromMs).toISOString())
  const to = params.add(new Date(input.period.toMs).toISOString())
  return { params, site, from, to }
}

export interface CompileInput {
  readonly siteId: number
  readonly timezone: string
  readonly period: Period
  /** realtime: visits active in the period rather than started in it */
  readonly active: boolean
  readonly metrics: ReadonlyArray<Metric>
  readonly dimensions: ReadonlyArray<Dimension>
  readonly filters: ReadonlyArray<Filter>
  readonly orderBy: ReadonlyArray<readonly [string, "asc" | "desc"]>
  /** null: no LIMIT/OFFSET in SQL (time series are filled and paged by the caller) */
  readonly page: { readonly limit: number; readonly offset: number } | null
  /**
   * false: never the visit or item rollups, nor `visitor_visits` on the visits path (visitors by
   * count(DISTINCT), the plain shape tests compare the others with); default true
   */
  readonly rollups?: boolean
  /** false: content dimensions from the events, never from `visit_items` (tests compare the paths); default true */
  readonly items?: boolean
  /**
   * The events path's end, when asked ahead ({@link lastVisitEventSql}, epoch ms rounded down;
   * null: the period has no visits): a parameter instead of the same bound as a subquery — the planner then
   * sees the range of events it reads (for a subquery's value it assumes a few hundred rows a
   * day, and plans a serial scan, sorts and a loop per session for the hundreds of thousands a
   * large site's month holds: 1.2 s instead of 1.9 s for the Events page under a page filter,
   * 3.1 s instead of 4.5 s under its top page, on the 10M-event data set).
   */
  readonly eventsUntilMs?: number | null
}


const filterDimensions = (filters: ReadonlyArray<Filter>): Array<PropertyDimension> =>
  filters.flatMap((f): Array<PropertyDimension> => {
    if ("filters" in f) return filterDimensions(f.filters)
    if ("filter" in f) return filterDimensions([f.filter])
    return [f.dimension]
  })

/** The content dimensions (page, hostname, event type) a query names in its dimensions and filters. */
const contentDimensions = (input: Pick<CompileInput, "dimensions" | "filters">): Array<EventDimension> =>
  [...new Set([...input.dimensions, ...filterDimensions(input.filters)].filter(isEventDimension))]

/** Whether the query names a content dimension (page, hostname, event type): else it is a visit query. */
export const isEventQuery = (input: Pick<CompileInput, "dimensions" | "filters">): boolean => contentDimensions(input).length > 0

const PAGE_PATH = (column: string) => `spoolway_page_path(${column})`
const URL_HOST = (column: string) => `spoolway_url_host(${column})`

/** Where a property's value is read from, when not its default column (`v.<name>`, the event's page / host / type). */
type Columns = Partial<Record<PropertyDimension, string>>

const propertyExpr = (d: PropertyDimension, columns: Columns = {}): string => {
  const column = columns[d]
  if (column !== undefined) return column
  switch (d) {
    case "page":
      return PAGE_PATH("e.page_url")
    case "hostname":
      return URL_HOST("e.page_url")
    case "event_type":
      return "e.event_type"
    case "asn":
      // bigint: compared and returned as text, like every other dimension value
      return "v.asn::text"
    default:
      return `v.${d}`
  }
}

const TIME_FORMAT = { hour: "YYYY-MM-DD HH24:00", day: "YYYY-MM-DD", week: "YYYY-MM-DD", month: "YYYY-MM-DD" } as const

const dimensionExpr = (d: Dimension, timeColumn: string, tz: string, columns: Columns = {}): string => {
  const grain = timeGrainOf(d)
  if (grain !== undefined) return `to_char(date_trunc('${grain}', timezone(${tz}, ${timeColumn})), '${TIME_FORMAT[grain]}')`
  return propertyExpr(d as PropertyDimension, columns)
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`)

/**
 * For an event's page (its path computed from the URL, per event): a cheap test first — an event
 * on one of the pages has the page in its URL, since the path is a part of it — so that the path
 * is computed only for those events (the Events page under a filter on a page reads a month of
 * the site's events: 1.2 → 0.75 s for a page in 3 % of them on the 10M-event data set). Empty
 * where the page is read from a column.
 */
const urlHolds = (filter: { readonly dimension: PropertyDimension; readonly values: ReadonlyArray<string> }, params: Params, columns: Columns): string =>
  filter.dimension === "page" && columns.page === undefined ? `${urlContainsAny(filter.values, params)} AND ` : ""

/** A LIKE pattern for texts that contain `value`. */
const containing = (value: string) => `%${likeEscape(value)}%`

/** Whether an event's URL contains one of `values` ({@link urlHolds}). */
const urlContainsAny = (values: ReadonlyArray<string>, params: Params) =>
  `e.page_url LIKE ANY(${params.add({ textArray: values.map(containing) })}::text[])`

const filterSql = (filter: Filter, params: Params, columns: Columns = {}): string => {
  switch (filter.op) {
    case "and":
    case "or":
      return `(${filter.filters.map((f) => filterSql(f, params, columns)).join(filter.op === "and" ? " AND " : " OR ")})`
    case "not":
      return `(NOT coalesce(${filterSql(filter.filter, params, columns)}, false))`
    case "is": {
      const expr = propertyExpr(filter.dimension, columns)
      const known = `${urlHolds(filter, params, columns)}${expr} = ANY(${params.add({ textArray: filter.values })}::text[])`
      return filter.unknown ? `(${expr} IS NULL OR ${known})` : `(${known})`
    }
    case "is_not": {
      const expr = propertyExpr(filter.dimension, columns)
      const known = `${expr} <> ALL(${params.add({ textArray: filter.values })}::text[])`
      return filter.unknown ? `(${expr} IS NOT NULL AND ${known})` : `(${expr} IS NULL OR ${known})`
    }
    case "contains":
      return `(${propertyExpr(filter.dimension, columns)} ILIKE ANY(${params.add({ textArray: filter.values.map(containing) })}::text[]))`
    case "matches":
      return `(${propertyExpr(filter.dimension, columns)} ~ ANY(${params.add({ textArray: filter.values })}::text[]))`
  }
}

/**
 * A metric over visit rows `v`. `all`: the rows include bot visits (the query asks for
 * `bot_events`), so every other metric filters them out itself.
 */
const visitMetric = (m: Metric, all: boolean): string => {
  const human = (condition?: string) => {
    const c = [...(all ? ["NOT v.is_bot"] : []), ...(condition === undefined ? [] : [condition])]
    return c.length === 0 ? "" : ` FILTER (WHERE ${c.join(" AND ")})`
  }
  const vid = "coalesce(v.visitor_id_daily, convert_to(v.session_id, 'UTF8'))"
  switch (m) {
    case "visitors":
      return `count(DISTINCT ${vid})${human()}`
    case "visits":
      return `count(*)${human()}`
    case "pageviews":
      return `coalesce(sum(v.pageviews)${human()}, 0)`
    case "views_per_visit":
      return `coalesce(sum(v.pageviews)${human()}, 0)::float8 / nullif(count(*)${human()}, 0)`
    case "bounce_rate":
      return `100.0 * count(*)${human("v.pageviews <= 1 AND NOT v.engaged")} / nullif(count(*)${human()}, 0)`
    case "visit_duration":
      return `avg(extract(epoch FROM v.last_seen_at - v.started_at))${human()}`
    case "events":
      return `coalesce(sum(v.events)${human()}, 0)`
    case "conversions":
      return `coalesce(sum(v.conversions)${human()}, 0)`
    case "conversion_rate":
      return `100.0 * count(DISTINCT ${vid})${human("v.conversions > 0")} / nullif(count(DISTINCT ${vid})${human()}, 0)`
    case "revenue":
      return `coalesce(sum(v.revenue)${human()}, 0)`
    case "bot_events":
      return "coalesce(sum(v.events) FILTER (WHERE v.is_bot), 0)"
  }
}

const HUMAN = "ev > 0"
/** per (dimensions, visitor) rows of an event query (`w`) → the metrics */
const EVENT_METRIC: Record<Metric, string> = {
  visitors: "count(*) FILTER (WHERE visits > 0)",
  visits: "coalesce(sum(visits), 0)",
  pageviews: "coalesce(sum(pv), 0)",
  views_per_visit: "coalesce(sum(pv), 0)::float8 / nullif(sum(visits), 0)",
  bounce_rate: "100.0 * sum(bounces) / nullif(sum(bounce_known), 0)",
  visit_duration: "sum(dur) / nullif(sum(dur_n), 0)",
  events: "coalesce(sum(ev), 0)",
  conversions: "coalesce(sum(conv), 0)",
  conversion_rate: "100.0 * count(*) FILTER (WHERE converted) / nullif(count(*) FILTER (WHERE visits > 0), 0)",
  revenue: "coalesce(sum(rev), 0)",
  bot_events: "coalesce(sum(bots), 0)"
}

export const metricAlias = (m: Metric) => `m_${m}`
export const dimensionAlias = (i: number) => `d${i}`

const orderSql = (input: CompileInput): string => {
  const terms: Array<string> = []
  const used = new Set<string>()
  const push = (name: string, dir: "asc" | "desc") => {
    if (used.has(name)) return
    used.add(name)
    const di = input.dimensions.indexOf(name as Dimension)
    const alias = di >= 0 ? dimensionAlias(di) : metricAlias(name as Metric)
    terms.push(`${alias} ${dir === "asc" ? "ASC" : "DESC"} NULLS LAST`)
  }
  for (const [name, dir] of input.orderBy) push(name, dir)
  if (input.orderBy.length === 0) {
    const time = input.dimensions.find(isTimeDimension)
    if (time !== undefined) push(time, "asc")
    push(input.metrics[0]!, "desc")
  }
  input.dimensions.forEach((d) => push(d, "asc"))
  return terms.length === 0 ? "" : ` ORDER BY ${terms.join(", ")}`
}

/** The first `n` output columns by position, then `extra`: a GROUP BY list. */
const groupKeys = (n: number, extra: ReadonlyArray<string> = []) => [...Array.from({ length: n }, (_, i) => i + 1), ...extra].join(", ")

const groupSql = (n: number) => (n === 0 ? "" : ` GROUP BY ${groupKeys(n)}`)

/** A conversion's value of an event `e`: its numeric `value` (revenue), else NULL. */
const EVENT_VALUE = "CASE WHEN jsonb_typeof(e.metadata->'value') = 'number' THEN (e.metadata->>'value')::numeric END"

/**
 * The events of the period's visits end with the last one's last event (`e.received_at` up to
 * it): the greatest bound the visit rollups keep for the hours the period's visits started in
 * (`visit_rollups.last_seen` of the site's total and bots rows, migration 0020: at least each
 * hour's latest last event) — or, without the rollups, the period's visits' own latest.
 */
const untilLastVisitEvent = (input: CompileInput, q: { params: Params; site: string; from: string; to: string }) => {
  if (input.eventsUntilMs === null) return "false"
  // (the bound in whole milliseconds, rounded down: the events up to the next one)
  if (input.eventsUntilMs !== undefined) return `e.received_at < ${q.params.add(new Date(input.eventsUntilMs + 1).toISOString())}::timestamptz`
  return `e.received_at <= (${lastVisitEventOf(input, q.site, q.from, q.to)})`
}

/** The bound of {@link untilLastVisitEvent} (one row, `until`). */
const lastVisitEventOf = (input: CompileInput, site: string, from: string, to: string) =>
  input.rollups === false
    ? `SELECT max(x.last_seen_at) AS until FROM visits x WHERE x.site_id = ${site}::int ` +
      `AND x.started_at >= ${from}::timestamptz AND x.started_at < ${to}::timestamptz`
    : `SELECT max(r.last_seen) AS until FROM visit_rollups r WHERE r.site_id = ${site}::int ` +
      `AND r.dim IN ('${TOTAL_DIMENSION}', '${BOTS_DIMENSION}') AND r.value IS NULL ` +
      `AND r.hour >= ${hourSql(`${from}::timestamptz`)} AND r.hour < ${to}::timestamptz`

/**
 * Whether a query reads the events of its period's visits up to their last event (the events
 * path, not realtime), a bound the query API asks first ({@link lastVisitEventSql}) and passes
 * as `eventsUntilMs`.
 */
export const readsVisitEvents = (input: CompileInput): boolean =>
  !input.active && input.eventsUntilMs === undefined && queryPath(input).path === "events"

/** The last event of the period's visits ({@link readsVisitEvents}): one row, `until` (NULL: no visits). */
export const lastVisitEventSql = (input: CompileInput): CompiledSql => {
  const { params, site, from, to } = periodParams(input)
  return { text: lastVisitEventOf(input, site, from, to), params: params.values }
}

/** Metrics the site's total rows of the visit rollups answer. */
const TOTAL_ROLLUP_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"]
/** Metrics a dimension's rows answer (they hold visits and bounces). */
const DIMENSION_ROLLUP_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "bounce_rate"]
/** Metrics the item rollups answer (per value: visits that had it, their pageviews, events, conversions, revenue with it). */
const ITEM_ROLLUP_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "pageviews", "events", "conversions", "revenue"]

/** Whether every bucket boundary of the period in `tz` falls on a UTC hour (whole-hour offsets throughout). */
const wholeHourOffsets = (period: Period, tz: string): boolean => {
  const step = 6 * ROLLUP_BUCKET_MS
  for (let t = period.fromMs; t < period.toMs + step; t += step) {
    if (offsetAt(Math.min(t, period.toMs), tz) % ROLLUP_BUCKET_MS !== 0) return false
  }
  return true
}

/** The property dimensions a query names in its dimensions and filters together. */
const propertyDimensions = (input: CompileInput): Set<string> =>
  new Set<string>([...input.dimensions.filter((d) => !isTimeDimension(d)), ...filterDimensions(input.filters)])

/** Whether the period (and its time buckets) are unions of whole UTC hours, so rollup rows add up to it exactly. */
const onRollupHours = (input: CompileInput): boolean =>
  input.period.fromMs % ROLLUP_BUCKET_MS === 0 && input.period.toMs % ROLLUP_BUCKET_MS === 0 &&
  (!input.dimensions.some(isTimeDimension) || wholeHourOffsets(input.period, input.timezone))

/**
 * Whether the query can be answered exactly from the visit rollups, and from which dimension:
 * a visit query (not realtime) whose dimensions and filters together name at most one property
 * dimension, one the rollups keep, asking what its rows hold (the total: every visit metric but
 * conversions; a dimension: visitors, visits, bounce rate) — or bot events alone, from the bots'
 * rows (no property dimension or filter); a period of whole UTC hours; with a
 * time dimension, a time zone whose offsets are whole hours over the period (so every bucket is
 * a union of rollup hours). `undefined`: not from the visit rollups.
 */
export const rollupDimension = (input: CompileInput): string | undefined => {
  if (input.rollups === false || input.active || isEventQuery(input)) return undefined
  const properties = propertyDimensions(input)
  // bot events alone, by time at most: the bots' rows
  if (properties.size === 0 && input.metrics.every((m) => m === "bot_events")) return onRollupHours(input) ? BOTS_DIMENSION : undefined
  if (properties.size > 1) return undefined
  const dimension = [...properties][0]
  if (dimension !== undefined && !isRollupDimension(dimension)) return undefined
  const metrics = dimension === undefined ? TOTAL_ROLLUP_METRICS : DIMENSION_ROLLUP_METRICS
  if (!input.metrics.every((m) => metrics.includes(m))) return undefined
  if (!onRollupHours(input)) return undefined
  return dimension ?? TOTAL_DIMENSION
}

/**
 * Whether the query can be answered exactly from the item rollups, and of which content
 * dimension: it breaks down by that one content dimension (filters on it allowed: each row is
 * one value) — or only filters by one value of it (`is`, one value: that value's rows alone, so
 * no visit is counted twice) — names no other property dimension, asks what an item holds
 * (visitors, visits, pageviews, events, conversions, revenue), not realtime, on whole UTC hours
 * as above.
 */
export const itemRollupDimension = (input: CompileInput): ItemDimension | undefined => {
  if (input.rollups === false || input.items === false || input.active) return undefined
  const properties = propertyDimensions(input)
  const dimension = [...properties][0]
  if (properties.size !== 1 || dimension === undefined || !isItemDimension(dimension)) return undefined
  if (!input.dimensions.includes(dimension) && !isOneValueFilter(input.filters)) return undefined
  if (!input.metrics.every((m) => ITEM_ROLLUP_METRICS.includes(m))) return undefined
  return onRollupHours(input) ? dimension : undefined
}

/** Filters that are one `is` with one known value (the dashboard's "click a page"). */
const isOneValueFilter = (filters: ReadonlyArray<Filter>): boolean => {
  const only = filters.length === 1 ? filters[0]! : undefined
  return only !== undefined && only.op === "is" && only.values.length === 1 && !only.unknown
}

/**
 * The metrics of a query without property dimensions filtered by one page or event type (one
 * value) that the item rollups answer (visitors, visits, pageviews…) when the others (bounce
 * rate, duration…) keep the query off them: the API then asks the two groups apart and joins
 * their rows by time bucket (Stats.ts). `undefined`: nothing to split.
 */
export const itemRollupMetrics = (input: CompileInput): ReadonlyArray<Metric> | undefined => {
  if (input.dimensions.some((d) => !isTimeDimension(d)) || itemRollupDimension(input) !== undefined) return undefined
  const own = input.metrics.filter((m) => ITEM_ROLLUP_METRICS.includes(m))
  if (own.length === 0 || own.length === input.metrics.length) return undefined
  return itemRollupDimension({ ...input, metrics: own }) === undefined ? undefined : own
}

/** How a query is answered (the module comment). */
export type QueryPath =
  | { readonly path: "visit-rollups"; readonly dimension: string }
  | { readonly path: "item-rollups"; readonly dimension: ItemDimension }
  | { readonly path: "visits"; readonly having?: ItemDimension }
  | { readonly path: "items"; readonly dimension: ItemDimension }
  | { readonly path: "events" }

/** Metrics of the visit alone: with a filter on a content dimension they need only which visits had a matching item. */
const VISIT_LEVEL_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "bounce_rate", "visit_duration"]

/**
 * Whether every top-level filter names either `dimension` alone or no content dimension at all
 * (so the visit filters and the item filters can be applied apart).
 */
const separableFilters = (filters: ReadonlyArray<Filter>, dimension: ItemDimension): boolean =>
  filters.every((f) => {
    const named = filterDimensions([f])
    return named.every((d) => d === dimension) || !named.some(isEventDimension)
  })

export const queryPath = (input: CompileInput): QueryPath => {
  const visitRollup = rollupDimension(input)
  if (visitRollup !== undefined) return { path: "visit-rollups", dimension: visitRollup }
  const itemRollup = itemRollupDimension(input)
  if (itemRollup !== undefined) return { path: "item-rollups", dimension: itemRollup }
  const content = contentDimensions(input)
  if (content.length === 0) return { path: "visits" }
  const only = content.length === 1 ? content[0]! : undefined
  if (only !== undefined && isItemDimension(only) && !input.active && input.items !== false) {
    // a filter on a page or event type and visit figures by visit dimensions: the visits that
    // have a matching item (a semi-join, by the items' value index) — no per-visit item sums
    if (
      !input.dimensions.includes(only) && input.metrics.every((m) => VISIT_LEVEL_METRICS.includes(m)) &&
      separableFilters(input.filters, only)
    ) return { path: "visits", having: only }
    return { path: "items", dimension: only }
  }
  return { path: "events" }
}

/** Metrics from the rollup sums (`g`) and the visitors' surplus (`s`), the same SQL types as the visits path. */
const ROLLUP_METRIC: Record<string, string> = {
  visitors: "coalesce(g.visits, 0) - coalesce(s.surplus, 0)",
  visits: "coalesce(g.visits, 0)",
  pageviews: "coalesce(g.pv, 0)",
  views_per_visit: "coalesce(g.pv, 0)::float8 / nullif(g.visits::bigint, 0)",
  bounce_rate: "100.0 * g.bounces::bigint / nullif(g.visits::bigint, 0)",
  visit_duration: "g.dur / nullif(g.visits, 0)",
  events: "coalesce(g.ev, 0)",
  conversions: "coalesce(g.conv, 0)",
  revenue: "coalesce(g.rev, 0)",
  // read from the bots' rows only (rollupDimension)
  bot_events: "coalesce(g.ev, 0)"
}

/**
 * What every query statement starts with, in this parameter order: the site, the period's ends,
 * the timezone (only with a time dimension), the page's limit and offset.
 */
const queryPrologue = (input: CompileInput, shared?: ReturnType<typeof periodParams>) => {
  const { params, site, from, to } = shared ?? periodParams(input)
  const time = input.dimensions.some(isTimeDimension)
  const tz = time ? `${params.add(input.timezone)}::text` : "'UTC'"
  const page = input.page === null
    ? ""
    : ` LIMIT ${params.add(String(input.page.limit))}::int OFFSET ${params.add(String(input.page.offset))}::int`
  return { params, site, from, to, time, tz, page, nd: input.dimensions.length }
}

/** The rollup tables a query reads: the visit rollups (sums named as in `visits`) or the item rollups. */
const ROLLUP_TABLES = {
  visits: {
    hourly: "visit_rollups",
    daily: "visit_rollups_daily",
    columns: "r.visits, r.pageviews, r.events, r.bounces, r.duration",
    sums: ["sum(v.visits) AS visits", "sum(v.pageviews) AS pv", "sum(v.events) AS ev", "sum(v.bounces) AS bounces", "sum(v.duration) AS dur"]
  },
  items: {
    hourly: "item_rollups",
    daily: "item_rollups_daily",
    columns: "r.visits, r.pageviews, r.events, r.conversions, r.revenue",
    sums: ["sum(v.visits) AS visits", "sum(v.pageviews) AS pv", "sum(v.events) AS ev", "sum(v.conversions) AS conv", "sum(v.revenue) AS rev"]
  }
} as const

/**
 * A query from the rollups (docs/visits.md "Visit rollups", "Visit contents"): the period's
 * rollup rows of one dimension (without a time dimension the whole UTC days from the daily
 * table), read as if they were visits (`v.started_at` = the hour, `v.<dimension>` = the value)
 * so that buckets and filters are the same expressions as on `visits`; visitors = visits minus,
 * per group, the surplus of the visitors seen on more than one visit, counted on `visits` (and,
 * for a content dimension, their items) for those visitors only.
 */
const compileRollupQuery = (input: CompileInput, dimension: string, kind: keyof typeof ROLLUP_TABLES): CompiledSql => {
  const { params, site, from, to, time, tz, page, nd } = queryPrologue(input)
  const table = ROLLUP_TABLES[kind]
  const dims = (column: string, columns: Columns = {}) =>
    input.dimensions.map((d, i) => `${dimensionExpr(d, column, tz, columns)} AS ${dimensionAlias(i)}`)
  const rowColumns: Columns = kind === "items" ? { [dimension]: `v.${dimension}` } : {}
  const value = dimension === TOTAL_DIMENSION || dimension === BOTS_DIMENSION ? "" : `, r.value AS ${dimension}`
  const columns = `${value}, ${table.columns}`
  const hourly = (lo: string, hi: string) =>
    `SELECT r.hour AS started_at${columns} FROM ${table.hourly} r ` +
    `WHERE r.site_id = ${site}::int AND r.dim = '${dimension}' AND r.hour >= ${lo}::timestamptz AND r.hour < ${hi}::timestamptz`
  // without time buckets: the whole UTC days inside the range from the daily rows, the hours at its ends from the hourly ones
  const firstDay = Math.ceil(input.period.fromMs / DAY_MS) * DAY_MS
  const lastDay = Math.floor(input.period.toMs / DAY_MS) * DAY_MS
  let rows = hourly(from, to)
  if (!time && firstDay < lastDay) {
    const d1 = params.add(new Date(firstDay).toISOString())
    const d2 = params.add(new Date(lastDay).toISOString())
    const daily = `SELECT (r.day::timestamp AT TIME ZONE 'UTC') AS started_at${columns} FROM ${table.daily} r ` +
      `WHERE r.site_id = ${site}::int AND r.dim = '${dimension}' AND r.day >= (${d1}::timestamptz AT TIME ZONE 'UTC')::date ` +
      `AND r.day < (${d2}::timestamptz AT TIME ZONE 'UTC')::date`
    rows = `${hourly(from, d1)} UNION ALL ${daily} UNION ALL ${hourly(d2, to)}`
  }
  const where = (base: ReadonlyArray<string>, columns: Columns) => {
    const all = [...base, ...input.filters.map((f) => filterSql(f, params, columns))]
    return all.length === 0 ? "" : ` WHERE ${all.join(" AND ")}`
  }
  const g = `SELECT ${[...dims("v.started_at", rowColumns), ...table.sums].join(", ")} FROM (${rows}) v${where([], rowColumns)}${groupSql(nd)}` +
    (nd === 0 ? "" : " HAVING sum(v.visits) > 0")
  const aliases = input.dimensions.map((_, i) => dimensionAlias(i))
  const ctes = [`g AS (${g})`]
  let join = ""
  if (input.metrics.includes("visitors")) {
    const itemJoin = kind === "items"
      ? ` JOIN visit_items i ON i.site_id = v.site_id AND i.session_id = v.session_id AND i.dim = '${dimension}'`
      : ""
    const surplusColumns: Columns = kind === "items" ? { [dimension]: "i.value" } : {}
    const surplus = surplusSql(input, { params, site, from, to }, dims("v.started_at", surplusColumns), itemJoin, surplusColumns)
    ctes.push(`s AS (${surplus})`)
    join = nd === 0 ? " CROSS JOIN s" : ` LEFT JOIN s ON ${aliases.map((a) => `s.${a} IS NOT DISTINCT FROM g.${a}`).join(" AND ")}`
  }
  const metrics = input.metrics.map((m) => `${ROLLUP_METRIC[m]} AS ${metricAlias(m)}`)
  const text = `WITH ${ctes.join(", ")} SELECT ${[...aliases.map((a) => `g.${a}`), ...metrics].join(", ")} FROM g${join}${orderSql(input)}${page}`
  return { text, params: params.values }
}

/** per (dimensions, visitor) rows `s` → per (dimensions, visitor) `w` → the metrics, by hashed grouping (never a sort) */
const perVisitorQuery = (input: CompileInput, inner: string, page: string): string => {
  const dimAliases = input.dimensions.map((_, i) => dimensionAlias(i))
  const perVisitor = [
    `count(*) FILTER (WHERE ${HUMAN}) AS visits`,
    "sum(pv) AS pv",
    "sum(ev) AS ev",
    "sum(conv) AS conv",
    "sum(rev) AS rev",
    "sum(bots) AS bots",
    `count(*) FILTER (WHERE ${HUMAN} AND bounce) AS bounces`,
    `count(*) FILTER (WHERE ${HUMAN} AND bounce IS NOT NULL) AS bounce_known`,
    `sum(dur) FILTER (WHERE ${HUMAN}) AS dur`,
    `count(dur) FILTER (WHERE ${HUMAN}) AS dur_n`,
    "bool_or(conv > 0) AS converted"
  ]
  const middle = `SELECT ${[...dimAliases, ...perVisitor].join(", ")} FROM s GROUP BY ${[...dimAliases, "vid"].join(", ")}`
  const metrics = input.metrics.map((m) => `${EVENT_METRIC[m]} AS ${metricAlias(m)}`)
  return `WITH s AS (${inner}), w AS (${middle}) SELECT ${[...dimAliases, ...metrics].join(", ")} FROM w${groupSql(input.dimensions.length)}${
    orderSql(input)
  }${page}`
}

/** The visit columns of a per-(dimensions, visit) row: its visitor, bounce and duration. */
const VISIT_COLUMNS = [
  "coalesce(v.visitor_id_daily, convert_to(v.session_id, 'UTF8')) AS vid",
  "bool_or(v.pageviews <= 1 AND NOT v.engaged) AS bounce",
  "max(extract(epoch FROM v.last_seen_at - v.started_at)) AS dur"
]

/** The visitors `visitor_visits` lists as seen on two or more visits around the period (few). */
const repeatedVisitorsSql = (q: { site: string; from: string; to: string }) =>
  `SELECT x.visitor_id_daily FROM visitor_visits x WHERE x.site_id = ${q.site}::int AND x.visits > 1 ` +
  `AND x.last_start >= ${q.from}::timestamptz AND x.first_start < ${q.to}::timestamptz`

/**
 * The repeated visitors' surplus: per group, how many of the period's human visits (after the
 * query's filters) belong to a daily visitor id already counted on another of them — read from
 * `visits` only for the visitors `visitor_visits` lists as seen on two or more visits around the
 * period (few), each one's visits by the (site_id, visitor_id_daily) index (LATERAL, OFFSET 0:
 * that plan whatever the statistics say); for a content dimension, joined to those visits'
 * items (`join`, values in `columns`). Dimension expressions over `v` (and `i`).
 */
const surplusSql = (
  input: CompileInput,
  q: { params: Params; site: string; from: string; to: string },
  dims: ReadonlyArray<string>,
  join = "",
  columns: Columns = {},
  filters: ReadonlyArray<string> = input.filters.map((f) => filterSql(f, q.params, columns))
) => {
  const repeated = repeatedVisitorsSql(q)
  return `SELECT ${[...dims, "count(*) - count(DISTINCT v.visitor_id_daily) AS surplus"].join(", ")} ` +
    `FROM (${repeated}) x CROSS JOIN LATERAL (SELECT * FROM visits w WHERE w.site_id = ${q.site}::int ` +
    `AND w.visitor_id_daily = x.visitor_id_daily AND w.started_at >= ${q.from}::timestamptz AND w.started_at < ${q.to}::timestamptz ` +
    `AND NOT w.is_bot OFFSET 0) v${join}` + (filters.length === 0 ? "" : ` WHERE ${filters.join(" AND ")}`) + groupSql(dims.length)
}

/**
 * A visits-path query with `visitors` (a dimension the rollups do not keep — referrer, region,
 * city, organisation, entry page… — several dimensions, a dimension's pageviews or duration):
 * `count(DISTINCT visitor)` per group sorts every visit of the period, so instead the human
 * visits are counted per group (hashed) and the repeated visitors' surplus subtracted, as the
 * rollups do — the same number. Both sets of groups meet in one hashed GROUP BY (NULL values
 * group together, as in the dimension), which carries the other metrics through (`max`: only
 * the visits' row of a group has them).
 */
const visitorsBySurplus = (
  input: CompileInput,
  q: { readonly nd: number; readonly page: string },
  /** the visits' groups: `d0…`, `n` (human visits), the other metrics (`m_<metric>`) */
  g: string,
  /** the surplus statement ({@link surplusSql}, or over the shared visits: {@link compileSharedVisits}) */
  s: string
): string => {
  const aliases = input.dimensions.map((_, i) => dimensionAlias(i))
  const others = input.metrics.filter((m) => m !== "visitors")
  const both = `SELECT ${[...aliases, "n", "0::bigint AS surplus", ...others.map(metricAlias)].join(", ")} FROM g UNION ALL ` +
    `SELECT ${[...aliases, "0::bigint", "surplus", ...others.map(() => "NULL")].join(", ")} FROM s`
  const metrics = input.metrics.map((m) =>
    m === "visitors" ? `(sum(u.n) - sum(u.surplus))::bigint AS ${metricAlias(m)}` : `max(u.${metricAlias(m)}) AS ${metricAlias(m)}`
  )
  return `WITH g AS (${g}), s AS (${s}) SELECT ${[...aliases.map((a) => `u.${a}`), ...metrics].join(", ")} FROM (${both}) u${groupSql(q.nd)}${
    orderSql(input)
  }${q.page}`
}

/**
 * The filters of a visits-path query with a filter on one content dimension (`having`, {@link
 * queryPath}): the visit filters as they are, and the ones on the content dimension together as
 * "the visit has an item matching them all" — the same visits the items path counts (a visit
 * counts there when one of its items matches) — by `visit_items`' value index (migration 0014),
 * whose entries carry the visit's start hour (0019): only the items of visits started in the
 * period's hours are read (the hour bounds hold for every visit of the period, whose start
 * `v.started_at` is what decides).
 */
const havingItemSql = (input: CompileInput, q: { params: Params; from: string; to: string }, dimension: ItemDimension): Array<string> => {
  const onItem = (f: Filter) => filterDimensions([f]).includes(dimension)
  const columns: Columns = { [dimension]: "i.value" }
  const item = input.filters.filter(onItem).map((f) => filterSql(f, q.params, columns))
  return [
    ...input.filters.filter((f) => !onItem(f)).map((f) => filterSql(f, q.params)),
    `EXISTS (SELECT 1 FROM visit_items i WHERE i.site_id = v.site_id AND i.dim = '${dimension}' AND i.session_id = v.session_id ` +
    `AND ${itemHours(q.from, q.to)} AND ${item.join(" AND ")})`
  ]
}

/**
 * The items of the visits started in a period, by the hour of their visit's start that every
 * item carries (`visit_items.hour`, migration 0019): the hours from the period's first to its
 * end. Redundant with the visits' own period condition, but it lets the items' value index skip
 * the items of every other visit with the value (all of the site's history).
 */
const itemHours = (from: string, to: string) => `i.hour >= ${hourSql(`${from}::timestamptz`)} AND i.hour < ${to}::timestamptz`

/**
 * Which visits a query counts: the human ones; with `bot_events`
 * all; with `bot_events` alone the bot visits only (as the visits path: their partial index,
 * migration 0012, and then their items or events — under a filter on the top page the Network
 * page's bot events read that page's items of the period's 10K bot visits instead of its 235K
 * visits': 0.87 s → 0.1 s on the 10M data set).
 */
const botsSql = (input: CompileInput): ReadonlyArray<string> =>
  input.metrics.every((m) => m === "bot_events") ? ["v.is_bot"] : input.metrics.includes("bot_events") ? [] : ["NOT v.is_bot"]

/**
 * A visits-path query over the visits `fromVisits` (`FROM … [WHERE …]`, rows `v`): its dimensions
 * and metrics per group, visitors by the repeated visitors' surplus ({@link visitorsBySurplus};
 * `surplus`: that statement for the query's dimension expressions) unless the plain shape is asked
 * (`rollups: false`) or realtime.
 */
const groupVisitsSql = (
  input: CompileInput,
  q: { params: Params; site: string; from: string; to: string; tz: string; nd: number; page: string },
  fromVisits: string,
  surplus: (dims: ReadonlyArray<string>) => string
): string => {
  const bots = input.metrics.includes("bot_events")
  const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "v.started_at", q.tz)} AS ${dimensionAlias(i)}`)
  if (input.rollups !== false && !input.active && input.metrics.includes("visitors")) {
    const humans = bots ? "count(*) FILTER (WHERE NOT v.is_bot)" : "count(*)"
    const others = input.metrics.filter((m) => m !== "visitors").map((m) => `${visitMetric(m, bots)} AS ${metricAlias(m)}`)
    const g = `SELECT ${[...dims, `${humans} AS n`, ...others].join(", ")} ${fromVisits}${groupSql(q.nd)}`
    return visitorsBySurplus(input, q, g, surplus(dims))
  }
  const metrics = input.metrics.map((m) => `${visitMetric(m, bots)} AS ${metricAlias(m)}`)
  return `SELECT ${[...dims, ...metrics].join(", ")} ${fromVisits}${groupSql(q.nd)}${orderSql(input)}${q.page}`
}

/**
 * The key of the visits a query reads, when other queries may share them ({@link
 * compileSharedVisits}): a query of the visits path under a filter on a page or an event type
 * (`having`, {@link queryPath}) — every such query of a dashboard page joins the period's visits
 * with the page's items, the costliest step of each (docs/api.md "How the numbers are computed").
 * Queries with the same key (site, period, filters) read the same visits. undefined: the query
 * runs alone.
 */
export const sharedVisitsKey = (input: CompileInput): string | undefined => {
  if (input.active || input.rollups === false || input.items === false) return undefined
  const path = queryPath(input)
  if (path.path !== "visits" || path.having === undefined) return undefined
  return JSON.stringify([input.siteId, input.period.fromMs, input.period.toMs, input.filters])
}

/** The most expressions PostgreSQL's `GROUPING()` takes (its answer is an int4 bit mask). */
const GROUPING_MAX = 31

/**
 * Several queries with the same {@link sharedVisitsKey}, as one statement: the period's human
 * visits that match the filters are selected once (`fv`, the columns the queries read), the
 * repeated visitors' among them once (`fr`, for the visitors' surplus), and grouped once for all
 * the queries (`ga`: `GROUP BY GROUPING SETS`, one set per distinct list of dimensions, every
 * metric any of them asks; a row's set is its `GROUPING()` mask) — one pass over `fv` with a
 * hash table per set instead of a pass per query. Each query (`q0`, `q1`, …) then takes its
 * set's rows and finishes as {@link compileQuery} would (visitors by the surplus, order, page):
 * the same numbers. Rows: `q` (the query's index) and `r` (its row as JSON: `d0…`,
 * `m_<metric>`), in each query's order.
 */
export const compileSharedVisits = (inputs: ReadonlyArray<CompileInput>): CompiledSql => {
  const first = inputs[0]!
  const path = queryPath(first)
  if (path.path !== "visits" || path.having === undefined) throw new Error("compileSharedVisits: not a visits query with a content filter")
  const shared = periodParams(first)
  const { params, site, from, to } = shared
  const where = [
    `v.site_id = ${site}::int`,
    `v.started_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`,
    ...botsSql(first),
    ...havingItemSql(first, { params, from, to }, path.having)
  ]
  // what the metrics read (VISIT_LEVEL_METRICS) and the queries' visit dimensions
  const columns = new Set(["visitor_id_daily", "started_at", "last_seen_at", "pageviews", "engaged"])
  for (const input of inputs) for (const d of input.dimensions) if (!isTimeDimension(d)) columns.add(d)
  const ctes = [`fv AS MATERIALIZED (SELECT ${[...columns].map((c) => `v.${c}`).join(", ")} FROM visits v WHERE ${where.join(" AND ")})`]
  if (inputs.some((input) => input.metrics.includes("visitors"))) {
    ctes.push(`fr AS MATERIALIZED (SELECT * FROM fv v WHERE v.visitor_id_daily IN (${repeatedVisitorsSql(shared)}))`)
  }
  const prologues = inputs.map((input) => queryPrologue(input, shared))
  // every query's dimension expressions, the distinct ones numbered (`x0`, `x1`, … in `ga`)
  const exprs: Array<string> = []
  const dimensionIndexes = inputs.map((input, k) =>
    input.dimensions.map((d) => {
      const e = dimensionExpr(d, "v.started_at", prologues[k]!.tz)
      if (!exprs.includes(e)) exprs.push(e)
      return exprs.indexOf(e)
    })
  )
  const grouped = exprs.length <= GROUPING_MAX
  if (grouped) {
    // the metrics of the having path are visit-level ones over human visits only (queryPath)
    const metrics = [...new Set(inputs.flatMap((input) => input.metrics.filter((m) => m !== "visitors")))]
    const sets = [...new Set(dimensionIndexes.map((ix) => [...ix].sort((a, b) => a - b).join(",")))]
    const select = [
      `${exprs.length === 0 ? "0" : `GROUPING(${exprs.join(", ")})`} AS gs`,
      ...exprs.map((e, j) => `${e} AS x${j}`),
      "count(*) AS n",
      ...metrics.map((m) => `${visitMetric(m, false)} AS ${metricAlias(m)}`)
    ]
    const groupingSets = sets.map((set) => `(${set === "" ? "" : set.split(",").map((j) => exprs[Number(j)]).join(", ")})`)
    ctes.push(`ga AS (SELECT ${select.join(", ")} FROM fv v GROUP BY GROUPING SETS (${groupingSets.join(", ")}))`)
  }
  /** a query's rows of `ga`: the mask `GROUPING()` gives its set (a bit per expression, the first the highest, 1 = not in the set) */
  const setRows = (k: number, columns: ReadonlyArray<string>) => {
    const mask = exprs.reduce((acc, _, j) => (dimensionIndexes[k]!.includes(j) ? acc : acc | (1 << (exprs.length - 1 - j))), 0)
    const dims = dimensionIndexes[k]!.map((j, i) => `ga.x${j} AS ${dimensionAlias(i)}`)
    return `SELECT ${[...dims, ...columns].join(", ")} FROM ga WHERE ga.gs = ${mask}`
  }
  inputs.forEach((input, k) => {
    const q = prologues[k]!
    const surplus = (dims: ReadonlyArray<string>) =>
      `SELECT ${[...dims, "count(*) - count(DISTINCT v.visitor_id_daily) AS surplus"].join(", ")} FROM fr v${groupSql(q.nd)}`
    if (!grouped) {
      ctes.push(`q${k} AS (${groupVisitsSql(input, q, "FROM fv v", surplus)})`)
      return
    }
    const others = input.metrics.filter((m) => m !== "visitors").map(metricAlias)
    if (input.metrics.includes("visitors")) {
      const dims = dimensionIndexes[k]!.map((j, i) => `${exprs[j]} AS ${dimensionAlias(i)}`)
      ctes.push(`q${k} AS (${visitorsBySurplus(input, q, setRows(k, ["ga.n", ...others.map((m) => `ga.${m}`)]), surplus(dims))})`)
    } else {
      ctes.push(`q${k} AS (SELECT * FROM (${setRows(k, input.metrics.map((m) => `ga.${metricAlias(m)}`))}) t${orderSql(input)}${q.page})`)
    }
  })
  const rows = inputs.map((_, k) => `SELECT ${k} AS q, row_number() OVER () AS n, to_jsonb(q${k}) AS r FROM q${k}`).join(" UNION ALL ")
  return { text: `WITH ${ctes.join(", ")} SELECT a.q, a.r FROM (${rows}) a ORDER BY a.q, a.n`, params: params.values }
}

/** The statement of a query over one period. Rows: `d0…` (dimension values), `m_<metric>`. */
export const compileQuery = (input: CompileInput): CompiledSql => {
  const path = queryPath(input)
  if (path.path === "visit-rollups") return compileRollupQuery(input, path.dimension, "visits")
  if (path.path === "item-rollups") return compileRollupQuery(input, path.dimension, "items")
  const { params, site, from, to, tz, page, nd } = queryPrologue(input)
  const bots = input.metrics.includes("bot_events")
  // the visits of the period: started in it (realtime is read from the period's events: the
  // visits and events paths below)
  const started = `v.started_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`

  if (path.path === "visits") {
    // realtime: the sessions of the period's events (received since `from` and before `to`, as
    // the event queries bound a period) by the (domain_id, received_at) index, then each visit
    // by its key — LATERAL with OFFSET 0 keeps that plan whatever the statistics say (a stale
    // estimate once read every visit of the site that started before `to`: 1.3 s on the
    // 10M-event data set)
    const visits = input.active
      ? `(SELECT DISTINCT e.session_id FROM raw_events e WHERE e.domain_id = ${site}::int AND e.received_at >= ${from}::timestamptz ` +
        `AND e.received_at < ${to}::timestamptz) r CROSS JOIN LATERAL (SELECT * FROM visits w WHERE w.site_id = ${site}::int ` +
        `AND w.session_id = r.session_id OFFSET 0) v`
      : "visits v"
    const when = input.active ? `v.last_seen_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz` : started
    const filters = path.having === undefined ? input.filters.map((f) => filterSql(f, params)) : havingItemSql(input, { params, from, to }, path.having)
    const where = [
      `v.site_id = ${site}::int`,
      when,
      ...botsSql(input),
      ...filters
    ]
    const fromVisits = `FROM ${visits} WHERE ${where.join(" AND ")}`
    const surplus = (dims: ReadonlyArray<string>) => surplusSql(input, { params, site, from, to }, dims, "", {}, filters)
    return { text: groupVisitsSql(input, { params, site, from, to, tz, nd, page }, fromVisits, surplus), params: params.values }
  }

  const human = bots ? "NOT v.is_bot" : "true"

  if (path.path === "items") {
    // per (dimensions, visit): the visit's items of the one content dimension (value = `i.value`)
    const columns: Columns = { [path.dimension]: "i.value" }
    const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "v.started_at", tz, columns)} AS ${dimensionAlias(i)}`)
    const sums = (column: string, alias: string) => `coalesce(sum(${column}) FILTER (WHERE ${human}), 0) AS ${alias}`
    const perVisit = [
      sums("i.events", "ev"),
      sums("i.pageviews", "pv"),
      sums("i.conversions", "conv"),
      sums("i.revenue", "rev"),
      "coalesce(sum(i.events) FILTER (WHERE v.is_bot), 0) AS bots"
    ]
    const where = [
      `v.site_id = ${site}::int`,
      started,
      ...botsSql(input),
      ...input.filters.map((f) => filterSql(f, params, columns))
    ]
    const inner = `SELECT ${[...dims, ...VISIT_COLUMNS, ...perVisit].join(", ")} FROM visits v ` +
      `JOIN visit_items i ON i.site_id = v.site_id AND i.session_id = v.session_id AND i.dim = '${path.dimension}' AND ${itemHours(from, to)} ` +
      `WHERE ${where.join(" AND ")} GROUP BY ${groupKeys(nd, ["v.session_id", "v.visitor_id_daily"])}`
    return { text: perVisitorQuery(input, inner, page), params: params.values }
  }

  // the events of the period's visits: those received from its start until the last one's last event
  if (!input.active && input.filters.every(onEventsOrVisit)) {
    return { text: perVisitorQuery(input, eventsPerVisitSql(input, { params, site, from, to, tz, started, human }), page), params: params.values }
  }
  const timeColumn = input.active ? "e.received_at" : "v.started_at"
  const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, timeColumn, tz)} AS ${dimensionAlias(i)}`)
  const until = input.active ? `e.received_at < ${to}::timestamptz` : untilLastVisitEvent(input, { params, site, from, to })
  const where = [
    `e.domain_id = ${site}::int`,
    `e.received_at >= ${from}::timestamptz`,
    until,
    ...(input.active ? [] : [started]),
    ...botsSql(input),
    ...customEventsSql(input.filters),
    ...input.filters.map((f) => filterSql(f, params))
  ]
  const perVisit = [
    `count(*) FILTER (WHERE ${human}) AS ev`,
    `count(*) FILTER (WHERE ${human} AND e.kind = 'view') AS pv`,
    `count(*) FILTER (WHERE ${human} AND e.event_type = 'conversion') AS conv`,
    `coalesce(sum(${EVENT_VALUE}) FILTER (WHERE ${human} AND e.event_type = 'conversion'), 0) AS rev`,
    "count(*) FILTER (WHERE v.is_bot) AS bots"
  ]
  const inner = `SELECT ${[...dims, ...VISIT_COLUMNS, ...perVisit].join(", ")} FROM raw_events e ` +
    `JOIN visits v ON v.site_id = e.domain_id AND v.session_id = e.session_id ` +
    `WHERE ${where.join(" AND ")} GROUP BY ${groupKeys(nd, ["v.session_id", "v.visitor_id_daily"])}`
  return { text: perVisitorQuery(input, inner, page), params: params.values }
}

/** The event type every view is stored with (Normalize.ts, `normalizeView`), and only views. */
const VIEW_EVENT_TYPE = "pageview"

/**
 * Whether the filters keep the views out: a top-level `is_not` on the event type that names
 * `pageview`, or an `is` on it that does not (the dashboard's Events page lists the custom events
 * so). Then an events-path statement also asks for `e.kind <> 'view'` — true of every event the
 * filters keep, since every view has that event type — which lets PostgreSQL read the custom
 * events of a page by their own index (migration 0021) instead of every event of the period.
 */
const customEventsOnly = (filters: ReadonlyArray<Filter>): boolean =>
  filters.some((f) =>
    f.op === "is_not" ? f.dimension === "event_type" && f.values.includes(VIEW_EVENT_TYPE)
    : f.op === "is" ? f.dimension === "event_type" && !f.values.includes(VIEW_EVENT_TYPE)
    : false
  )

/** The events-path condition of {@link customEventsOnly} (none when the filters may keep views). */
const customEventsSql = (filters: ReadonlyArray<Filter>): ReadonlyArray<string> => customEventsOnly(filters) ? ["e.kind <> 'view'"] : []

/** Whether a filter names content dimensions only. */
const onEvents = (f: Filter): boolean => filterDimensions([f]).every(isEventDimension)

/** Whether a top-level filter names content dimensions only, or visit dimensions only. */
const onEventsOrVisit = (f: Filter): boolean => onEvents(f) || !filterDimensions([f]).some(isEventDimension)

/**
 * The per-(dimensions, visit) rows of an events-path query over started visits whose filters
 * each name content dimensions only or visit dimensions only: the period's events are counted
 * per (content dimension values, session) first — the events' filters applied there — and only
 * those per-session rows are joined to their visits (the visit filters and dimensions applied
 * there), so the join meets one row per visit and value instead of one per event. (Joined per
 * event, a page filter on the Events page read its ≈ 300K events' visits one by one, by key:
 * 5.5 s on the 10M-event data set.) The same rows as the per-event join, grouped the same way.
 */
const eventsPerVisitSql = (
  input: CompileInput,
  q: { params: Params; site: string; from: string; to: string; tz: string; started: string; human: string }
): string => {
  const content = input.dimensions.flatMap((d, i) => (isEventDimension(d) ? [[d, `c${i}`] as const] : []))
  const columns: Columns = Object.fromEntries(content.map(([d, alias]) => [d, `a.${alias}`]))
  const a = `SELECT ${[...content.map(([d, alias]) => `${propertyExpr(d)} AS ${alias}`), "e.session_id"].join(", ")}, ` +
    "count(*) AS ev, count(*) FILTER (WHERE e.kind = 'view') AS pv, count(*) FILTER (WHERE e.event_type = 'conversion') AS conv, " +
    `coalesce(sum(${EVENT_VALUE}) FILTER (WHERE e.event_type = 'conversion'), 0) AS rev ` +
    `FROM raw_events e WHERE ${
      [
        `e.domain_id = ${q.site}::int`,
        `e.received_at >= ${q.from}::timestamptz`,
        untilLastVisitEvent(input, q),
        ...customEventsSql(input.filters),
        ...input.filters.filter(onEvents).map((f) => filterSql(f, q.params))
      ].join(" AND ")
    } GROUP BY ${groupKeys(content.length + 1)}`
  const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "v.started_at", q.tz, columns)} AS ${dimensionAlias(i)}`)
  const sums = (column: string, alias: string, when = q.human) => `coalesce(sum(a.${column}) FILTER (WHERE ${when}), 0) AS ${alias}`
  const perVisit = [sums("ev", "ev"), sums("pv", "pv"), sums("conv", "conv"), sums("rev", "rev"), sums("ev", "bots", "v.is_bot")]
  const where = [
    `v.site_id = ${q.site}::int`,
    q.started,
    ...botsSql(input),
    ...input.filters.filter((f) => !onEvents(f)).map((f) => filterSql(f, q.params))
  ]
  return `WITH a AS (${a}) SELECT ${[...dims, ...VISIT_COLUMNS, ...perVisit].join(", ")} FROM a ` +
    `JOIN visits v ON v.site_id = ${q.site}::int AND v.session_id = a.session_id WHERE ${where.join(" AND ")} ` +
    `GROUP BY ${groupKeys(input.dimensions.length, ["v.session_id", "v.visitor_id_daily"])}`
}

/** The first event's time of the site (for `date_range: "all"`). */
export const earliestSql = (siteId: number): CompiledSql => ({
  text: "SELECT min(received_at) AS earliest FROM raw_events WHERE domain_id = $1::int",
  params: [String(siteId)]
})

// ---------------------------------------------------------------- funnel

const stepCondition = (step: FunnelStep, params: Params): string => {
  if ("page" in step) {
    const path = PAGE_PATH("e.page_url")
    // (an exact page: the URL holds it, a cheap test first — see `urlHolds`)
    return step.page.includes("*")
      ? `(e.kind = 'view' AND ${path} LIKE ${params.add(likeEscape(step.page).replaceAll("*", "%"))})`
      : `(e.kind = 'view' AND ${urlContainsAny([step.page], params)} AND ${path} = ${params.add(step.page)})`
  }
  if ("event_type" in step) return `(e.event_type = ${params.add(step.event_type)})`
  return `(e.event_type = 'funnel_step' AND e.metadata->>'funnelId' = ${params.add(step.funnel_id)} AND e.metadata->>'stepId' = ${
    params.add(step.step_id)
  })`
}

export interface FunnelInput {
  readonly siteId: number
  readonly period: Period
  readonly windowMinutes: number
  readonly steps: ReadonlyArray<FunnelStep>
  readonly filters: ReadonlyArray<Filter>
}

/**
 * Visitors per step: a visitor (daily visitor id) reaches step k when, after an event of step 1,
 * it has events of steps 2…k in that order (each at or after the previous one, never the same
 * event twice) all within `window` of the step-1 event. Every step-1 event is a start; the
 * earliest match of each next step is kept (which is optimal for the steps after it). One row,
 * `c1…cN`.
 */
export const compileFunnel = (input: FunnelInput): CompiledSql => {
  const { params, site, from, to } = periodParams(input)
  const window = params.add(String(input.windowMinutes))
  const conditions = input.steps.map((s) => stepCondition(s, params))
  const join = filterDimensions(input.filters).some((d) => !isEventDimension(d))
  const where = [
    `e.domain_id = ${site}::int`,
    `e.received_at >= ${from}::timestamptz`,
    `e.received_at < ${to}::timestamptz`,
    "NOT e.is_bot",
    `(${conditions.join(" OR ")})`,
    ...input.filters.map((f) => filterSql(f, params))
  ]
  const vid = join
    ? "coalesce(v.visitor_id_daily, e.visitor_id_daily, convert_to(e.session_id, 'UTF8'))"
    : "coalesce(e.visitor_id_daily, (SELECT x.visitor_id_daily FROM visits x WHERE x.site_id = e.domain_id AND x.session_id = e.session_id), convert_to(e.session_id, 'UTF8'))"
  const joinSql = join ? " LEFT JOIN visits v ON v.site_id = e.domain_id AND v.session_id = e.session_id" : ""
  const ev = `ev AS MATERIALIZED (SELECT ${vid} AS vid, e.received_at AS t, e.id, ${
    conditions.map((c, i) => `${c} AS s${i + 1}`).join(", ")
  } FROM raw_events e${joinSql} WHERE ${where.join(" AND ")})`
  const ctes = [ev, "f1 AS (SELECT vid, t AS t0, t, id FROM ev WHERE s1)"]
  for (let k = 2; k <= input.steps.length; k++) {
    ctes.push(
      `f${k} AS (SELECT DISTINCT ON (f.vid, f.t0) f.vid, f.t0, ev.t, ev.id FROM f${k - 1} f JOIN ev ON ev.vid = f.vid AND ev.s${k} ` +
        `AND ev.t >= f.t AND ev.id <> f.id AND ev.t <= f.t0 + ${window}::int * interval '1 minute' ORDER BY f.vid, f.t0, ev.t, ev.id)`
    )
  }
  const counts = input.steps.map((_, i) => `(SELECT count(DISTINCT vid) FROM f${i + 1}) AS c${i + 1}`)
  return { text: `WITH ${ctes.join(", ")} SELECT ${counts.join(", ")}`, params: params.values }
}
