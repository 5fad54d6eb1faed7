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
    case "is":
      return `(${propertyExpr(filter.dimension)} = ANY(${params.add({ textArray: filter.values })}::text[]))`
    case "is_not":
      return `(${propertyExpr(filter.dimension)} IS NULL OR ${propertyExpr(filter.dimension)} <> ALL(${
        params.add({ textArray: filter.values })
      }::text[]))`
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
const EVENT_METRIC: Record<Metric, string> = {
  visitors: `count(DISTINCT vid) FILTER (WHERE ${HUMAN})`,
  visits: `count(*) FILTER (WHERE ${HUMAN})`,
  pageviews: "coalesce(sum(pv), 0)",
  views_per_visit: `coalesce(sum(pv), 0)::float8 / nullif(count(*) FILTER (WHERE ${HUMAN}), 0)`,
  bounce_rate: `100.0 * count(*) FILTER (WHERE ${HUMAN} AND bounce) / nullif(count(*) FILTER (WHERE ${HUMAN} AND bounce IS NOT NULL), 0)`,
  visit_duration: `avg(dur) FILTER (WHERE ${HUMAN})`,
  events: "coalesce(sum(ev), 0)",
  conversions: "coalesce(sum(conv), 0)",
  conversion_rate: `100.0 * count(DISTINCT vid) FILTER (WHERE conv > 0) / nullif(count(DISTINCT vid) FILTER (WHERE ${HUMAN}), 0)`,
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

const groupSql = (n: number) => (n === 0 ? "" : ` GROUP BY ${Array.from({ length: n }, (_, i) => i + 1).join(", ")}`)

/** The statement of a query over one period. Rows: `d0…` (dimension values), `m_<metric>`. */
export const compileQuery = (input: CompileInput): CompiledSql => {
  const params = new Params()
  const site = params.add(String(input.siteId))
  const from = params.add(new Date(input.period.fromMs).toISOString())
  const to = params.add(new Date(input.period.toMs).toISOString())
  const time = input.dimensions.some(isTimeDimension)
  const tz = time ? `${params.add(input.timezone)}::text` : "'UTC'"

  const page = input.page === null
    ? ""
    : ` LIMIT ${params.add(String(input.page.limit))}::int OFFSET ${params.add(String(input.page.offset))}::int`
  const nd = input.dimensions.length

  if (!isEventQuery(input)) {
    const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "v.started_at", tz)} AS ${dimensionAlias(i)}`)
    const metrics = input.metrics.map((m) => `${VISIT_METRIC[m as keyof typeof VISIT_METRIC]} AS ${metricAlias(m)}`)
    const when = input.active
      ? `v.last_seen_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`
      : `v.started_at >= ${from}::timestamptz AND v.started_at < ${to}::timestamptz`
    const where = [`v.site_id = ${site}::int`, when, "NOT v.is_bot", ...input.filters.map((f) => filterSql(f, params))]
    const text = `SELECT ${[...dims, ...metrics].join(", ")} FROM visits v WHERE ${where.join(" AND ")}${groupSql(nd)}${
      orderSql(input)
    }${page}`
    return { text, params: params.values }
  }

  const dimensions = [...input.dimensions, ...filterDimensions(input.filters)]
  const join = dimensions.some((d) => !isEventDimension(d) && !isTimeDimension(d)) ||
    input.metrics.some((m) => VISIT_JOIN_METRICS.includes(m))
  const bots = input.metrics.includes("bot_events")
  const dims = input.dimensions.map((d, i) => `${dimensionExpr(d, "e.received_at", tz)} AS ${dimensionAlias(i)}`)
  const human = "NOT e.is_bot"
  const value = "CASE WHEN jsonb_typeof(e.metadata->'value') = 'number' THEN (e.metadata->>'value')::numeric END"
  const perSession = [
    `count(*) FILTER (WHERE ${human}) AS ev`,
    `count(*) FILTER (WHERE ${human} AND e.kind = 'view') AS pv`,
    `count(*) FILTER (WHERE ${human} AND e.event_type = 'conversion') AS conv`,
    `sum(${value}) FILTER (WHERE ${human} AND e.event_type = 'conversion') AS rev`,
    `count(*) FILTER (WHERE e.is_bot) AS bots`,
    // a visit's visitor: every event of the session has it (views alone carry one themselves)
    join ? "coalesce(v.visitor_id_daily, convert_to(e.session_id, 'UTF8')) AS vid" : "NULL::bytea AS vid",
    join ? "bool_or(v.pageviews <= 1 AND NOT v.engaged) AS bounce" : "NULL::boolean AS bounce",
    join ? "max(extract(epoch FROM v.last_seen_at - v.started_at)) AS dur" : "NULL::numeric AS dur"
  ]
  const where = [
    `e.domain_id = ${site}::int`,
    `e.received_at >= ${from}::timestamptz`,
    `e.received_at < ${to}::timestamptz`,
    ...(bots ? [] : [human]),
    ...input.filters.map((f) => filterSql(f, params))
  ]
  const joinSql = join ? " LEFT JOIN visits v ON v.site_id = e.domain_id AND v.session_id = e.session_id" : ""
  const inner = `SELECT ${[...dims, ...perSession].join(", ")} FROM raw_events e${joinSql} WHERE ${where.join(" AND ")} GROUP BY ${
    [...Array.from({ length: nd }, (_, i) => i + 1), "e.session_id", ...(join ? ["v.visitor_id_daily"] : [])].join(", ")
  }`
  const outerDims = input.dimensions.map((_, i) => dimensionAlias(i))
  const metrics = input.metrics.map((m) => `${EVENT_METRIC[m]} AS ${metricAlias(m)}`)
  const text = `WITH s AS (${inner}) SELECT ${[...outerDims, ...metrics].join(", ")} FROM s${groupSql(nd)}${orderSql(input)}${page}`
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
