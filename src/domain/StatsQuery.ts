/**
 * The stats query API's request (`POST /api/v1/query`, docs/api.md "Stats query API"): what
 * may be asked, validated with Schema field by field so that every invalid input is answered
 * `400 {error, field, allowed, message}` naming the field and listing what it takes. Also the
 * date ranges (in the site's time zone) and the shape of the answer. Pure.
 */
import { Exit, Schema } from "effect"
import { bucketStart, startOfDay, startOfMonth, toInstant, toLocal } from "./LocalTime.ts"
import { DAY_MS } from "./Time.ts"
import { issuesOf } from "./Validation.ts"

export const METRICS = [
  "visitors",
  "visits",
  "pageviews",
  "views_per_visit",
  "bounce_rate",
  "visit_duration",
  "events",
  "conversions",
  "conversion_rate",
  "revenue",
  "bot_events"
] as const
export type Metric = (typeof METRICS)[number]

export const TIME_DIMENSIONS = ["time:hour", "time:day", "time:week", "time:month"] as const
export type TimeDimension = (typeof TIME_DIMENSIONS)[number]

/** Dimensions of an event (`raw_events`): the page of each event, its host, its type. */
export const EVENT_DIMENSIONS = ["page", "hostname", "event_type"] as const
/** Dimensions of a visit (`visits`, first touch / entry / exit): one value per visit. */
export const VISIT_DIMENSIONS = [
  "entry_page",
  "exit_page",
  "source",
  "referrer",
  "utm_source",
  "utm_medium",
  "utm_campaign",
  "utm_content",
  "utm_term",
  "device",
  "browser",
  "browser_version",
  "os",
  "os_version",
  "country",
  "region",
  "city",
  "language",
  // the network of the visit's entry view (docs/network.md): AS number (as text), organisation, kind
  "asn",
  "org",
  "org_type"
] as const
export type EventDimension = (typeof EVENT_DIMENSIONS)[number]
export type VisitDimension = (typeof VISIT_DIMENSIONS)[number]
export type PropertyDimension = EventDimension | VisitDimension
export type Dimension = TimeDimension | PropertyDimension

export const FILTER_DIMENSIONS: ReadonlyArray<PropertyDimension> = [...EVENT_DIMENSIONS, ...VISIT_DIMENSIONS]
export const DIMENSIONS: ReadonlyArray<Dimension> = [...TIME_DIMENSIONS, ...FILTER_DIMENSIONS]

export const DATE_RANGES = ["day", "7d", "30d", "month", "6mo", "12mo", "all", "realtime"] as const
export type DateRangeName = (typeof DATE_RANGES)[number]

export const VALUE_OPERATORS = ["is", "is_not", "contains", "matches"] as const
export const FILTER_OPERATORS = [...VALUE_OPERATORS, "and", "or", "not"] as const
export type ValueOperator = (typeof VALUE_OPERATORS)[number]

export const MAX_LIMIT = 10_000
export const DEFAULT_LIMIT = 100
export const MAX_OFFSET = 1_000_000
export const MAX_FILTER_VALUES = 1_000
export const MAX_FILTER_DEPTH = 8
export const MAX_FILTERS = 100
/** realtime = the last 5 minutes */
export const REALTIME_MS = 5 * 60_000

export type Filter =
  | {
    readonly op: ValueOperator
    readonly dimension: PropertyDimension
    readonly values: ReadonlyArray<string>
    /** `is` / `is_not` with `null` among the values: an unknown value matches */
    readonly unknown: boolean
  }
  | { readonly op: "and" | "or"; readonly filters: ReadonlyArray<Filter> }
  | { readonly op: "not"; readonly filter: Filter }

/** A date or a date-time as sent: dates are whole days; a date-time without offset is local. */
export type DateBound =
  | { readonly kind: "date"; readonly local: number }
  | { readonly kind: "local"; readonly local: number }
  | { readonly kind: "instant"; readonly instant: number }

export type DateRangeInput = { readonly kind: DateRangeName } | { readonly kind: "custom"; readonly from: DateBound; readonly to: DateBound }

export interface StatsQuery {
  readonly site: string
  readonly metrics: ReadonlyArray<Metric>
  readonly dateRange: DateRangeInput
  readonly dimensions: ReadonlyArray<Dimension>
  readonly filters: ReadonlyArray<Filter>
  readonly orderBy: ReadonlyArray<readonly [string, "asc" | "desc"]>
  readonly limit: number
  readonly offset: number
  readonly compare: "previous_period" | null
}

/** A query the API refuses: `400 {"error":"invalid_query","field":…,"allowed":[…],"message":…}`. */
export class InvalidQuery extends Schema.TaggedError<InvalidQuery>()("InvalidQuery", {
  field: Schema.String,
  message: Schema.String,
  allowed: Schema.Array(Schema.String)
}) {}

export const invalidQueryBody = (e: InvalidQuery) => ({ error: "invalid_query", field: e.field, allowed: e.allowed, message: e.message })

// ---------------------------------------------------------------- field schemas

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/i

const Site = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(253))
const MetricsSchema = Schema.Array(Schema.Literals(METRICS)).check(Schema.isMinLength(1), Schema.isMaxLength(METRICS.length))
const DimensionsSchema = Schema.Array(Schema.Literals(DIMENSIONS)).check(Schema.isMaxLength(8))
const DateBoundSchema = Schema.String.check(
  Schema.isPattern(new RegExp(`${DATE.source}|${DATE_TIME.source}`, "i"), {
    message: "expected an ISO date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM])"
  })
)
const DateRangeSchema = Schema.Union([Schema.Literals(DATE_RANGES), Schema.Tuple([DateBoundSchema, DateBoundSchema])])
const OrderBySchema = Schema.Array(Schema.Tuple([Schema.String, Schema.Literals(["asc", "desc"])])).check(Schema.isMaxLength(16))
const Limit = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_LIMIT }))
const Offset = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: MAX_OFFSET }))
const Compare = Schema.NullOr(Schema.Literal("previous_period"))
const FilterValues = Schema.Array(Schema.NullOr(Schema.String.check(Schema.isMaxLength(1024)))).check(
  Schema.isMinLength(1),
  Schema.isMaxLength(MAX_FILTER_VALUES)
)
const ValueFilter = Schema.Tuple([
  Schema.Literals(VALUE_OPERATORS),
  Schema.Literals(FILTER_DIMENSIONS),
  Schema.Union([FilterValues, Schema.String.check(Schema.isMaxLength(1024))])
])
const ListFilter = Schema.Tuple([Schema.Literals(["and", "or"]), Schema.Array(Schema.Unknown).check(Schema.isMinLength(1))])
const NotFilter = Schema.Tuple([Schema.Literal("not"), Schema.Unknown])

/** A field's path as a name: `filters[0][1]`. */
export const fieldName = (path: ReadonlyArray<string | number>): string =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("")

/** What a field (by its path) accepts, for the 400's `allowed`. */
const allowedFor = (path: ReadonlyArray<string | number>, extra: ReadonlyArray<string> = []): ReadonlyArray<string> => {
  switch (path[0]) {
    case "metrics":
      return METRICS
    case "dimensions":
      return DIMENSIONS
    case "date_range":
      return [...DATE_RANGES, "[from, to] (ISO dates or date-times)"]
    case "order_by":
      return path.length >= 3 && path[path.length - 1] === 1 ? ["asc", "desc"] : extra
    case "limit":
      return [`integer 1–${MAX_LIMIT}`]
    case "offset":
      return [`integer 0–${MAX_OFFSET}`]
    case "compare":
      return ["previous_period", "null"]
    case "site":
      return ["the site's hostname"]
    case "window_minutes":
      return [`integer 1–${MAX_WINDOW_MINUTES}`]
    case "steps":
      return extra
    case "filters": {
      const last = path[path.length - 1]
      if (last === 0) return FILTER_OPERATORS
      if (last === 1) return FILTER_DIMENSIONS
      if (last === 2) return ["a string or a non-empty array of strings (null: an unknown value, with is / is_not)"]
      return [`["is"|"is_not"|"contains"|"matches", dimension, [values]]`, `["and"|"or", [filters]]`, `["not", filter]`]
    }
    default:
      return extra
  }
}

const decodeField = <S extends Schema.Top & { readonly DecodingServices: never }>(
  schema: S,
  value: unknown,
  path: ReadonlyArray<string | number>,
  extra?: ReadonlyArray<string>
): S["Type"] | InvalidQuery => {
  const exit = (Schema.decodeUnknownExit(schema as any) as (u: unknown) => Exit.Exit<S["Type"], Schema.SchemaError>)(value)
  if (Exit.isSuccess(exit)) return exit.value
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail" && Schema.isSchemaError(reason.error)) {
      const issue = issuesOf(reason.error.issue)[0]
      const full = [...path, ...(issue?.path ?? [])]
      return new InvalidQuery({ field: fieldName(full), message: issue?.message ?? "invalid value", allowed: [...allowedFor(full, extra)] })
    }
  }
  return new InvalidQuery({ field: fieldName(path), message: "invalid value", allowed: [...allowedFor(path, extra)] })
}

const fail = (path: ReadonlyArray<string | number>, message: string, allowed?: ReadonlyArray<string>) =>
  new InvalidQuery({ field: fieldName(path), message, allowed: [...(allowed ?? allowedFor(path))] })

const isInvalid = (u: unknown): u is InvalidQuery => u instanceof InvalidQuery

const parseDateBound = (text: string): DateBound => {
  const d = DATE.exec(text)
  if (d !== null) return { kind: "date", local: Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3])) }
  const t = DATE_TIME.exec(text)!
  const [, y, mo, da, h, mi, s, frac, zone] = t
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000)
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(da), Number(h), Number(mi), Number(s ?? 0), ms)
  if (zone === undefined) return { kind: "local", local }
  if (zone.toUpperCase() === "Z") return { kind: "instant", instant: local }
  const sign = zone.startsWith("-") ? -1 : 1
  const digits = zone.slice(1).replace(":", "")
  const offset = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000
  return { kind: "instant", instant: local - offset }
}

const validCalendar = (text: string): boolean => {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/i.exec(text)
  if (m === null) return false
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? "0", m[5] ?? "0", m[6] ?? "0"].map(Number) as [number, number, number, number, number, number]
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s))
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && date.getUTCHours() === h &&
    date.getUTCMinutes() === mi && date.getUTCSeconds() === s
}

const parseFilter = (value: unknown, path: ReadonlyArray<string | number>, depth: number): Filter | InvalidQuery => {
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] !== "string") {
    return fail(path, "expected a filter: an array whose first element is an operator", allowedFor(["filters", "x"]))
  }
  if (depth > MAX_FILTER_DEPTH) return fail(path, `filters nest at most ${MAX_FILTER_DEPTH} deep`)
  const op = value[0]
  if ((VALUE_OPERATORS as ReadonlyArray<string>).includes(op)) {
    const decoded = decodeField(ValueFilter, value, path)
    if (isInvalid(decoded)) return decoded
    const all = typeof decoded[2] === "string" ? [decoded[2]] : decoded[2]
    const unknown = all.includes(null)
    if (unknown && (op === "contains" || op === "matches")) {
      return fail([...path, 2, all.indexOf(null)], `null (an unknown value) is for "is" and "is_not" only`, ["a string"])
    }
    const values = all.filter((v): v is string => v !== null)
    if (op === "matches") {
      for (let i = 0; i < values.length; i++) {
        try {
          new RegExp(values[i]!)
        } catch {
          return fail([...path, 2], `not a valid regular expression: ${values[i]}`, ["a regular expression (PostgreSQL POSIX syntax)"])
        }
      }
    }
    return { op: decoded[0], dimension: decoded[1], values, unknown }
  }
  if (op === "and" || op === "or") {
    const decoded = decodeField(ListFilter, value, path)
    if (isInvalid(decoded)) return decoded
    const filters: Array<Filter> = []
    for (let i = 0; i < decoded[1].length; i++) {
      const f = parseFilter(decoded[1][i], [...path, 1, i], depth + 1)
      if (isInvalid(f)) return f
      filters.push(f)
    }
    return { op, filters }
  }
  if (op === "not") {
    const decoded = decodeField(NotFilter, value, path)
    if (isInvalid(decoded)) return decoded
    const filter = parseFilter(decoded[1], [...path, 1], depth + 1)
    return isInvalid(filter) ? filter : { op: "not", filter }
  }
  return fail([...path, 0], `unknown filter operator "${op}"`, FILTER_OPERATORS)
}

/** Parses a `filters` field (shared by query and funnel). */
export const parseFilters = (value: unknown): ReadonlyArray<Filter> | InvalidQuery => {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) return fail(["filters"], "expected an array of filters")
  if (value.length > MAX_FILTERS) return fail(["filters"], `at most ${MAX_FILTERS} filters`)
  const out: Array<Filter> = []
  for (let i = 0; i < value.length; i++) {
    const f = parseFilter(value[i], ["filters", i], 1)
    if (isInvalid(f)) return f
    out.push(f)
  }
  return out
}

/** Parses a `date_range` field (shared by query and funnel). */
export const parseDateRange = (value: unknown): DateRangeInput | InvalidQuery => {
  if (value === undefined) return fail(["date_range"], "date_range is required")
  const decoded = decodeField(DateRangeSchema, value, ["date_range"])
  if (isInvalid(decoded)) return decoded
  if (typeof decoded === "string") return { kind: decoded }
  for (const i of [0, 1] as const) {
    if (!validCalendar(decoded[i])) return fail(["date_range", i], `not a calendar date: ${decoded[i]}`)
  }
  return { kind: "custom", from: parseDateBound(decoded[0]), to: parseDateBound(decoded[1]) }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Checks a body is an object with only `known` keys. */
export const checkKeys = (body: unknown, known: ReadonlyArray<string>): Record<string, unknown> | InvalidQuery => {
  if (!isRecord(body)) return fail(["body"], "expected a JSON object", known)
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) return fail([key], `unknown field "${key}"`, known)
  }
  return body
}

/** Parses a `site` field (shared by query and funnel). */
export const parseSite = (value: unknown): string | InvalidQuery =>
  value === undefined ? fail(["site"], "site is required (the site's hostname)") : decodeField(Site, value, ["site"])

export const QUERY_FIELDS = ["site", "metrics", "date_range", "dimensions", "filters", "order_by", "limit", "offset", "compare"] as const

const isTime = (d: Dimension): d is TimeDimension => d.startsWith("time:")

/** Validates a query body: the query, or the first invalid field. */
export const parseQuery = (body: unknown): StatsQuery | InvalidQuery => {
  const record = checkKeys(body, QUERY_FIELDS)
  if (isInvalid(record)) return record
  const site = parseSite(record.site)
  if (isInvalid(site)) return site
  if (record.metrics === undefined) return fail(["metrics"], "metrics is required")
  const metrics = decodeField(MetricsSchema, record.metrics, ["metrics"])
  if (isInvalid(metrics)) return metrics
  const dupMetric = metrics.findIndex((m, i) => metrics.indexOf(m) !== i)
  if (dupMetric >= 0) return fail(["metrics", dupMetric], `"${metrics[dupMetric]}" is asked twice`)
  const dateRange = parseDateRange(record.date_range)
  if (isInvalid(dateRange)) return dateRange
  const dimensions = record.dimensions === undefined ? [] : decodeField(DimensionsSchema, record.dimensions, ["dimensions"])
  if (isInvalid(dimensions)) return dimensions
  const dupDim = dimensions.findIndex((d, i) => dimensions.indexOf(d) !== i)
  if (dupDim >= 0) return fail(["dimensions", dupDim], `"${dimensions[dupDim]}" is asked twice`)
  const times = dimensions.filter(isTime)
  if (times.length > 1) {
    return fail(["dimensions", dimensions.indexOf(times[1]!)], "at most one time dimension", DIMENSIONS.filter((d) => !isTime(d)))
  }
  const filters = parseFilters(record.filters)
  if (isInvalid(filters)) return filters
  const orderable = [...metrics, ...dimensions]
  const orderBy = record.order_by === undefined || record.order_by === null
    ? []
    : decodeField(OrderBySchema, record.order_by, ["order_by"], orderable)
  if (isInvalid(orderBy)) return orderBy
  for (let i = 0; i < orderBy.length; i++) {
    if (!orderable.includes(orderBy[i]![0] as Metric)) {
      return fail(["order_by", i, 0], `"${orderBy[i]![0]}" is not one of the query's metrics or dimensions`, orderable)
    }
  }
  const limit = record.limit === undefined ? DEFAULT_LIMIT : decodeField(Limit, record.limit, ["limit"])
  if (isInvalid(limit)) return limit
  const offset = record.offset === undefined ? 0 : decodeField(Offset, record.offset, ["offset"])
  if (isInvalid(offset)) return offset
  const compare = record.compare === undefined ? null : decodeField(Compare, record.compare, ["compare"])
  if (isInvalid(compare)) return compare
  return { site, metrics, dateRange, dimensions, filters, orderBy, limit, offset, compare }
}

// ---------------------------------------------------------------- date ranges

export interface Period {
  /** instants, [fromMs, toMs) */
  readonly fromMs: number
  readonly toMs: number
}

const boundInstant = (bound: DateBound, tz: string, end: boolean): number => {
  switch (bound.kind) {
    case "instant":
      return bound.instant
    case "local":
      return toInstant(bound.local, tz)
    case "date":
      return toInstant(end ? bound.local + DAY_MS : bound.local, tz)
  }
}

/**
 * The instants [from, to) of a date range in the site's time zone. Named ranges end with
 * today (the whole of today: the future part is empty): `day` = today, `7d` / `30d` = the
 * last 7 / 30 days including today, `month` = this calendar month, `6mo` / `12mo` = this month
 * and the 5 / 11 before, `all` = from the day of the site's first event (`earliestMs`),
 * `realtime` = the last 5 minutes. `[from, to]`: dates are whole days (both included),
 * date-times are instants (`to` excluded), date-times without an offset are site-local.
 */
export const resolvePeriod = (
  range: DateRangeInput,
  nowMs: number,
  tz: string,
  earliestMs: number | null
): Period | InvalidQuery => {
  const today = startOfDay(toLocal(nowMs, tz))
  const days = (n: number): Period => ({ fromMs: toInstant(today - (n - 1) * DAY_MS, tz), toMs: toInstant(today + DAY_MS, tz) })
  const months = (n: number): Period => ({
    fromMs: toInstant(startOfMonth(today, -(n - 1)), tz),
    toMs: toInstant(startOfMonth(today, 1), tz)
  })
  switch (range.kind) {
    case "day":
      return days(1)
    case "7d":
      return days(7)
    case "30d":
      return days(30)
    case "month":
      return months(1)
    case "6mo":
      return months(6)
    case "12mo":
      return months(12)
    case "realtime":
      return { fromMs: nowMs - REALTIME_MS, toMs: nowMs + 1 }
    case "all": {
      const first = earliestMs === null ? today : startOfDay(toLocal(Math.min(earliestMs, nowMs), tz))
      return { fromMs: toInstant(first, tz), toMs: toInstant(today + DAY_MS, tz) }
    }
    case "custom": {
      const fromMs = boundInstant(range.from, tz, false)
      const toMs = boundInstant(range.to, tz, true)
      if (!(fromMs < toMs)) return fail(["date_range"], "the range's end must be after its start")
      if (toMs - fromMs > 20 * 366 * DAY_MS) return fail(["date_range"], "a range spans at most 20 years")
      return { fromMs, toMs }
    }
  }
}

/** The period of the same length just before. */
export const previousPeriod = (period: Period): Period => ({
  fromMs: period.fromMs - (period.toMs - period.fromMs),
  toMs: period.fromMs
})

/** At most this many time buckets per query (e.g. a year of hours is 8,784). */
export const MAX_BUCKETS = 10_000

export const timeGrainOf = (d: Dimension) => (isTime(d) ? (d.slice(5) as "hour" | "day" | "week" | "month") : undefined)

/** Rough number of buckets, checked before the query runs. */
export const bucketCount = (period: Period, tz: string, grain: "hour" | "day" | "week" | "month"): number => {
  const from = bucketStart(toLocal(period.fromMs, tz), grain)
  const span = toLocal(period.toMs, tz) - from
  const size = grain === "hour" ? 3_600_000 : grain === "day" ? DAY_MS : grain === "week" ? 7 * DAY_MS : 28 * DAY_MS
  return Math.ceil(span / size)
}

// ---------------------------------------------------------------- answer values

const round = (value: number, digits: number) => {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/** A metric's value as the API gives it (from the SQL's raw number). */
export const metricValue = (metric: Metric, raw: unknown): number => {
  const n = raw === null || raw === undefined ? 0 : Number(raw)
  const v = Number.isFinite(n) ? n : 0
  switch (metric) {
    case "bounce_rate":
    case "conversion_rate":
      return round(v, 1)
    case "visit_duration":
      return Math.round(v)
    case "views_per_visit":
      return round(v, 2)
    case "revenue":
      return round(v, 6)
    default:
      return Math.round(v)
  }
}

/** Percent change from `previous` to `current`, one decimal; null when previous is 0. */
export const percentChange = (current: number, previous: number): number | null =>
  previous === 0 ? null : round(((current - previous) / previous) * 100, 1)

export const isTimeDimension = isTime

/** Whether a dimension is per event (raw_events) rather than per visit. */
export const isEventDimension = (d: Dimension): d is EventDimension => (EVENT_DIMENSIONS as ReadonlyArray<string>).includes(d)

// ---------------------------------------------------------------- funnel (POST /api/v1/funnel)

export const MAX_WINDOW_MINUTES = 60 * 24 * 31
export const DEFAULT_WINDOW_MINUTES = 60 * 24
export const MAX_STEPS = 8

export type FunnelStep =
  | { readonly page: string }
  | { readonly event_type: string }
  | { readonly funnel_id: string; readonly step_id: string }

export interface FunnelQuery {
  readonly site: string
  readonly dateRange: DateRangeInput
  readonly windowMinutes: number
  readonly steps: ReadonlyArray<FunnelStep>
  readonly filters: ReadonlyArray<Filter>
}

const Text = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(1024))
const StepSchema = Schema.Union([
  Schema.Struct({ page: Text }),
  Schema.Struct({ event_type: Text }),
  Schema.Struct({ funnel_id: Text, step_id: Text })
])
const STEP_FORMS = [`{"page": "/path" (* matches any characters)}`, `{"event_type": "signup"}`, `{"funnel_id": "…", "step_id": "…"}`]
const Window = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_WINDOW_MINUTES }))

export const FUNNEL_FIELDS = ["site", "date_range", "window_minutes", "steps", "filters"] as const

/** Validates a funnel body. */
export const parseFunnel = (body: unknown): FunnelQuery | InvalidQuery => {
  const record = checkKeys(body, FUNNEL_FIELDS)
  if (isInvalid(record)) return record
  const site = parseSite(record.site)
  if (isInvalid(site)) return site
  const dateRange = parseDateRange(record.date_range)
  if (isInvalid(dateRange)) return dateRange
  const windowMinutes = record.window_minutes === undefined
    ? DEFAULT_WINDOW_MINUTES
    : decodeField(Window, record.window_minutes, ["window_minutes"])
  if (isInvalid(windowMinutes)) return windowMinutes
  if (!Array.isArray(record.steps) || record.steps.length < 2 || record.steps.length > MAX_STEPS) {
    return fail(["steps"], `steps is an array of 2–${MAX_STEPS} steps`, STEP_FORMS)
  }
  const steps: Array<FunnelStep> = []
  for (let i = 0; i < record.steps.length; i++) {
    const raw = record.steps[i]
    const keys = isRecord(raw) ? Object.keys(raw).sort().join(",") : ""
    if (!["page", "event_type", "funnel_id,step_id"].includes(keys)) {
      return fail(["steps", i], "a step is exactly one of the forms allowed", STEP_FORMS)
    }
    const step = decodeField(StepSchema, raw, ["steps", i], STEP_FORMS)
    if (isInvalid(step)) return step
    steps.push(step)
  }
  const filters = parseFilters(record.filters)
  if (isInvalid(filters)) return filters
  return { site, dateRange, windowMinutes, steps, filters }
}

/** A step's name in the answer: `/pricing`, `signup`, `checkout/pay`. */
export const stepLabel = (step: FunnelStep): string =>
  "page" in step ? step.page : "event_type" in step ? step.event_type : `${step.funnel_id}/${step.step_id}`
