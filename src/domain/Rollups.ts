/**
 * In-memory rollup aggregation for one batch: the counters of `aggregated_metrics` and
 * `daily_metrics` (docs/architecture.md, writer). Pure: the writer's prepare stage and the sinks
 * feed it. Only rows that were actually inserted (and fingerprints / seen-set rows that were
 * actually created) are fed in, so a redelivered envelope adds nothing. A sink adds the
 * accumulated counters to what it stores (PostgreSQL: one upsert per table,
 * `value = value + excluded.value`, see layers/PgSinkStatements.ts).
 *
 * Choices (the reason for each is beside it):
 * - Buckets are by the edge `receivedAt` (UTC hour and UTC day), not the client timestamp: the
 *   edge clock cannot be skewed or forged by clients, and it is also the partition key and the
 *   salt day.
 * - Bots only count in `bot_events` (total and by event type); every other metric is human-only.
 * - Metrics and their dimensions (`dimension = 'total'` with a NULL value is the overall count;
 *   a NULL value elsewhere means "unknown", e.g. no country):
 *   - `pageviews`, `sessions`: total, source, country, device_type, browser, os, page_path,
 *     referrer_host, utm_campaign (sessions from the first-touch view of each new session);
 *   - `events`: total, event_type (all human events, views included);
 *   - `conversions`: total, conversion_type; `conversion_value`: total, currency (values in
 *     different currencies are not converted — the `currency` dimension keeps them apart);
 *   - `unique_visitors`: total (one per new row of the `visitor_seen` seen-set);
 *   - `bot_events`: total, event_type.
 * - Scope: (corp_id, domain_id) of the row (NULLs when the tenant is unknown).
 *
 * Extending it (visits, network dimensions): a new metric is a `Series` in `SERIES` fed by an
 * `add…` function here; a new daily column is a `DailyField`. Sinks need no change for a new
 * series (they store rows), only for a new daily column.
 */
import { referrerHost } from "./Attribution.ts"
import type { EnrichedEvent, EnrichedView } from "./Enrich.ts"
import { memoizeString } from "./Memo.ts"
import type { Scope } from "./Tenant.ts"
import { dayStart, hourStart } from "./Time.ts"

export type Granularity = "hour" | "day"

export const METRICS = {
  pageviews: "pageviews",
  events: "events",
  sessions: "sessions",
  uniqueVisitors: "unique_visitors",
  conversions: "conversions",
  conversionValue: "conversion_value",
  botEvents: "bot_events"
} as const

export const TOTAL = "total"

const MAX_DIMENSION_VALUE = 512

const cap = (value: string | null): string | null =>
  value === null ? null : value.length > MAX_DIMENSION_VALUE ? value.slice(0, MAX_DIMENSION_VALUE) : value

/** The path of a page URL (absolute or site-relative), without query and fragment. */
export const pagePath = (pageUrl: string | null): string | null => (pageUrl === null ? null : pagePathOf(pageUrl))

/** (memoised: page URLs repeat across events; URL parsing is ~1 µs) */
const pagePathOf = memoizeString((pageUrl: string): string | null => {
  const trimmed = pageUrl.trim()
  if (trimmed.length === 0) return null
  if (trimmed.startsWith("/")) {
    const end = trimmed.search(/[?#]/)
    return cap(end === -1 ? trimmed : trimmed.slice(0, end))
  }
  try {
    return cap(new URL(trimmed).pathname)
  } catch {
    return null
  }
})

/** The dimensions of pageviews and sessions, in the order of {@link viewDimensionValues}. */
export const VIEW_DIMENSIONS = [
  "source",
  "country",
  "device_type",
  "browser",
  "os",
  "page_path",
  "referrer_host",
  "utm_campaign"
] as const

/** The dimension values of a view (pageviews) or of a session's first-touch view (sessions). */
export const viewDimensionValues = (view: EnrichedView): ReadonlyArray<string | null> => [
  view.traffic.source,
  view.geo.country,
  view.deviceType,
  cap(view.device.browser),
  cap(view.device.os),
  pagePath(view.pageUrl),
  view.traffic.referrer === null ? null : cap(referrerHost(view.traffic.referrer)),
  cap(view.traffic.campaign)
]

/** The dimensions of a view as (dimension, value) pairs. */
export const viewDimensions = (view: EnrichedView): ReadonlyArray<readonly [string, string | null]> => {
  const values = viewDimensionValues(view)
  return VIEW_DIMENSIONS.map((dimension, i) => [dimension, values[i] ?? null] as const)
}

export interface MetricRow {
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly metric: string
  readonly corpId: number | null
  readonly domainId: number | null
  readonly dimension: string
  readonly dimensionValue: string | null
  value: number
}

/**
 * A (metric, dimension) pair. `rollsUp`: its day bucket is the sum of its hour buckets (every
 * additive counter); not so for unique visitors, whose hour and day seen-sets differ.
 */
export interface Series {
  readonly key: string
  readonly metric: string
  readonly dimension: string
  readonly rollsUp: boolean
}

export const series = (metric: string, dimension: string, rollsUp = true): Series => ({
  key: `${metric}\u0001${dimension}`,
  metric,
  dimension,
  rollsUp
})

const viewSeries = (metric: string) => VIEW_DIMENSIONS.map((dimension) => series(metric, dimension))

export const SERIES = {
  pageviews: series(METRICS.pageviews, TOTAL),
  pageviewsBy: viewSeries(METRICS.pageviews),
  events: series(METRICS.events, TOTAL),
  eventsByType: series(METRICS.events, "event_type"),
  sessions: series(METRICS.sessions, TOTAL),
  sessionsBy: viewSeries(METRICS.sessions),
  conversions: series(METRICS.conversions, TOTAL),
  conversionsByType: series(METRICS.conversions, "conversion_type"),
  conversionValue: series(METRICS.conversionValue, TOTAL),
  conversionValueByCurrency: series(METRICS.conversionValue, "currency"),
  botEvents: series(METRICS.botEvents, TOTAL),
  botEventsByType: series(METRICS.botEvents, "event_type"),
  uniqueVisitors: series(METRICS.uniqueVisitors, TOTAL, false)
} as const

/** The counters of one (bucket, granularity, scope): series → dimension value → row. */
export class BucketCounters {
  readonly series = new Map<string, { readonly series: Series; readonly rows: Map<string | null, MetricRow> }>()
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly scope: Scope

  constructor(bucketStart: number, granularity: Granularity, scope: Scope) {
    this.bucketStart = bucketStart
    this.granularity = granularity
    this.scope = scope
  }

  add(s: Series, dimensionValue: string | null, value: number): void {
    let entry = this.series.get(s.key)
    if (entry === undefined) {
      entry = { series: s, rows: new Map() }
      this.series.set(s.key, entry)
    }
    const hit = entry.rows.get(dimensionValue)
    if (hit !== undefined) {
      hit.value += value
      return
    }
    entry.rows.set(dimensionValue, {
      bucketStart: this.bucketStart,
      granularity: this.granularity,
      metric: s.metric,
      corpId: this.scope.corpId,
      domainId: this.scope.domainId,
      dimension: s.dimension,
      dimensionValue,
      value
    })
  }
}

const bucketKey = (bucketStart: number, granularity: Granularity, scope: Scope) =>
  `${bucketStart}\u0001${granularity}\u0001${scope.corpId}\u0001${scope.domainId}`

const compareValues = (a: string | null, b: string | null) =>
  a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1

/**
 * (bucket start, corp, domain) → value through nested maps on the numbers themselves: the
 * per-event lookups build no key strings (scopes are compared by value, not by identity).
 */
class ScopedIndex<T> {
  private readonly map = new Map<number, Map<number | null, Map<number | null, T>>>()
  readonly values: Array<T> = []

  getOrCreate(bucketStart: number, scope: Scope, make: () => T): T {
    let byCorp = this.map.get(bucketStart)
    if (byCorp === undefined) {
      byCorp = new Map()
      this.map.set(bucketStart, byCorp)
    }
    let byDomain = byCorp.get(scope.corpId)
    if (byDomain === undefined) {
      byDomain = new Map()
      byCorp.set(scope.corpId, byDomain)
    }
    let value = byDomain.get(scope.domainId)
    if (value === undefined) {
      value = make()
      byDomain.set(scope.domainId, value)
      this.values.push(value)
    }
    return value
  }
}

/**
 * Additive counters keyed by (bucket, granularity, scope, metric, dimension, value). Counters
 * are kept per hour; day buckets of rolling-up series are derived when the rows are taken.
 */
export class MetricAccumulator {
  private readonly hours = new ScopedIndex<BucketCounters>()
  private readonly days = new ScopedIndex<BucketCounters>()

  /** The counters of one bucket and scope (created on first use). */
  bucket(bucketStart: number, granularity: Granularity, scope: Scope): BucketCounters {
    return (granularity === "hour" ? this.hours : this.days).getOrCreate(
      bucketStart,
      scope,
      () => new BucketCounters(bucketStart, granularity, scope)
    )
  }

  /** The hour bucket of `epochMs` (its day bucket follows for rolling-up series). */
  hourOf(epochMs: number, scope: Scope): BucketCounters {
    return this.bucket(hourStart(epochMs), "hour", scope)
  }

  get size(): number {
    return this.rows().length
  }

  /** Rows (hour buckets, derived day buckets, explicit buckets) in a stable key order. */
  rows(): Array<MetricRow> {
    const all = new Map<string, BucketCounters>()
    for (const counters of [...this.hours.values, ...this.days.values]) {
      const copy = new BucketCounters(counters.bucketStart, counters.granularity, counters.scope)
      for (const { rows, series: s } of counters.series.values()) {
        for (const row of rows.values()) copy.add(s, row.dimensionValue, row.value)
      }
      all.set(bucketKey(counters.bucketStart, counters.granularity, counters.scope), copy)
    }
    for (const counters of this.hours.values) {
      const day = dayStart(counters.bucketStart)
      const key = bucketKey(day, "day", counters.scope)
      let target = all.get(key)
      if (target === undefined) {
        target = new BucketCounters(day, "day", counters.scope)
        all.set(key, target)
      }
      for (const { rows, series: s } of counters.series.values()) {
        if (!s.rollsUp) continue
        for (const row of rows.values()) target.add(s, row.dimensionValue, row.value)
      }
    }
    const out: Array<MetricRow> = []
    for (const key of [...all.keys()].sort()) {
      const counters = all.get(key)!
      for (const seriesKey of [...counters.series.keys()].sort()) {
        const rows = counters.series.get(seriesKey)!.rows
        for (const value of [...rows.keys()].sort(compareValues)) out.push(rows.get(value)!)
      }
    }
    return out
  }
}

export interface DailyRow {
  readonly day: number
  readonly corpId: number | null
  readonly domainId: number | null
  pageviews: number
  uniqueVisitors: number
  sessions: number
  events: number
  conversions: number
  conversionValue: number
  botEvents: number
}

export type DailyField = Exclude<keyof DailyRow, "day" | "corpId" | "domainId">

const DAILY_FIELDS: ReadonlyArray<DailyField> = [
  "pageviews",
  "uniqueVisitors",
  "sessions",
  "events",
  "conversions",
  "conversionValue",
  "botEvents"
]

/** `daily_metrics` counters per (UTC day, corp, domain). */
export class DailyAccumulator {
  private readonly entries = new ScopedIndex<DailyRow>()

  add(epochMs: number, scope: Scope, field: DailyField, value: number): void {
    const day = dayStart(epochMs)
    const row = this.entries.getOrCreate(day, scope, () => ({
      day,
      corpId: scope.corpId,
      domainId: scope.domainId,
      pageviews: 0,
      uniqueVisitors: 0,
      sessions: 0,
      events: 0,
      conversions: 0,
      conversionValue: 0,
      botEvents: 0
    }))
    row[field] += value
  }

  /** Adds every counter of `row` (same day and scope). */
  addRow(row: DailyRow): void {
    const scope = { corpId: row.corpId, domainId: row.domainId }
    for (const field of DAILY_FIELDS) if (row[field] !== 0) this.add(row.day, scope, field, row[field])
  }

  get size(): number {
    return this.entries.values.length
  }

  rows(): ReadonlyArray<DailyRow> {
    return this.entries.values
      .map((row) => [`${row.day}\u0001${row.corpId}\u0001${row.domainId}`, row] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, row]) => row)
  }
}

/** One newly inserted raw_events row, as the rollups see it. */
export interface InsertedEvent {
  readonly receivedAtMs: number
  readonly scope: Scope
  readonly row: EnrichedView | EnrichedEvent
}

const metadataNumber = (metadata: Readonly<Record<string, unknown>> | null, key: string): number | null => {
  const value = metadata?.[key]
  return typeof value === "number" && Number.isFinite(value) ? value : null
}

const metadataString = (metadata: Readonly<Record<string, unknown>> | null, key: string): string | null => {
  const value = metadata?.[key]
  return typeof value === "string" && value.trim().length > 0 ? cap(value.trim()) : null
}

/** The event counters of newly inserted rows. */
export const addEvents = (metrics: MetricAccumulator, daily: DailyAccumulator, events: ReadonlyArray<InsertedEvent>) => {
  for (const { receivedAtMs: at, row, scope } of events) {
    const hour = metrics.hourOf(at, scope)
    if (row.isBot) {
      hour.add(SERIES.botEvents, null, 1)
      hour.add(SERIES.botEventsByType, row.eventType, 1)
      daily.add(at, scope, "botEvents", 1)
      continue
    }
    hour.add(SERIES.events, null, 1)
    hour.add(SERIES.eventsByType, row.eventType, 1)
    daily.add(at, scope, "events", 1)
    if (row.isView) {
      hour.add(SERIES.pageviews, null, 1)
      const values = viewDimensionValues(row)
      for (let i = 0; i < values.length; i++) hour.add(SERIES.pageviewsBy[i]!, values[i] ?? null, 1)
      daily.add(at, scope, "pageviews", 1)
    } else if (row.eventType === "conversion") {
      hour.add(SERIES.conversions, null, 1)
      hour.add(SERIES.conversionsByType, metadataString(row.metadata, "conversionType"), 1)
      daily.add(at, scope, "conversions", 1)
      const value = metadataNumber(row.metadata, "value")
      if (value !== null && value !== 0) {
        hour.add(SERIES.conversionValue, null, value)
        hour.add(SERIES.conversionValueByCurrency, metadataString(row.metadata, "currency"), value)
        daily.add(at, scope, "conversionValue", value)
      }
    }
  }
}

/** Sessions created in this batch (human ones only), with their first-touch view. */
export const addSessions = (
  metrics: MetricAccumulator,
  daily: DailyAccumulator,
  sessions: ReadonlyArray<{ readonly firstSeenMs: number; readonly scope: Scope; readonly view: EnrichedView }>
) => {
  for (const { firstSeenMs: at, scope, view } of sessions) {
    if (view.isBot) continue
    const hour = metrics.hourOf(at, scope)
    hour.add(SERIES.sessions, null, 1)
    const values = viewDimensionValues(view)
    for (let i = 0; i < values.length; i++) hour.add(SERIES.sessionsBy[i]!, values[i] ?? null, 1)
    daily.add(at, scope, "sessions", 1)
  }
}

/** Newly created seen-set rows: one unique visitor each for its bucket. */
export const addVisitors = (
  metrics: MetricAccumulator,
  daily: DailyAccumulator,
  seen: ReadonlyArray<{ readonly bucketStart: number; readonly granularity: Granularity; readonly scope: Scope }>
) => {
  for (const { bucketStart, granularity, scope } of seen) {
    metrics.bucket(bucketStart, granularity, scope).add(SERIES.uniqueVisitors, null, 1)
    if (granularity === "day") daily.add(bucketStart, scope, "uniqueVisitors", 1)
  }
}

/** The rollup counters of a set of events, as rows in a stable key order. */
export interface EventRollups {
  readonly metrics: ReadonlyArray<MetricRow>
  readonly daily: ReadonlyArray<DailyRow>
}

/** The rollups of newly inserted events (not sessions / unique visitors). */
export const eventRollups = (events: ReadonlyArray<InsertedEvent>): EventRollups => {
  const metrics = new MetricAccumulator()
  const daily = new DailyAccumulator()
  addEvents(metrics, daily, events)
  return { metrics: metrics.rows(), daily: daily.rows() }
}
