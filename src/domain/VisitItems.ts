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
 * `UPSERT_VISIT_ITEMS`), from the newly inserted events only. When a visit's start moves to
 * another hour (an earlier event arrived late) or it turns out to be a bot's, the statement
 * moves all its stored items from the old hour to the new one (or out of the rollups).
 * `visits.conversions` / `visits.revenue` (its `event_type = 'conversion'` item, copied onto the
 * visit by the same statement) make conversions a visit figure.
 *
 * Pure: the SQL fragments shared by the migration (backfill), the writer's statement and the
 * query compiler.
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

/**
 * Fills `visit_items`, `visits.conversions` / `revenue` and the item rollups from the stored
 * events and visits (migration 0010's backfill; the item tables empty, the visits' conversions 0).
 */
export const BACKFILL_ITEMS_SQL: ReadonlyArray<string> = [
  `INSERT INTO visit_items (site_id, session_id, dim, value, pageviews, events, conversions, revenue) ${ITEMS_OF_STORED_EVENTS_SQL}`,
  `UPDATE visits v SET conversions = i.conversions, revenue = i.revenue FROM visit_items i
    WHERE i.site_id = v.site_id AND i.session_id = v.session_id AND i.dim = 'event_type' AND i.value = '${CONVERSION}'`,
  `INSERT INTO item_rollups (site_id, dim, hour, value, visits, pageviews, events, conversions, revenue) ${ITEM_ROLLUPS_OF_ITEMS_SQL}`,
  `INSERT INTO item_rollups_daily (site_id, dim, day, value, visits, pageviews, events, conversions, revenue) ${DAILY_ITEM_ROLLUPS_OF_ITEMS_SQL}`
]

/** The additive columns of the item rollups. */
export const ITEM_ROLLUP_FIGURES = ["visits", "pageviews", "events", "conversions", "revenue"] as const
