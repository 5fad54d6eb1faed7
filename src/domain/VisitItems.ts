/**
 * Visit contents (docs/visits.md "Visit contents", issue 14 targets): what a visit did, per
 * content dimension — the pages it had events on, the event types it sent — so that the stats
 * query API answers "top pages", "event types" and any page / event type breakdown from rows
 * kept by the writer instead of grouping every event of the period. (Hostnames are not kept:
 * a visit nearly always has one, so they would add a row per visit and batch — a third of the
 * statement's rows — for a breakdown the dashboard does not show; the query API reads them from
 * the events.)
 *
 * - `visit_items`: per (site, session, dim, value) the events of that visit with that value —
 *   pageviews, events, conversions and their revenue. `dim` is `page` (the page path,
 *   `spoolway_page_path`) or `event_type`; a NULL value is an event without one (no page URL).
 *   Every event of a visit adds to one row of each dimension.
 * - `item_rollups` (per UTC hour of the visit's **start**) and `item_rollups_daily` (per UTC
 *   day): per (site, dim, value) the human visits that had it (`visits`: one per visit) and
 *   their figures with it — additive, like the visit rollups, and in the same rule: a visit
 *   counts, with everything it did, in the period it started in.
 *
 * Kept by the writer in the batch transaction, after the visits (PgSinkStatements.ts,
 * `UPSERT_VISIT_ITEMS`), from the newly inserted events only: their item rows computed in the
 * writer ({@link visitItemRows}, equal to {@link itemsOfEventsSql}, which the backfill runs).
 * When a visit's start moves to another hour (an earlier event arrived late) or it turns out to
 * be a bot's, the statement moves all its stored items from the old hour to the new one (or out
 * of the rollups). `visits.conversions` / `visits.revenue` (its `event_type = 'conversion'` item,
 * merged into the visit by the visits statement) make conversions a visit figure.
 *
 * Pure: the SQL fragments shared by the migration (backfill), the writer's statement and the
 * query compiler, and the writer's item rows.
 */
import { daySql, hourSql } from "./VisitRollups.ts"

/** The content dimensions (a `visit_items.dim` each). */
export const ITEM_DIMENSIONS = ["page", "event_type"] as const
export type ItemDimension = typeof ITEM_DIMENSIONS[number]

export const isItemDimension = (d: string): d is ItemDimension => (ITEM_DIMENSIONS as ReadonlyArray<string>).includes(d)

/** The event type of a conversion. */
export const CONVERSION = "conversion"

/**
 * A conversion's value (numeric), from an event's metadata JSON text `metadata` and its
 * `event_type` column — NULL unless it is a conversion with a numeric `value` (the rule of the
 * query API's `revenue`, docs/api.md).
 */
export const revenueSql = (eventType: string, metadata: string) =>
  `CASE WHEN ${eventType} = '${CONVERSION}' AND jsonb_typeof((${metadata})::jsonb->'value') = 'number' ` +
  `THEN ((${metadata})::jsonb->>'value')::numeric END`

/**
 * The item rows of events `t` (columns site_id, session_id, page_url, event_type, kind,
 * metadata): (site_id, session_id, dim, value, pageviews, events, conversions, revenue).
 */
export const itemsOfEventsSql = (events: string) => `
  SELECT t.site_id, t.session_id, i.dim, i.value, count(*) FILTER (WHERE t.kind = 'view') AS pageviews, count(*) AS events,
         count(*) FILTER (WHERE t.event_type = '${CONVERSION}') AS conversions,
         coalesce(sum(${revenueSql("t.event_type", "t.metadata")}), 0) AS revenue
  FROM ${events}
  CROSS JOIN LATERAL (VALUES ('page', spoolway_page_path(t.page_url)), ('event_type', t.event_type)) AS i(dim, value)
  WHERE t.site_id IS NOT NULL
  GROUP BY 1, 2, 3, 4`

/** The item rows of the stored events (the backfill's source). */
export const ITEMS_OF_STORED_EVENTS_SQL = itemsOfEventsSql(
  "(SELECT e.domain_id AS site_id, e.session_id, e.page_url, e.event_type, e.kind, e.metadata::text AS metadata FROM raw_events e) t"
)

/** The hourly item rollup rows of the stored items and visits (human visits, by their start's UTC hour). */
export const ITEM_ROLLUPS_OF_ITEMS_SQL = `
  SELECT i.site_id, i.dim, ${hourSql("v.started_at")} AS hour, i.value, count(*) AS visits, sum(i.pageviews) AS pageviews,
         sum(i.events) AS events, sum(i.conversions) AS conversions, sum(i.revenue) AS revenue
  FROM visit_items i JOIN visits v ON v.site_id = i.site_id AND v.session_id = i.session_id
  WHERE NOT v.is_bot
  GROUP BY 1, 2, 3, 4`

/** The daily item rollup rows: the hourly ones summed per UTC day. */
export const DAILY_ITEM_ROLLUPS_OF_ITEMS_SQL = `
  SELECT site_id, dim, ${daySql("hour")} AS day, value, sum(visits) AS visits, sum(pageviews) AS pageviews, sum(events) AS events,
         sum(conversions) AS conversions, sum(revenue) AS revenue
  FROM (${ITEM_ROLLUPS_OF_ITEMS_SQL}) h
  GROUP BY 1, 2, 3, 4`

const ITEM_COLUMNS = "site_id, session_id, dim, value, pageviews, events, conversions, revenue"

/** Item rows `items` (columns as `visit_items` before 0019) each followed by its visit's start hour (`visit_items.hour`). */
export const withVisitHourSql = (items: string) =>
  `SELECT x.*, ${hourSql("v.started_at")} AS hour FROM (${items}) x JOIN visits v ON v.site_id = x.site_id AND v.session_id = x.session_id`

/**
 * Fills `visit_items`, `visits.conversions` / `revenue` and the item rollups from the stored
 * events and visits (the item tables empty, the visits' conversions 0): today's tables (each item
 * with its visit's start hour, migration 0019) or, `{ hours: false }`, migration 0010's backfill,
 * before that column existed.
 */
export const backfillItemsSql = (options: { readonly hours: boolean }): ReadonlyArray<string> => [
  options.hours
    ? `INSERT INTO visit_items (${ITEM_COLUMNS}, hour) ${withVisitHourSql(ITEMS_OF_STORED_EVENTS_SQL)}`
    : `INSERT INTO visit_items (${ITEM_COLUMNS}) ${ITEMS_OF_STORED_EVENTS_SQL}`,
  `UPDATE visits v SET conversions = i.conversions, revenue = i.revenue FROM visit_items i
    WHERE i.site_id = v.site_id AND i.session_id = v.session_id AND i.dim = 'event_type' AND i.value = '${CONVERSION}'`,
  `INSERT INTO item_rollups (site_id, dim, hour, value, visits, pageviews, events, conversions, revenue) ${ITEM_ROLLUPS_OF_ITEMS_SQL}`,
  `INSERT INTO item_rollups_daily (site_id, dim, day, value, visits, pageviews, events, conversions, revenue) ${DAILY_ITEM_ROLLUPS_OF_ITEMS_SQL}`
]

/** {@link backfillItemsSql} for today's tables. */
export const BACKFILL_ITEMS_SQL = backfillItemsSql({ hours: true })

/** The additive columns of the item rollups. */
export const ITEM_ROLLUP_FIGURES = ["visits", "pageviews", "events", "conversions", "revenue"] as const

// ---------------------------------------------------------------------------------------------
// the writer's item rows, computed in Node (the SQL of `itemsOfEventsSql`, without sending the
// events' URLs and metadata to PostgreSQL a second time)

/** What one event contributes to its visit's items (the columns `itemsOfEventsSql` reads; a `PreparedEvent` is one). */
export interface ItemEvent {
  readonly scope: { readonly domainId: number | null }
  readonly row: {
    readonly sessionId: string
    readonly pageUrl: string | null
    readonly eventType: string
    readonly kind: string
    readonly metadata: Readonly<Record<string, unknown>> | null
  }
}

/** One `visit_items` row of a batch: the figures its events add. `revenue` is a numeric's text. */
export interface VisitItemRow {
  readonly siteId: number
  readonly sessionId: string
  readonly dim: ItemDimension
  readonly value: string | null
  pageviews: number
  events: number
  conversions: number
  /** the exact decimal sum (scale: the greatest of its terms', as PostgreSQL's numeric sum) */
  revenue: Decimal
}

/** A text as PostgreSQL stores it from the writer's parameters: U+0000 → U+FFFD, lone surrogates → U+FFFD (UTF-8). */
export const storedText = (text: string): string =>
  ((text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text) as WellFormable).toWellFormed()

/** (ES2024, in Node 24; the project's lib is ES2023) */
type WellFormable = string & { toWellFormed(): string }

/**
 * `spoolway_page_path` (migration 0007) in TypeScript: the path of a site-relative URL up to its
 * query or fragment, of an absolute one (after the first `://`) from its first `/` (`/` when it
 * has none), else null. Property-tested against the SQL function.
 */
export const sqlPagePath = (url: string | null): string | null => {
  if (url === null) return null
  const cut = (s: string) => {
    let end = s.length
    const q = s.indexOf("?")
    if (q !== -1) end = q
    const h = s.indexOf("#")
    if (h !== -1 && h < end) end = h
    return end === s.length ? s : s.slice(0, end)
  }
  if (url.startsWith("/")) return cut(url)
  const scheme = url.indexOf("://")
  if (scheme === -1) return null
  const rest = cut(url.slice(scheme + 3))
  const slash = rest.indexOf("/")
  return slash === -1 ? "/" : rest.slice(slash)
}

/** An exact decimal: `units` × 10^−`scale`. */
export interface Decimal {
  readonly units: bigint
  readonly scale: number
}

export const ZERO_DECIMAL: Decimal = { units: 0n, scale: 0 }

const NUMBER_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/

/** The exact decimal of a finite number's JSON text (what `::jsonb->>'value'` turns into a numeric). */
export const decimalOfNumber = (n: number): Decimal => {
  const m = NUMBER_TEXT.exec(JSON.stringify(n))!
  const fraction = m[3] ?? ""
  const exponent = Number(m[4] ?? 0)
  let units = BigInt(`${m[2]}${fraction}`)
  if (m[1] === "-") units = -units
  const scale = fraction.length - exponent
  return scale >= 0 ? { units, scale } : { units: units * 10n ** BigInt(-scale), scale: 0 }
}

export const addDecimals = (a: Decimal, b: Decimal): Decimal =>
  a.scale === b.scale
    ? { units: a.units + b.units, scale: a.scale }
    : a.scale < b.scale
    ? { units: a.units * 10n ** BigInt(b.scale - a.scale) + b.units, scale: b.scale }
    : { units: a.units + b.units * 10n ** BigInt(a.scale - b.scale), scale: a.scale }

/** A decimal as numeric input text, with all `scale` digits after the point (PostgreSQL keeps the scale). */
export const decimalText = (d: Decimal): string => {
  const negative = d.units < 0n
  const digits = (negative ? -d.units : d.units).toString()
  if (d.scale === 0) return `${negative ? "-" : ""}${digits}`
  const padded = digits.padStart(d.scale + 1, "0")
  return `${negative ? "-" : ""}${padded.slice(0, -d.scale)}.${padded.slice(-d.scale)}`
}

/** A conversion's value (`revenueSql`): its metadata's `value` when that is a (finite) number. */
const revenueOf = (metadata: Readonly<Record<string, unknown>> | null): Decimal | undefined => {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) return undefined
  const value = Object.hasOwn(metadata, "value") ? metadata["value"] : undefined
  return typeof value === "number" && Number.isFinite(value) ? decimalOfNumber(value) : undefined
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** The order rows are sent in (any one total order of the conflict key serves as the lock order). */
export const compareItemRows = (a: VisitItemRow, b: VisitItemRow): number =>
  a.siteId - b.siteId || compareText(a.sessionId, b.sessionId) || compareText(a.dim, b.dim) ||
  (a.value === b.value ? 0 : a.value === null ? -1 : b.value === null ? 1 : compareText(a.value, b.value))

/**
 * The `visit_items` rows of events — what `itemsOfEventsSql` computes from the same events (the
 * property test holds them equal): per (site, session, dim, value) the pageviews, events,
 * conversions and revenue; events without a site are left out. Sorted by
 * {@link compareItemRows}; texts as PostgreSQL stores them ({@link storedText}), so that no two
 * rows share a key there.
 */
export const visitItemRows = (events: ReadonlyArray<ItemEvent>): Array<VisitItemRow> => {
  const rows = new Map<string, VisitItemRow>()
  const add = (
    siteId: number,
    sessionId: string,
    dim: ItemDimension,
    value: string | null,
    view: boolean,
    conversion: boolean,
    revenue: Decimal | undefined
  ) => {
    // injective: the session's length delimits it, the dimension is one of two names
    const key = `${siteId}|${sessionId.length}|${sessionId}${dim}|${value === null ? "" : `=${value}`}`
    let row = rows.get(key)
    if (row === undefined) {
      row = { siteId, sessionId, dim, value, pageviews: 0, events: 0, conversions: 0, revenue: ZERO_DECIMAL }
      rows.set(key, row)
    }
    row.events++
    if (view) row.pageviews++
    if (conversion) row.conversions++
    if (revenue !== undefined) row.revenue = addDecimals(row.revenue, revenue)
  }
  for (const e of events) {
    const siteId = e.scope.domainId
    if (siteId === null) continue
    const r = e.row
    const sessionId = storedText(r.sessionId)
    const eventType = storedText(r.eventType)
    const view = r.kind === "view"
    const conversion = eventType === CONVERSION
    const revenue = conversion ? revenueOf(r.metadata) : undefined
    const page = sqlPagePath(r.pageUrl === null ? null : storedText(r.pageUrl))
    add(siteId, sessionId, "page", page, view, conversion, revenue)
    add(siteId, sessionId, "event_type", eventType, view, conversion, revenue)
  }
  return [...rows.values()].sort(compareItemRows)
}

/** Per visit (`${siteId}|${sessionId}`, stored texts): its conversions and their revenue, from its `event_type` conversion row. */
export const conversionsOfItems = (rows: ReadonlyArray<VisitItemRow>): Map<string, VisitItemRow> => {
  const byVisit = new Map<string, VisitItemRow>()
  for (const row of rows) if (row.dim === "event_type" && row.value === CONVERSION) byVisit.set(`${row.siteId}|${row.sessionId}`, row)
  return byVisit
}
