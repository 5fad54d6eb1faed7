/**
 * SQL of the stats query API, built from a validated query (StatsQuery.ts). Pure: a statement
 * text with `$n` placeholders and its parameters (text arrays as `{ textArray }`, encoded by
 * the program that runs it).
 *
 * Two shapes, chosen by what the query touches (docs/api.md "How the numbers are computed"):
 * - visit query, `FROM visits` — every dimension and filter is a visit's (source, country,
 *   entry page, …) and every metric is one a visit row holds: a visit counts in the period it
 *   started in (realtime: it was active in the last 5 minutes);
 * - event query, `FROM raw_events` — a page / hostname / event type dimension or filter, or a
 *   metric only events have (conversions, revenue, bot events): events received in the period,
 *   grouped per (dimensions, session) first, then per dimensions, joined to their visit for
 *   visit dimensions, visitors, bounce and duration.
 * Humans only (`NOT is_bot`), except `bot_events`.
 */
import type { Dimension, Filter, FunnelStep, Metric, Period, PropertyDimension } from "./StatsQuery.ts"
import { isEventDimension, isTimeDimension, timeGrainOf } from "./StatsQuery.ts"
import { offsetAt } from "./LocalTime.ts"
import { DAY_MS } from "./Time.ts"
import { isRollupDimension, ROLLUP_BUCKET_MS, TOTAL_DIMENSION } from "./VisitRollups.ts"

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
   * false: never the visit rollups nor `visitor_visits` — visitors by count(DISTINCT) over
   * `visits`, the plain shape tests compare the others with; default true
   */
  readonly rollups?: boolean
}

const EVENT_ONLY_METRICS: ReadonlyArray<Metric> = ["conversions", "conversion_rate", "revenue", "bot_events"]
/** metrics that need the event's visit (its visitor id, bounce, duration) */
const VISIT_JOIN_METRICS: ReadonlyArray<Metric> = ["visitors", "bounce_rate", "visit_duration", "conversion_rate"]

const filterDimensions = (filters: ReadonlyArray<Filter>): Array<PropertyDimension> =>
  filters.flatMap((f): Array<PropertyDimension> => {
    if ("filters" in f) return filterDimensions(f.filters)
    if ("filter" in f) return filterDimensions([f.filter])
    return [f.dimension]
  })

/** Whether the query reads raw_events (else: visits only). */
export const isEventQuery = (input: Pick<CompileInput, "metrics" | "dimensions" | "filters">): boolean =>
  input.dimensions.some(isEventDimension) ||
  filterDimensions(input.filters).some(isEventDimension) ||
  input.metrics.some((m) => EVENT_ONLY_METRICS.includes(m))

const PAGE_PATH = (column: string) => `spoolway_page_path(${column})`
const URL_HOST = (column: string) => `spoolway_url_host(${column})`

const propertyExpr = (d: PropertyDimension): string => {
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

const dimensionExpr = (d: Dimension, timeColumn: string, tz: string): string => {
  const grain = timeGrainOf(d)
  if (grain !== undefined) return `to_char(date_trunc('${grain}', timezone(${tz}, ${timeColumn})), '${TIME_FORMAT[grain]}')`
  return propertyExpr(d as PropertyDimension)
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`)

const filterSql = (filter: Filter, params: Params): string => {
  switch (filter.op) {
    case "and":
    case "or":
      return `(${filter.filters.map((f) => filterSql(f, params)).join(filter.op === "and" ? " AND " : " OR ")})`
    case "not":
      return `(NOT coalesce(${filterSql(filter.filter, params)}, false))`
    case "is": {
      const expr = propertyExpr(filter.dimension)
      const known = `${expr} = ANY(${params.add({ textArray: filter.values })}::text[])`
      return filter.unknown ? `(${expr} IS NULL OR ${known})` : `(${known})`
    }
    case "is_not": {
      const expr = propertyExpr(filter.dimension)
      const known = `${expr} <> ALL(${params.add({ textArray: filter.values })}::text[])`
      return filter.unknown ? `(${expr} IS NOT NULL AND ${known})` : `(${expr} IS NULL OR ${known})`
    }
    case "contains":
      return `(${propertyExpr(filter.dimension)} ILIKE ANY(${
        params.add({ textArray: filter.values.map((v) => `%${likeEscape(v)}%`) })
      }::text[]))`
    case "matches":
      return `(${propertyExpr(filter.dimension)} ~ ANY(${params.add({ textArray: filter.values })}::text[]))`
  }
}

const VISIT_METRIC: Record<Exclude<Metric, "conversions" | "conversion_rate" | "revenue" | "bot_events">, string> = {
  visitors: "count(DISTINCT coalesce(v.visitor_id_daily, convert_to(v.session_id, 'UTF8')))",
  visits: "count(*)",
  pageviews: "coalesce(sum(v.pageviews), 0)",
  views_per_visit: "coalesce(sum(v.pageviews), 0)::float8 / nullif(count(*), 0)",
  bounce_rate: "100.0 * count(*) FILTER (WHERE v.pageviews <= 1 AND NOT v.engaged) / nullif(count(*), 0)",
  visit_duration: "avg(extract(epoch FROM v.last_seen_at - v.started_at))",
  events: "coalesce(sum(v.events), 0)"
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

/** Metrics of an event query that need its visits (distinct sessions or visitors, per-visit figures). */
const PER_VISIT_METRICS: ReadonlyArray<Metric> = [
  "visitors",
  "visits",
  "views_per_visit",
  "bounce_rate",
  "visit_duration",
  "conversion_rate"
]

/** The metrics that are plain sums over the events. */
const sumOfEvents = (m: Metric, human: string, value: string): string => {
  switch (m) {
    case "pageviews":
      return `count(*) FILTER (WHERE ${human} AND e.kind = 'view')`
    case "events":
      return `count(*) FILTER (WHERE ${human})`
    case "conversions":
      return `count(*) FILTER (WHERE ${human} AND e.event_type = 'conversion')`
    case "revenue":
      return `coalesce(sum(${value}) FILTER (WHERE ${human} AND e.event_type = 'conversion'), 0)`
    default:
      return "count(*) FILTER (WHERE e.is_bot)"
  }
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

const groupSql = (n: number) => (n === 0 ? "" : ` GROUP BY ${Array.from({ length: n }, (_, i) => i + 1).join(", ")}`)

/** Metrics the site's total rows of the visit rollups answer (every visit metric). */
const TOTAL_ROLLUP_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"]
/** Metrics a dimension's rows answer (they hold visits and bounces). */
const DIMENSION_ROLLUP_METRICS: ReadonlyArray<Metric> = ["visitors", "visits", "bounce_rate"]

/** Whether every bucket boundary of the period in `tz` falls on a UTC hour (whole-hour offsets throughout). */
const wholeHourOffsets = (period: Period, tz: string): boolean => {
  const step = 6 * ROLLUP_BUCKET_MS
  for (let t = period.fromMs; t < period.toMs + step; t += step) {
    if (offsetAt(Math.min(t, period.toMs), tz) % ROLLUP_BUCKET_MS !== 0) return false
  }
  return true
}

/**
 * Whether the query can be answered exactly from the visit rollups, and from which dimension:
 * a visit query (not realtime) whose dimensions and filters together name at most one property
 * dimension, one the rollups keep, asking what its rows hold (the total: every visit metric; a
 * dimension: visitors, visits, bounce rate); a period of whole UTC hours; with a time
 * dimension, a time zone whose offsets are whole hours over the period (so every bucket is a
 * union of rollup hours). `undefined`: the exact path over `visits`.
 */
export const rollupDimension = (input: CompileInput): string | undefined => {
  if (input.rollups === false || input.active || isEventQuery(input)) return undefined
  const properties = new Set<string>([...input.dimensions.filter((d) => !isTimeDimension(d)), ...filterDimensions(input.filters)])
  if (properties.size > 1) return undefined
  const dimension = [...properties][0]
  if (dimension !== undefined && !isRollupDimension(dimension)) return undefined
  const metrics = dimension === undefined ? TOTAL_ROLLUP_METRICS : DIMENSION_ROLLUP_METRICS
  if (!input.metrics.every((m) => metrics.includes(m))) return undefined
  if (input.period.fromMs % ROLLUP_BUCKET_MS !== 0 || input.period.toMs % ROLLUP_BUCKET_MS !== 0) return undefined
  if (input.dimensions.some(isTimeDimension) && !wholeHourOffsets(input.period, input.timezone)) return undefined
  return dimension ?? TOTAL_DIMENSION
}

/** Visit metrics from the rollup sums (`g`) and the visitors' surplus (`s`), the same SQL types as the visits path. */
const ROLLUP_METRIC: Record<string, string> = {
  visitors: "coalesce(g.visits, 0) - coalesce(s.surplus, 0)",
  visits: "coalesce(g.visits, 0)",
  pageviews: "coalesce(g.pv, 0)",
  views_per_visit: "coalesce(g.pv, 0)::float8 / nullif(g.visits::bigint, 0)",
  bounce_rate: "100.0 * g.bounces::bigint / nullif(g.visits::bigint, 0)",
  visit_duration: "g.dur / nullif(g.visits, 0)",
  events: "coalesce(g.ev, 0)"
}

/**
 * What every query statement starts with, in this parameter order: the site, the period's ends,
 * the timezone (only with a time dimension), the page's limit and offset.
 */
const queryPrologue = (input: CompileInput) => {
  const params = new Params()
  const site = params.add(String(input.siteId))
  const from = params.add(new Date(input.period.fromMs).toISOString())
  const to = params.add(new Date(input.period.toMs).toISOString())
  const time = input.dimensions.some(isTimeDimension)
  const tz = time ? `${params.add(input.timezone)}::text` : "'UTC'"
  const page = input.page === null
    ? ""
    : ` LIMIT ${params.add(String(input.page.limit))}::int OFFSET ${params.add(String(input.page.offset))}::int`
  return { params, site, from, to, time, tz, page, nd: input.dimensions.length }
}

/**
 * A visit query from the rollups (docs/visits.md "Visit rollups"): the period's rollup rows of
 * one dimension (without a time dimension the whole UTC days from the daily table), read as if they were visits (`v.started_at` = the hour, `v.<dimension>` = the
 * value) so that buckets and filters are the same expressions as on `visits`; visitors = visits
 * minus, per group, the surplus of the visitors seen on more than one visit, counted on `visits`
 * for those visitors only.
 */
const compileRollupQuery = (input: CompileInput, dimension: string): CompiledSql => {
  const { params, site, from, to, time, tz, page, nd } = queryPrologue(input)
  const dims = (column: string) => input.dimensions.map((d, i) => `${dimensionExpr(d, column, tz)} AS ${dimensionAlias(i)}`)
  const value = dimension === TOTAL_DIMENSION ? "" : `, r.value AS ${dimension}`
  const columns = `${value}, r.visits, r.pageviews, r.events, r.bounces, r.duration`
  const hourly = (lo: string, hi: string) =>
    `SELECT r.hour AS started_at${columns} FROM visit_rollups r ` +
    `WHERE r.site_id = ${site}::int AND r.dim = '${dimension}' AND r.hour >= ${lo}::timestamptz AND r.hour < ${hi}::timestamptz`
  // without time buckets: the whole UTC days inside the range from the daily rows, the hours at its ends from the hourly ones
  const firstDay = Math.ceil(input.period.fromMs / DAY_MS) * DAY_MS
  const lastDay = Math.floor(input.period.toMs / DAY_MS) * DAY_MS
  let rows = hourly(from, to)
  if (!time && firstDay < lastDay) {
    const d1 = params.add(new Date(firstDay).toISOString())
    const d2 = params.add(new Date(lastDay).toISOString())
    const daily = `SELECT (r.day::timestamp AT TIME ZONE 'UTC') AS started_at${columns} FROM visit_rollups_daily r ` +
      `WHERE r.site_id = ${site}::int AND r.dim = '${dimension}' AND r.day >= (${d1}::timestamptz AT TIME ZONE 'UTC')::date ` +
      `AND r.day < (${d2}::timestamptz AT TIME ZONE 'UTC')::date`
    rows = `${hourly(from, d1)} UNION ALL ${daily} UNION ALL ${hourly(d2, to)}`
  }
  const filters = (ps: Params) => input.filters.map((f) => filterSql(f, ps))
  const sums = ["sum(v.visits) AS visits", "sum(v.pageviews) AS pv", "sum(v.events) AS ev", "sum(v.bounces) AS bounces", "sum(v.duration) AS dur"]
  const where = (base: ReadonlyArray<string>) => {
    const all = [...base, ...filters(params)]
    return all.length === 0 ? "" : ` WHERE ${all.join(" AND ")}`
  }
  const g = `SELECT ${[...dims("v.started_at"), ...sums].join(", ")} FROM (${rows}) v${where([])}${groupSql(nd)}` +
    (nd === 0 ? "" : " HAVING sum(v.visits) > 0")
  const aliases = input.dimensions.map((_, i) => dimensionAlias(i))
  const ctes = [`g AS (${g})`]
  let join = ""
  if (input.metrics.includes("visitors")) {
    const surplus = surplusSql(input, params, site, from, to, dims("v.started_at"))
    ctes.push(`s AS (${surplus})`)
    join = nd === 0 ? " CROSS JOIN s" : ` LEFT JOIN s ON ${aliases.map((a) => `s.${a} IS NOT DISTINCT FROM g.${a}`).join(" AND ")}`
  }
  const metrics = input.metrics.map((m) => `${ROLLUP_METRIC[m]} AS ${metricAlias(m)}`)
  const text = `WITH ${ctes.join(", ")} SELECT ${[...aliases.map((a) => `g.${a}`), ...metrics].join(", ")} FROM g${join}${orderSql(input)}${page}`
  return { text, params: params.values }
}

/**
 * The repeated visitors' surplus (`s`): per group, how many of the period's visits (after the
 * query's filters) belong to a daily visitor id already counted on another of them — read from
 * `visits` for the visitors `visitor_visits` lists as seen on two or more visits around the
 * period only (few): visitors = visits − surplus, exactly. Dimension expressions over `v`.
 */
const surplusSql = (input: CompileInput, params: Params, site: string, from: string, to: string, dims: ReadonlyArray<string>) => {
  // driven by the repeated visitors (few), each one's visits by the (site_id, visitor_id_daily)
  // index: LATERAL with OFFSET 0 (not flattened into a join) keeps the plan that way whatever
  // the statistics say
  const repeated = `SELECT x.visitor_id_daily FROM visitor_visits x WHERE x.site_id = ${site}::int AND x.visits > 1 ` +
    `AND x.last_start >= ${from}::timestamptz AND x.first_start < ${to}::timestamptz`
  const filters = input.filters.map((f) => filterSql(f, params))
  return `SELECT ${[...dims, "count(*) - count(DISTINCT v.visitor_id_daily) AS surplus"].join(", ")} ` +
    `FROM (${repeated}) x CROSS JOIN LATERAL (SELECT * FROM visits w WHERE w.site_id = ${site}::int ` +
    `AND w.visitor_id_daily = x.visitor_id_daily AND w.started_at >= ${from}::timestamptz AND w.started_at < ${to}::timestamptz ` +
    `AND NOT w.is_bot OFFSET 0) v` + (filters.length === 0 ? "" : ` WHERE ${filters.join(" AND ")}`) + groupSql(dims.length)
}

/**
 * A visit query with `visitors` over `visits` (a dimension the rollups do not keep — referrer,
 * region, city, organisation… — or several): `count(DISTINCT visitor)` per group sorts every
 * visit of the period, so instead the visits are counted per group (hashed) and the repeated
 * visitors' surplus (`surplusSql`) subtracted — the same number. Both sets of groups meet in
 * one hashed GROUP BY (NULL values group together, as in the dimension), which also carries
 * the other metrics through (`max`: one row per group has them).
 */
const visitorsBySurplus = (
  input: CompileInput,
  q: { params: Params; site: string; from: string; to: string; nd: number; page: string },
  dims: ReadonlyArray<string>,
  fromVisits: string
): string => {
  const aliases = input.dimensions.map((_, i) => dimensionAlias(i))
  const others = input.metrics.filter((m) => m !== "visitors")
  const g = `SELECT ${[...dims, "count(*) AS n", ...others.map((m) => `${VISIT_METRIC[m as keyof typeof VISIT_METRIC]} AS ${metricAlias(m)}`)].join(", ")} ` +
    `${fromVisits}${groupSql(q.nd)}`
  const s = surplusSql(input, q.params, q.site, q.from, q.to, dims)
  const both = `SELECT ${[...aliases, "n", "0::bigint AS surplus", ...others.map(metricAlias)].join(", ")} FROM g UNION ALL ` +
    `SELECT ${[...aliases, "0::bigint", "surplus", ...others.map(() => "NULL")].join(", ")} FROM s`
  const metrics = input.metrics.map((m) => m === "visitors" ? `(sum(u.n) - sum(u.surplus))::bigint AS ${metricAlias(m)}` : `max(u.${metricAlias(m)}) AS ${metricAlias(m)}`)
  return `WITH g AS (${g}), s AS (${s}) SELECT ${[...aliases.map((a) => `u.${a}`), ...metrics].join(", ")} FROM (${both}) u${groupSql(q.nd)}${
    orderSql(input)
  }${q.page}`
}

/** The statement of a query over one period. Rows: `d0…` (dimension values), `m_<metric>`. */
export const compileQuery = (input: CompileInput): CompiledSql => {
  const rollup = rollupDimension(input)
  if (rollup !== undefined) return compileRollupQuery(input, rollup)
  const { params, site, from, to, time, tz, page, nd } = queryPrologue(input)

  if (!isEventQuery(input)) {
    const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "v.started_at", tz)} AS ${dimensionAlias(i)}`)
    // realtime: the visits with an event in the period (since `from`, received before `to`, as
    // the event queries bound it) — they were last seen since `from` — found from the period's few events by the
    // (domain_id, received_at) index and then each by its key — LATERAL with OFFSET 0 keeps that
    // plan whatever the statistics say (a stale estimate once chose to read every visit that
    // started before `to`: 1.3 s on the 10M-event data set)
    const when = input.active
      ? `v.last_seen_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`
      : `v.started_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`
    const where = [`v.site_id = ${site}::int`, when, "NOT v.is_bot", ...input.filters.map((f) => filterSql(f, params))]
    const visits = input.active
      ? `(SELECT DISTINCT e.session_id FROM raw_events e WHERE e.domain_id = ${site}::int AND e.received_at >= ${from}::timestamptz ` +
        `AND e.received_at < ${to}::timestamptz) r ` +
        `CROSS JOIN LATERAL (SELECT * FROM visits w WHERE w.site_id = ${site}::int AND w.session_id = r.session_id OFFSET 0) v`
      : "visits v"
    const from_ = `FROM ${visits} WHERE ${where.join(" AND ")}`
    if (input.rollups !== false && !input.active && input.metrics.includes("visitors")) {
      return { text: visitorsBySurplus(input, { params, site, from, to, nd, page }, dims, from_), params: params.values }
    }
    // (count(DISTINCT) on visits: visitors repeat little within a period, a sort is as fast as hashing)
    const metrics = input.metrics.map((m) => `${VISIT_METRIC[m as keyof typeof VISIT_METRIC]} AS ${metricAlias(m)}`)
    return { text: `SELECT ${[...dims, ...metrics].join(", ")} ${from_}${groupSql(nd)}${orderSql(input)}${page}`, params: params.values }
  }

  const dimensions = [...input.dimensions, ...filterDimensions(input.filters)]
  const visitJoinFirst = dimensions.some((d) => !isEventDimension(d) && !isTimeDimension(d))
  const join = visitJoinFirst || input.metrics.some((m) => VISIT_JOIN_METRICS.includes(m))
  const bots = input.metrics.includes("bot_events")
  const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "e.received_at", tz)} AS ${dimensionAlias(i)}`)
  const human = "NOT e.is_bot"
  const value = "CASE WHEN jsonb_typeof(e.metadata->'value') = 'number' THEN (e.metadata->>'value')::numeric END"
  // only visits overlapping the period can hold its events (bounds the join's hash table)
  const joinSql = join
    ? ` LEFT JOIN visits v ON v.site_id = e.domain_id AND v.session_id = e.session_id` +
      ` AND v.started_at < ${to}::timestamptz AND v.last_seen_at >= ${from}::timestamptz`
    : ""
  const where = [
    `e.domain_id = ${site}::int`,
    `e.received_at >= ${from}::timestamptz`,
    `e.received_at < ${to}::timestamptz`,
    ...(bots ? [] : [human]),
    ...input.filters.map((f) => filterSql(f, params))
  ]

  if (!input.metrics.some((m) => PER_VISIT_METRICS.includes(m))) {
    // only sums over the events: one aggregation
    const metrics = input.metrics.map((m) => `${sumOfEvents(m, human, value)} AS ${metricAlias(m)}`)
    const text = `SELECT ${[...dims, ...metrics].join(", ")} FROM raw_events e${joinSql} WHERE ${where.join(" AND ")}${groupSql(nd)}${
      orderSql(input)
    }${page}`
    return { text, params: params.values }
  }
  // per (dimensions, session) → per (dimensions, visitor) → per dimensions: distinct visits and
  // visitors are counted by hashed grouping, never by a sort
  const perSession = [
    `count(*) FILTER (WHERE ${human}) AS ev`,
    `count(*) FILTER (WHERE ${human} AND e.kind = 'view') AS pv`,
    `count(*) FILTER (WHERE ${human} AND e.event_type = 'conversion') AS conv`,
    `sum(${value}) FILTER (WHERE ${human} AND e.event_type = 'conversion') AS rev`,
    `count(*) FILTER (WHERE e.is_bot) AS bots`
  ]
  const groupKeys = (extra: ReadonlyArray<string>) => [...Array.from({ length: nd }, (_, i) => i + 1), ...extra].join(", ")
  // a visit's visitor: every event of the session has it (views alone carry one themselves)
  const visitColumns = (session: string) => [
    `coalesce(v.visitor_id_daily, convert_to(${session}, 'UTF8')) AS vid`,
    "bool_or(v.pageviews <= 1 AND NOT v.engaged) AS bounce",
    "max(extract(epoch FROM v.last_seen_at - v.started_at)) AS dur"
  ]
  const dimAliasList = input.dimensions.map((_, i) => dimensionAlias(i))
  let inner: string
  if (!join) {
    inner = `SELECT ${[...dims, "convert_to(e.session_id, 'UTF8') AS vid", ...perSession, "NULL::boolean AS bounce", "NULL::numeric AS dur"].join(", ")} ` +
      `FROM raw_events e WHERE ${where.join(" AND ")} GROUP BY ${groupKeys(["e.session_id"])}`
  } else if (visitJoinFirst) {
    // visit dimensions or filters: every event joined to its visit first
    inner = `SELECT ${[...dims, ...perSession, ...visitColumns("e.session_id")].join(", ")} FROM raw_events e${joinSql} WHERE ${
      where.join(" AND ")
    } GROUP BY ${groupKeys(["e.session_id", "v.visitor_id_daily"])}`
  } else {
    // only the visits' figures: join once per (dimensions, session) group, not once per event
    const perSessionOnly = `SELECT ${[...dims, "e.session_id AS sid", ...perSession].join(", ")} FROM raw_events e WHERE ${
      where.join(" AND ")
    } GROUP BY ${groupKeys(["e.session_id"])}`
    // (a session has one visit: no second aggregation)
    const columns = [
      ...dimAliasList.map((a) => `g.${a}`),
      ...["ev", "pv", "conv", "rev", "bots"].map((c) => `g.${c}`),
      "coalesce(v.visitor_id_daily, convert_to(g.sid, 'UTF8')) AS vid",
      "(v.pageviews <= 1 AND NOT v.engaged) AS bounce",
      "extract(epoch FROM v.last_seen_at - v.started_at) AS dur"
    ]
    inner = `SELECT ${columns.join(", ")} FROM (${perSessionOnly}) g LEFT JOIN visits v ON v.site_id = ${site}::int ` +
      `AND v.session_id = g.sid AND v.started_at < ${to}::timestamptz AND v.last_seen_at >= ${from}::timestamptz`
  }
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
  const text = `WITH s AS (${inner}), w AS (${middle}) SELECT ${[...dimAliases, ...metrics].join(", ")} FROM w${groupSql(nd)}${
    orderSql(input)
  }${page}`
  return { text, params: params.values }
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
    return step.page.includes("*")
      ? `(e.kind = 'view' AND ${path} LIKE ${params.add(likeEscape(step.page).replaceAll("*", "%"))})`
      : `(e.kind = 'view' AND ${path} = ${params.add(step.page)})`
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
  const params = new Params()
  const site = params.add(String(input.siteId))
  const from = params.add(new Date(input.period.fromMs).toISOString())
  const to = params.add(new Date(input.period.toMs).toISOString())
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
