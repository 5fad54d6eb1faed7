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
 *     referrer_host, utm_campaign, org_type (the kind of network, docs/network.md; not the
 *     asn: hundreds of values per batch, read from `visits` instead) — sessions from the
 *     first-touch view of each new session;
 *   - `events`: total, event_type (all human events, views included);
 *   - `conversions`: total, conversion_type; `conversion_value`: total, currency (values in
 *     different currencies are not converted — the `currency` dimension keeps them apart);
 *   - `unique_visitors`: total (one per new row of the `visitor_seen` seen-set);
 *   - `bot_events`: total, event_type.
 * - Scope: (corp_id, domain_id) of the row (NULLs when the tenant is unknown).
 *
 * Extending it (visits, network dimensions): a new metric is a `Series` in `SERIES` fed by an
 * `add…` function here; a new daily column is a `DailyField` (RollupAccumulators.ts). Sinks
 * need no change for a new series (they store rows), only for a new daily column.
 */
import { referrerHost } from "./Attribution.ts"
import type { EnrichedEvent, EnrichedView } from "./Enrich.ts"
import { memoizeString } from "./Memo.ts"
import { DailyAccumulator, type DailyRow, type Granularity, MetricAccumulator, type MetricRow, series } from "./RollupAccumulators.ts"
import type { Scope } from "./Tenant.ts"

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
  "utm_campaign",
  "org_type"
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
  cap(view.traffic.campaign),
  view.network.orgType
]

/** The dimensions of a view as (dimension, value) pairs. */
export const viewDimensions = (view: EnrichedView): ReadonlyArray<readonly [string, string | null]> => {
  const values = viewDimensionValues(view)
  return VIEW_DIMENSIONS.map((dimension, i) => [dimension, values[i] ?? null] as const)
}

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

/** A session as the rollups count it: its first-touch view, the time and the tenant of that view. */
export interface CountedSession {
  readonly firstSeenMs: number
  readonly scope: Scope
  readonly view: EnrichedView
}

/** One session, its first touch as counted: bucket time, tenant, bot, `viewDimensionValues`. */
type SessionKey = readonly [number, number | null, number | null, boolean, ...Array<string | null>]

const countSession = (metrics: MetricAccumulator, daily: DailyAccumulator, key: SessionKey, sign: 1 | -1) => {
  const [at, corpId, domainId, isBot, ...values] = key
  if (isBot) return
  const scope: Scope = { corpId, domainId }
  const hour = metrics.hourOf(at, scope)
  hour.add(SERIES.sessions, null, sign)
  for (let i = 0; i < values.length; i++) hour.add(SERIES.sessionsBy[i]!, values[i] ?? null, sign)
  daily.add(at, scope, "sessions", sign)
}

const sessionKey = (session: CountedSession): SessionKey =>
  [session.firstSeenMs, session.scope.corpId, session.scope.domainId, session.view.isBot, ...viewDimensionValues(session.view)]

/**
 * What the rollups counted for a session, as text (kept with its fingerprint, `rollup_key`), so
 * that an earlier view taking its first touch over later can take the count back
 * ({@link moveSessions}).
 */
export const sessionRollupKey = (session: CountedSession): string => JSON.stringify(sessionKey(session))

/** Sessions created in this batch (human ones only), with their first-touch view. */
export const addSessions = (metrics: MetricAccumulator, daily: DailyAccumulator, sessions: ReadonlyArray<CountedSession>) => {
  for (const session of sessions) countSession(metrics, daily, sessionKey(session), 1)
}

/**
 * Sessions whose first touch an earlier view took over (a late spool drain, or the session's
 * views in transactions written at once): the count made with the previous first touch
 * (`from`, a {@link sessionRollupKey}) is taken back and the session counted with the new one —
 * its hour and day, tenant and landing dimensions (a bot first touch counts nowhere).
 */
export const moveSessions = (
  metrics: MetricAccumulator,
  daily: DailyAccumulator,
  moves: ReadonlyArray<{ readonly from: string; readonly to: CountedSession }>
) => {
  for (const { from, to } of moves) {
    countSession(metrics, daily, JSON.parse(from) as SessionKey, -1)
    countSession(metrics, daily, sessionKey(to), 1)
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
