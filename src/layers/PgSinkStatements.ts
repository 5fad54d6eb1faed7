/**
 * Every statement of the PostgreSQL sink's batch transaction, with the encoder of its
 * parameters beside it (column order = parameter order): the one place statements are
 * registered (`STATEMENTS`, also used for documentation, diagnostics and EXPLAIN). The order
 * they run in, and why, is PgSink.ts.
 *
 * Lock order: every multi-row statement receives its rows sorted by the table's conflict key
 * (the row builders in PgSinkRows.ts, the prepare stage for raw_events, the accumulators for
 * the rollups), and the statements run in the order of `STATEMENTS` — so overlapping
 * transactions, of one writer or of several, never deadlock. A new statement takes its place in
 * that order and sorts its rows by its conflict key. Server-side session assignment takes its
 * visitor locks (advisory, ascending) before anything else; `visitor_sessions` rows are only
 * written under them.
 */
import { PgTypes } from "@effect/sql-pg"
import type { PoisonEntry, PreparedEvent } from "../domain/Batch.ts"
import { compareStrings } from "../domain/Batch.ts"
import type { DailyRow, MetricRow } from "../domain/RollupAccumulators.ts"
import { sessionRollupKey } from "../domain/Rollups.ts"
import {
  arrayOf,
  boolArray,
  byteaArray,
  finite,
  float8Array,
  int4Array,
  int8Array,
  int8OrNullArray,
  metadataJson,
  noNul,
  noNulOrNull,
  type Params,
  textArray,
  tsArray,
  uuidArray
} from "./PgSinkParams.ts"
import { countedSession, type SeenRow, type SessionRow } from "./PgSinkRows.ts"
import type { VisitRow } from "../domain/Visits.ts"
import { pageHost } from "../domain/Visits.ts"
import {
  bounceSql,
  daySql,
  dimsArraySql,
  durationSql,
  hourSql,
  ROLLUP_DIMENSIONS,
  secondsOfMicros,
  type StoredVisit,
  TOTAL_DIMENSION,
  type VisitRollupDelta
} from "../domain/VisitRollups.ts"
import { conversionsOfItems, decimalText, ITEM_ROLLUP_FIGURES, storedText, type VisitItemRow } from "../domain/VisitItems.ts"

// Non-view events flagged `resolve` take corp/domain from their session's fingerprint, those
// flagged `resolve_bot` its is_bot (the session's first touch): one index lookup for both, and
// none for the other rows — the lateral's condition on t.* is a one-time filter per row, and
// OFFSET 0 keeps the planner from flattening it into a join over the whole fingerprint table.
export const INSERT_RAW_EVENTS = `
  INSERT INTO raw_events (id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
                          metadata, "timestamp", received_at, visitor_id_daily, corp_id, domain_id)
  SELECT t.id, t.kind, t.event_type, t.session_id, t.user_id, t.page_url, t.referrer, t.device_type,
         CASE WHEN t.resolve_bot THEN coalesce(f.is_bot, false) ELSE t.is_bot END,
         t.metadata::jsonb, t.ts, t.received_at, t.visitor_id_daily,
         CASE WHEN t.resolve THEN f.corp_id ELSE t.corp_id END,
         CASE WHEN t.resolve THEN f.domain_id ELSE t.domain_id END
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::bool[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::bytea[], $14::int4[], $15::int4[],
              $16::bool[], $17::bool[])
       AS t(id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
            metadata, ts, received_at, visitor_id_daily, corp_id, domain_id, resolve, resolve_bot)
  LEFT JOIN LATERAL (
    SELECT s.corp_id, s.domain_id, s.is_bot FROM session_fingerprints s
    WHERE (t.resolve OR t.resolve_bot) AND s.session_id = t.session_id
    OFFSET 0
  ) f ON true
  ON CONFLICT DO NOTHING
  RETURNING id::text AS id, received_at, corp_id, domain_id, is_bot`

export const rawParams = (events: ReadonlyArray<PreparedEvent>): Params => [
  uuidArray(events.map((e) => e.row.eventId)),
  textArray(events.map((e) => e.row.kind)),
  textArray(events.map((e) => noNul(e.row.eventType))),
  textArray(events.map((e) => noNul(e.row.sessionId))),
  textArray(events.map((e) => noNulOrNull(e.row.userId))),
  textArray(events.map((e) => noNulOrNull(e.row.pageUrl))),
  textArray(events.map((e) => noNulOrNull(e.row.referrer))),
  textArray(events.map((e) => e.row.deviceType)),
  boolArray(events.map((e) => e.row.isBot)),
  textArray(events.map((e) => metadataJson(e.row.metadata))),
  tsArray(events.map((e) => e.timestampMs)),
  tsArray(events.map((e) => e.receivedAtMs)),
  byteaArray(events.map((e) => e.row.visitorIdDaily)),
  int4Array(events.map((e) => e.scope.corpId)),
  int4Array(events.map((e) => e.scope.domainId)),
  boolArray(events.map((e) => e.resolveScope)),
  boolArray(events.map((e) => e.resolveBot))
]

/** One unnest parameter: a column's values as the array of its PostgreSQL type (timestamptz by default). */
const columnArray = (type: string, values: Array<unknown>) => {
  switch (type) {
    case "text":
      return textArray(values as Array<string | null>)
    case "int4":
      return int4Array(values as Array<number | null>)
    case "int8":
      return int8OrNullArray(values as Array<number | null>)
    case "bool":
      return boolArray(values as Array<boolean | null>)
    case "float8":
      return float8Array(values as Array<number | null>)
    case "bytea":
      return byteaArray(values as Array<Uint8Array | null>)
    case "uuid":
      return arrayOf(values, PgTypes.OID.uuid)
    case "numeric":
      // numeric input text (exact), cast in the statement
      return textArray(values as Array<string | null>)
    default:
      return tsArray(values as Array<number | null>)
  }
}

/** [column, array element type, kind] of session_fingerprints, in statement order. */
const FINGERPRINT_COLUMNS: ReadonlyArray<readonly [string, string, "first" | "viewport" | "other"]> = [
  ["session_id", "text", "other"],
  ["user_id", "text", "other"],
  ["corp_id", "int4", "first"],
  ["domain_id", "int4", "first"],
  ["device_type", "text", "first"],
  ["is_bot", "bool", "first"],
  ["browser", "text", "first"],
  ["browser_version", "text", "first"],
  ["browser_major", "int4", "first"],
  ["os", "text", "first"],
  ["os_version", "text", "first"],
  ["device_vendor", "text", "first"],
  ["device_model", "text", "first"],
  ["screen_width", "float8", "first"],
  ["screen_height", "float8", "first"],
  ["viewport_width", "float8", "viewport"],
  ["viewport_height", "float8", "viewport"],
  ["pixel_ratio", "float8", "first"],
  ["color_depth", "float8", "first"],
  ["language", "text", "first"],
  ["languages", "text", "first"],
  ["timezone", "text", "first"],
  ["timezone_offset", "float8", "first"],
  ["device_memory", "float8", "first"],
  ["hardware_concurrency", "float8", "first"],
  ["touch_points", "float8", "first"],
  ["cookies_enabled", "bool", "first"],
  ["do_not_track", "text", "first"],
  ["country", "text", "first"],
  ["region", "text", "first"],
  ["city", "text", "first"],
  ["is_eu", "bool", "first"],
  ["geo_timezone", "text", "first"],
  ["asn", "int8", "first"],
  ["org", "text", "first"],
  ["org_type", "text", "first"],
  ["is_datacenter", "bool", "first"],
  ["is_vpn", "bool", "first"],
  ["is_government", "bool", "first"],
  ["is_tor", "bool", "first"],
  ["proxy_type", "text", "first"],
  ["response_tier", "text", "first"],
  ["ip_hash", "text", "first"],
  ["visitor_id_daily", "bytea", "first"],
  ["traffic_source", "text", "first"],
  ["utm_source", "text", "first"],
  ["utm_medium", "text", "first"],
  ["utm_campaign", "text", "first"],
  ["utm_content", "text", "first"],
  ["utm_term", "text", "first"],
  ["referrer", "text", "first"],
  ["landing_page", "text", "first"],
  // what the rollups counted for the session (migration 0016, domain/Rollups.ts sessionRollupKey)
  ["rollup_key", "text", "first"],
  ["first_seen_at", "timestamptz", "other"],
  ["viewport_updated_at", "timestamptz", "other"]
]

/**
 * First touch wins: a stored session keeps its first-view columns unless this batch holds an
 * earlier view. Later views only replace the viewport (when they carry one that differs) and
 * fill an empty user_id. Rows that would not change are not updated at all (no dead tuples).
 * `xmax = 0` tells a row inserted by this statement from an updated one; `prev_rollup_key` is
 * what the rollups counted for a session whose first touch this statement took over (NULL
 * otherwise, and for sessions stored before migration 0016), for the writer to move that count.
 */
export const UPSERT_FINGERPRINTS = (() => {
  const names = FINGERPRINT_COLUMNS.map(([name]) => name)
  const unnestArgs = FINGERPRINT_COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(", ")
  const select = FINGERPRINT_COLUMNS.map(([name]) =>
    name === "languages"
      ? `CASE WHEN t.languages IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(t.languages::jsonb)) END`
      : `t.${name}`
  ).join(", ")
  const earlier = `excluded.first_seen_at < f.first_seen_at`
  const newViewport = `(excluded.viewport_updated_at >= f.viewport_updated_at
        AND (excluded.viewport_width IS NOT NULL OR excluded.viewport_height IS NOT NULL)
        AND (excluded.viewport_width IS DISTINCT FROM f.viewport_width
             OR excluded.viewport_height IS DISTINCT FROM f.viewport_height))`
  const fillUser = `(COALESCE(f.user_id, '') = '' AND COALESCE(excluded.user_id, '') <> '')`
  const firstTouch = FINGERPRINT_COLUMNS.filter(([, , kind]) => kind === "first").map(([name]) =>
    `${name} = CASE WHEN ${earlier} THEN excluded.${name} ELSE f.${name} END`
  )
  const viewport = ["viewport_width", "viewport_height", "viewport_updated_at"].map((name) =>
    `${name} = CASE WHEN ${newViewport} THEN excluded.${name} ELSE f.${name} END`
  )
  return `
    INSERT INTO session_fingerprints AS f (${names.join(", ")})
    SELECT ${select} FROM unnest(${unnestArgs}) AS t(${names.join(", ")})
    ON CONFLICT (session_id) DO UPDATE SET
      ${[...firstTouch, ...viewport].join(",\n      ")},
      user_id = CASE WHEN ${fillUser} THEN excluded.user_id ELSE f.user_id END,
      first_seen_at = LEAST(f.first_seen_at, excluded.first_seen_at),
      prev_rollup_key = CASE WHEN ${earlier} THEN f.rollup_key END,
      updated_at = now()
    WHERE ${earlier} OR ${newViewport} OR ${fillUser}
    RETURNING session_id, (xmax = 0) AS inserted, prev_rollup_key`
})()

export const fingerprintParams = (sessions: ReadonlyArray<SessionRow>): Params => {
  const columns = FINGERPRINT_COLUMNS.map(() => [] as Array<unknown>)
  for (const s of sessions) {
    const v = s.first.row
    const d = v.device
    const n = v.network
    const viewport = s.viewport?.device ?? d
    const values: ReadonlyArray<unknown> = [
      s.sessionId,
      noNulOrNull(s.userId),
      s.first.scope.corpId,
      s.first.scope.domainId,
      v.deviceType,
      v.isBot,
      noNulOrNull(d.browser),
      noNulOrNull(d.browserVersion),
      d.browserMajor !== null && Number.isInteger(d.browserMajor) && Math.abs(d.browserMajor) < 2 ** 31
        ? d.browserMajor
        : null,
      noNulOrNull(d.os),
      noNulOrNull(d.osVersion),
      noNulOrNull(d.deviceVendor),
      noNulOrNull(d.deviceModel),
      finite(d.screenWidth),
      finite(d.screenHeight),
      finite(viewport.viewportWidth),
      finite(viewport.viewportHeight),
      finite(d.pixelRatio),
      finite(d.colorDepth),
      noNulOrNull(d.language),
      d.languages === undefined ? null : JSON.stringify(d.languages.map(noNul)).replaceAll("\\u0000", "\\ufffd"),
      noNulOrNull(d.timezone),
      finite(d.timezoneOffset),
      finite(d.deviceMemory),
      finite(d.hardwareConcurrency),
      finite(d.touchPoints),
      d.cookiesEnabled ?? null,
      d.doNotTrack === undefined || d.doNotTrack === null ? null : noNul(String(d.doNotTrack)),
      noNulOrNull(v.geo.country),
      noNulOrNull(v.geo.region),
      noNulOrNull(v.geo.city),
      v.geo.isEu,
      noNulOrNull(v.geo.timezone),
      n.asn,
      noNulOrNull(n.org),
      n.orgType,
      n.isDatacenter,
      n.isVpn,
      n.isGovernment,
      n.isTor,
      n.proxyType,
      n.responseTier,
      v.ipHash,
      v.visitorIdDaily,
      v.traffic.source,
      noNulOrNull(v.traffic.rawSource),
      noNulOrNull(v.traffic.medium),
      noNulOrNull(v.traffic.campaign),
      noNulOrNull(v.traffic.content),
      noNulOrNull(v.traffic.term),
      noNulOrNull(v.traffic.referrer),
      noNulOrNull(v.landingPage),
      sessionRollupKey(countedSession(s)),
      s.firstSeenMs,
      s.viewport === undefined ? s.firstSeenMs : s.viewportAt
    ]
    for (let i = 0; i < values.length; i++) columns[i]!.push(values[i])
  }
  return FINGERPRINT_COLUMNS.map(([, type], i) => columnArray(type, columns[i]!))
}

export const INSERT_SEEN = `
  INSERT INTO visitor_seen (bucket_start, granularity, domain_id, visitor_id_daily, corp_id)
  SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::bytea[], $5::int4[])
  ON CONFLICT DO NOTHING
  RETURNING bucket_start, granularity, domain_id, corp_id`

export const seenParams = (rows: ReadonlyArray<SeenRow>): Params => [
  tsArray(rows.map((r) => r.bucketStart)),
  textArray(rows.map((r) => r.granularity)),
  int4Array(rows.map((r) => r.scope.domainId)),
  byteaArray(rows.map((r) => r.vid)),
  int4Array(rows.map((r) => r.scope.corpId))
]

export const UPSERT_METRICS = `
  INSERT INTO aggregated_metrics AS m (bucket_start, granularity, metric, corp_id, domain_id, dimension, dimension_value, value)
  SELECT b, g, metric, c, d, dim, dv, v::numeric
  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::text[], $8::float8[])
       AS t(b, g, metric, c, d, dim, dv, v)
  ON CONFLICT (bucket_start, granularity, metric, corp_id, domain_id, dimension, dimension_value)
  DO UPDATE SET value = m.value + excluded.value, updated_at = now()`

export const metricParams = (rows: ReadonlyArray<MetricRow>): Params => [
  tsArray(rows.map((r) => r.bucketStart)),
  textArray(rows.map((r) => r.granularity)),
  textArray(rows.map((r) => r.metric)),
  int4Array(rows.map((r) => r.corpId)),
  int4Array(rows.map((r) => r.domainId)),
  textArray(rows.map((r) => r.dimension)),
  textArray(rows.map((r) => noNulOrNull(r.dimensionValue))),
  float8Array(rows.map((r) => r.value))
]

export const UPSERT_DAILY = `
  INSERT INTO daily_metrics AS m (day, corp_id, domain_id, pageviews, unique_visitors, sessions, events, conversions,
                                  conversion_value, bot_events)
  SELECT (b AT TIME ZONE 'UTC')::date, c, d, pv, uv, s, e, cv, cval::numeric, bots
  FROM unnest($1::timestamptz[], $2::int4[], $3::int4[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[],
              $9::float8[], $10::int8[]) AS t(b, c, d, pv, uv, s, e, cv, cval, bots)
  ON CONFLICT (day, corp_id, domain_id) DO UPDATE SET
    pageviews = m.pageviews + excluded.pageviews,
    unique_visitors = m.unique_visitors + excluded.unique_visitors,
    sessions = m.sessions + excluded.sessions,
    events = m.events + excluded.events,
    conversions = m.conversions + excluded.conversions,
    conversion_value = m.conversion_value + excluded.conversion_value,
    bot_events = m.bot_events + excluded.bot_events,
    updated_at = now()`

export const dailyParams = (rows: ReadonlyArray<DailyRow>): Params => [
  tsArray(rows.map((r) => r.day)),
  int4Array(rows.map((r) => r.corpId)),
  int4Array(rows.map((r) => r.domainId)),
  int8Array(rows.map((r) => r.pageviews)),
  int8Array(rows.map((r) => r.uniqueVisitors)),
  int8Array(rows.map((r) => r.sessions)),
  int8Array(rows.map((r) => r.events)),
  int8Array(rows.map((r) => r.conversions)),
  float8Array(rows.map((r) => r.conversionValue)),
  int8Array(rows.map((r) => r.botEvents))
]

// ---------------------------------------------------------------------------------------------
// server-side session assignment (events without a sessionId; domain/Visits.ts, PgSinkSessions.ts)

/** advisory lock class of the visitor keys (the second key is a hash of site and visitor) */
export const VISITOR_LOCK_CLASS = 0x5357

/** Locks the batch's visitor keys, hashes sorted ascending (the one global order), until COMMIT. */
export const LOCK_VISITORS = `SELECT pg_advisory_xact_lock(${VISITOR_LOCK_CLASS}, h) FROM unnest($1::int4[]) AS t(h)`

// The three lookups below take the batch's keys (a few hundred) to a table that holds every
// visitor of the last days (visitor_sessions, visits) or every event of the day (raw_events).
// Planned for the actual keys (a custom plan: an unprepared statement, or the first five
// executions of a prepared one), a plain join lets the planner hash the whole table or day
// partition once per batch — it prices a sequential scan below hundreds of random index probes
// — a cost that grows with the data (measured 11 ms at 20,000 visitors, 33–80 ms at a
// 100,000-event day). Only the generic plan PostgreSQL switches to later (it assumes 10 keys)
// probed the index. A LATERAL subquery with OFFSET 0 (not flattened into a join) probes the
// table's index once per key whatever the plan (bench/README.md, server-side sessions).

export const SELECT_VISITOR_SESSIONS = `
  SELECT s.site_id, s.visitor_id_daily, s.session_id, s.started_at, s.last_seen_at
  FROM unnest($1::int4[], $2::bytea[]) AS t(site_id, vid)
  CROSS JOIN LATERAL (
    SELECT v.site_id, v.visitor_id_daily, v.session_id, v.started_at, v.last_seen_at FROM visitor_sessions v
    WHERE v.site_id = t.site_id AND v.visitor_id_daily = t.vid
    OFFSET 0
  ) s`

/** The visitor's earlier server-assigned sessions (for events older than its latest session). */
export const SELECT_EARLIER_SESSIONS = `
  SELECT v.site_id, v.visitor_id_daily, v.session_id, v.started_at, v.last_seen_at
  FROM unnest($1::int4[], $2::bytea[]) AS t(site_id, vid)
  CROSS JOIN LATERAL (
    SELECT s.site_id, s.visitor_id_daily, s.session_id, s.started_at, s.last_seen_at FROM visits s
    WHERE s.site_id = t.site_id AND s.visitor_id_daily = t.vid AND starts_with(s.session_id, '~')
    OFFSET 0
  ) v`

/**
 * Which of the given events are stored already (redelivered): they are not assigned. The
 * received_at bounds ($3, $4: the batch's least and greatest) let PostgreSQL prune the daily
 * partitions to the batch's days before it probes each one's primary key.
 */
export const SELECT_STORED_EVENTS = `
  SELECT e.id::text AS id, e.received_at
  FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, received_at)
  CROSS JOIN LATERAL (
    SELECT s.id, s.received_at FROM raw_events s
    WHERE s.id = t.id AND s.received_at = t.received_at
      AND s.received_at >= $3::timestamptz AND s.received_at <= $4::timestamptz
    OFFSET 0
  ) e`

export const UPSERT_VISITOR_SESSIONS = `
  INSERT INTO visitor_sessions (site_id, visitor_id_daily, session_id, started_at, last_seen_at)
  SELECT * FROM unnest($1::int4[], $2::bytea[], $3::text[], $4::timestamptz[], $5::timestamptz[])
  ON CONFLICT (site_id, visitor_id_daily) DO UPDATE SET
    session_id = excluded.session_id, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at`

// ---------------------------------------------------------------------------------------------
// visits

/** [column, array element type, kind] of visits, in statement order. */
const VISIT_COLUMNS: ReadonlyArray<readonly [string, string, "key" | "merge" | "entry" | "exit"]> = [
  ["site_id", "int4", "key"],
  ["session_id", "text", "key"],
  ["visitor_id_daily", "bytea", "merge"],
  ["started_at", "timestamptz", "merge"],
  ["last_seen_at", "timestamptz", "merge"],
  ["pageviews", "int4", "merge"],
  ["events", "int4", "merge"],
  ["engaged", "bool", "merge"],
  ["is_bot", "bool", "merge"],
  ["entry_page", "text", "entry"],
  ["entry_at", "timestamptz", "entry"],
  ["entry_event_id", "uuid", "entry"],
  ["exit_page", "text", "exit"],
  ["exit_at", "timestamptz", "exit"],
  ["hostname", "text", "entry"],
  ["source", "text", "entry"],
  ["referrer", "text", "entry"],
  ["utm_source", "text", "entry"],
  ["utm_medium", "text", "entry"],
  ["utm_campaign", "text", "entry"],
  ["utm_content", "text", "entry"],
  ["utm_term", "text", "entry"],
  ["device", "text", "entry"],
  ["browser", "text", "entry"],
  ["browser_version", "text", "entry"],
  ["os", "text", "entry"],
  ["os_version", "text", "entry"],
  ["country", "text", "entry"],
  ["region", "text", "entry"],
  ["city", "text", "entry"],
  ["language", "text", "entry"],
  // the entry view's network (migration 0005_network, docs/network.md)
  ["asn", "int8", "entry"],
  ["org", "text", "entry"],
  ["org_type", "text", "entry"],
  ["is_datacenter", "bool", "entry"],
  ["is_vpn", "bool", "entry"],
  ["is_government", "bool", "entry"],
  ["is_tor", "bool", "entry"],
  ["proxy_type", "text", "entry"],
  ["response_tier", "text", "entry"],
  // the visit's conversions and their values (migration 0010): added from the batch's item rows
  ["conversions", "int4", "merge"],
  ["revenue", "numeric", "merge"]
]

const MERGE: Record<string, string> = {
  visitor_id_daily: "LEAST(v.visitor_id_daily, excluded.visitor_id_daily)",
  started_at: "LEAST(v.started_at, excluded.started_at)",
  last_seen_at: "GREATEST(v.last_seen_at, excluded.last_seen_at)",
  pageviews: "v.pageviews + excluded.pageviews",
  events: "v.events + excluded.events",
  engaged: "v.engaged OR excluded.engaged",
  is_bot: "v.is_bot OR excluded.is_bot",
  conversions: "v.conversions + excluded.conversions",
  revenue: "v.revenue + excluded.revenue"
}

/**
 * The visit rows of the inserted events, merged into the stored ones by the commutative rules
 * of domain/Visits.ts (text compared byte-wise, COLLATE "C", as the writer compares it), and the
 * new (visit, daily visitor id) pairs recorded in `visitor_visits`. Every updated row's SET copies
 * its previous figures to `prev_*` (PostgreSQL 15's RETURNING gives only the new row), so the
 * statement returns every visit of the batch as stored now and as it was before (NULL for a visit
 * it inserted): its start hour and bot flag — for the contents statement ({@link
 * UPSERT_VISIT_ITEMS}), which so need not read the visits again — and the figures the visit
 * rollups take from it, from which the writer computes the rollups' changes
 * (domain/VisitRollups.ts, `visitRollupDeltas`; {@link UPSERT_VISIT_ROLLUPS} writes them). A
 * visit's dimension values come back only when all its dimension rows move (new visit, hour, bot
 * flag, bounce or entry changed); otherwise only its exit page can move them.
 *
 * Lock order of the visits step: visits → visitor_visits (the one-time filter on `w`), then
 * visit_rollups → visit_rollups_daily, then visit_items → item_rollups → item_rollups_daily.
 * (Until 2026-12-07 the rollups' changes were computed in this statement, with the lock order
 * visits → visit_rollups → visit_rollups_daily → visitor_visits: a writer of that version and
 * one of this can deadlock while both run; PostgreSQL then aborts one transaction, which is
 * retried.)
 */
/** A timestamp as epoch milliseconds (float8: exact for whole milliseconds), for {@link tsArray}. */
const epochMs = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

const ROLLUP_SUMS = ["visits", "pageviews", "events", "bounces", "duration"].map((c) => `${c} = r.${c} + excluded.${c}`).join(", ")

export const UPSERT_VISITS = (() => {
  const names = VISIT_COLUMNS.map(([name]) => name)
  const unnestArgs = VISIT_COLUMNS.map(([, type], i) => `$${i + 1}::${type === "numeric" ? "text[]::numeric" : type}[]`).join(", ")
  const earlier = `(excluded.entry_at IS NOT NULL AND (v.entry_at IS NULL OR
      (excluded.entry_at, COALESCE(excluded.entry_page, '') COLLATE "C", excluded.entry_event_id)
        < (v.entry_at, COALESCE(v.entry_page, '') COLLATE "C", v.entry_event_id)))`
  const later = `(excluded.exit_at IS NOT NULL AND (v.exit_at IS NULL OR
      (excluded.exit_at, COALESCE(excluded.exit_page, '') COLLATE "C")
        > (v.exit_at, COALESCE(v.exit_page, '') COLLATE "C")))`
  const set = VISIT_COLUMNS.filter(([, , kind]) => kind !== "key").map(([name, , kind]) =>
    kind === "merge"
      ? `${name} = ${MERGE[name]}`
      : `${name} = CASE WHEN ${kind === "entry" ? earlier : later} THEN excluded.${name} ELSE v.${name} END`
  )
  const prev = [
    "prev_started_at = v.started_at",
    "prev_last_seen_at = v.last_seen_at",
    "prev_pageviews = v.pageviews",
    "prev_events = v.events",
    "prev_engaged = v.engaged",
    "prev_is_bot = v.is_bot",
    `prev_vid_changed = (${MERGE["visitor_id_daily"]} IS DISTINCT FROM v.visitor_id_daily)`,
    // the previous first-touch dimension values when the entry changed, else NULL
    `prev_dims = CASE WHEN ${earlier} THEN ${dimsArraySql("v")} END`,
    // the previous exit page (the last rollup dimension), which most updates may move
    "prev_exit_page = v.exit_page"
  ]
  const returning = [
    "site_id",
    "session_id",
    "visitor_id_daily",
    "started_at",
    "last_seen_at",
    "pageviews",
    "events",
    "engaged",
    "is_bot",
    ...ROLLUP_DIMENSIONS,
    "(xmax = 0) AS inserted",
    "prev_started_at",
    "prev_last_seen_at",
    "prev_pageviews",
    "prev_events",
    "prev_engaged",
    "prev_is_bot",
    "prev_vid_changed",
    "prev_dims",
    "prev_exit_page"
  ]
  const hour = hourSql("u.started_at")
  const prevHour = hourSql("u.prev_started_at")
  const bounce = bounceSql("u.pageviews", "u.engaged")
  const prevBounce = bounceSql("u.prev_pageviews", "u.prev_engaged")
  // a visit's dimension values are needed where all its dimension rows move (domain/VisitRollups.ts,
  // visitRollupDeltas): it is new, or its hour, bot flag, bounce or entry changed
  const allMove = `u.inserted OR u.prev_dims IS NOT NULL OR u.is_bot <> u.prev_is_bot OR ${hour} <> ${prevHour} OR ${bounce} <> ${prevBounce}`
  const durationUs = (started: string, lastSeen: string) => `(${durationSql(started, lastSeen)} * 1000000)::float8`
  return `
    WITH up AS (
      INSERT INTO visits AS v (${names.join(", ")})
      SELECT * FROM unnest(${unnestArgs}) AS t(${names.join(", ")})
      ON CONFLICT (site_id, session_id) DO UPDATE SET
        ${[...set, ...prev].join(",\n        ")}
      RETURNING ${returning.join(", ")}
    ),
    w AS (
      INSERT INTO visitor_visits AS w (site_id, visitor_id_daily, visits, first_start, last_start)
      SELECT u.site_id, u.visitor_id_daily, count(*) FILTER (WHERE u.inserted OR u.prev_vid_changed), min(u.started_at),
             max(u.started_at)
      FROM up u
      WHERE u.visitor_id_daily IS NOT NULL AND (u.inserted OR u.prev_vid_changed OR u.started_at < u.prev_started_at)
      GROUP BY 1, 2
      ORDER BY 1, 2
      ON CONFLICT (site_id, visitor_id_daily) DO UPDATE SET
        visits = w.visits + excluded.visits,
        first_start = LEAST(w.first_start, excluded.first_start),
        last_start = GREATEST(w.last_start, excluded.last_start)
      RETURNING 1
    )
    SELECT u.site_id, u.session_id, ${epochMs(hour)} AS hour, u.is_bot, ${epochMs(prevHour)} AS prev_hour, u.prev_is_bot,
           u.inserted, u.pageviews, u.events, u.prev_pageviews, u.prev_events, ${bounce} AS bounce, ${prevBounce} AS prev_bounce,
           ${durationUs("u.started_at", "u.last_seen_at")} AS dur_us, ${durationUs("u.prev_started_at", "u.prev_last_seen_at")} AS prev_dur_us,
           ${epochMs("u.last_seen_at")} AS last_seen,
           u.exit_page, u.prev_exit_page, CASE WHEN ${allMove} THEN ${dimsArraySql("u")} END AS dims, u.prev_dims
    FROM up u
    WHERE (SELECT count(*) FROM w) >= 0`
})()

/**
 * The visit rollups' changes of a batch (domain/VisitRollups.ts, `visitRollupDeltas`, computed
 * by the writer from what {@link UPSERT_VISITS} returned): added to `visit_rollups` per UTC hour
 * and to `visit_rollups_daily` per UTC day (migrations 0008, 0009), each set sorted by its key,
 * the daily rows only after the hourly ones (the one-time filter on `r`): lock order
 * visit_rollups → visit_rollups_daily. The hourly total and bots rows keep the greatest last
 * event time sent (`last_seen`, migration 0020; the daily rows have none). Parameters:
 * {@link visitRollupParams}.
 */
export const UPSERT_VISIT_ROLLUPS = `
    WITH t AS (
      SELECT * FROM unnest($1::int4[], $2::text[], $3::timestamptz[], $4::text[], $5::int4[], $6::int4[], $7::int4[], $8::int4[],
                           $9::text[]::numeric[], $10::timestamptz[])
        AS t(site_id, dim, hour, value, visits, pageviews, events, bounces, duration, last_seen)
    ),
    r AS (
      INSERT INTO visit_rollups AS r (site_id, dim, hour, value, visits, pageviews, events, bounces, duration, last_seen)
      SELECT * FROM t
      ORDER BY 1, 2, 3, 4
      ON CONFLICT (site_id, dim, hour, value) DO UPDATE SET ${ROLLUP_SUMS}, last_seen = GREATEST(r.last_seen, excluded.last_seen)
      RETURNING 1
    )
    INSERT INTO visit_rollups_daily AS r (site_id, dim, day, value, visits, pageviews, events, bounces, duration)
    SELECT site_id, dim, ${daySql("hour")}, value, sum(visits), sum(pageviews), sum(events), sum(bounces), sum(duration)
    FROM t
    WHERE (SELECT count(*) FROM r) >= 0
    GROUP BY 1, 2, 3, 4
    HAVING sum(visits) <> 0 OR sum(pageviews) <> 0 OR sum(events) <> 0 OR sum(bounces) <> 0 OR sum(duration) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, dim, day, value) DO UPDATE SET ${ROLLUP_SUMS}`

/** {@link UPSERT_VISIT_ROLLUPS}'s parameters. */
export const visitRollupParams = (rows: ReadonlyArray<VisitRollupDelta>): Params => [
  int4Array(rows.map((r) => r.siteId)),
  textArray(rows.map((r) => r.dim)),
  tsArray(rows.map((r) => r.hour)),
  textArray(rows.map((r) => r.value)),
  int4Array(rows.map((r) => r.visits)),
  int4Array(rows.map((r) => r.pageviews)),
  int4Array(rows.map((r) => r.events)),
  int4Array(rows.map((r) => r.bounces)),
  // a duration is kept on the total rows only (others hold 0, as the migrations' backfills write it)
  textArray(rows.map((r) => r.dim === TOTAL_DIMENSION ? secondsOfMicros(r.durationUs) : "0")),
  tsArray(rows.map((r) => r.lastSeen))
]

/** A visit of the batch as {@link UPSERT_VISITS} returns it (domain/VisitRollups.ts). */
export interface UpsertedVisit extends StoredVisit {
  readonly session_id: string
}

/**
 * The visit contents (domain/VisitItems.ts, migration 0010), after the visits statement in the
 * same transaction: `visit_items` gets the batch's item rows (computed in Node from the inserted
 * events, `visitItemRows`: per (visit, content dimension, value) the events' figures);
 * `item_rollups` / `item_rollups_daily` get, at the hour of each human visit's start, one visit
 * for every (visit, value) pair new in `visit_items` and the rows' figures. (`visits.conversions`
 * / `revenue` are merged by the visits statement, from the same rows.)
 *
 * A (visit, value) pair is new when the upsert inserted its row (`xmax = 0`). The item rows
 * meet their visits' hours and bot flags first, in a materialized CTE (`tv`); the human visits'
 * rows and the bots' are upserted apart (`uh`, `ub`: a visit is one or the other, so the two
 * never write the same row), and the rollup deltas are the human rows' figures (from `tv`) plus
 * one visit per row `uh` inserted, at the hour it returns (`visit_items.hour`): no step joins the
 * item rows with the upsert's returned rows. (Such a join, on four columns whose match
 * PostgreSQL estimates at one row, was planned as a loop over one side for every row of the
 * other — quadratic in the batch: 1.7 s for 5,000 item rows instead of 0.16 s.)
 *
 * The batch's visits (`vs`) are what the visits statement returned ({@link UpsertedVisit}):
 * a visit whose start hour changed there, or that turned into a bot's, has all its stored items
 * moved: out of the old hour (if it counted), into the new one (if it counts). The statement reads
 * `visit_items` as it was before it (one snapshot for the whole statement, taken after the
 * visits statement, so after every transaction it waited for there), which is what the move
 * needs; the visits rows of the batch are locked by this transaction already, so no other one
 * changes their items meanwhile. (In the visits statement itself the move would read an older
 * snapshot: one from before the transactions its upsert waited for.) Lock order: visit_items →
 * item_rollups → item_rollups_daily.
 *
 * A new item row gets its visit's start hour (`visit_items.hour`, migration 0019) as the visits
 * statement stored it; a stored row of a visit that moved has been moved just before, by
 * {@link MOVE_VISIT_ITEMS_HOUR}.
 *
 * Parameters: the visits ({@link visitHoursParams}), then the item rows ({@link itemParams}).
 */
const ITEM_SUMS = ITEM_ROLLUP_FIGURES.map((c) => `${c} = r.${c} + excluded.${c}`).join(", ")
const ITEM_NONZERO = ITEM_ROLLUP_FIGURES.map((c) => `sum(${c}) <> 0`).join(" OR ")

const ITEM_UPSERT = `INSERT INTO visit_items AS i (site_id, session_id, dim, value, pageviews, events, conversions, revenue, hour)
      SELECT site_id, session_id, dim, value, pageviews, events, conversions, revenue, hour FROM tv`
const ITEM_CONFLICT = `ON CONFLICT (site_id, session_id, dim, value) DO UPDATE SET
        pageviews = i.pageviews + excluded.pageviews, events = i.events + excluded.events,
        conversions = i.conversions + excluded.conversions, revenue = i.revenue + excluded.revenue`

export const UPSERT_VISIT_ITEMS = `
    WITH vs AS (
      SELECT * FROM unnest($1::int4[], $2::text[], $3::timestamptz[], $4::bool[], $5::timestamptz[], $6::bool[])
        AS v(site_id, session_id, hour, is_bot, prev_hour, prev_is_bot)
    ),
    t AS (
      SELECT * FROM unnest($7::int4[], $8::text[], $9::text[], $10::text[], $11::int4[], $12::int4[], $13::int4[],
                           $14::text[]::numeric[])
        AS t(site_id, session_id, dim, value, pageviews, events, conversions, revenue)
    ),
    tv AS MATERIALIZED (
      SELECT t.*, vs.hour, vs.is_bot FROM t JOIN vs ON vs.site_id = t.site_id AND vs.session_id = t.session_id
    ),
    uh AS (
      ${ITEM_UPSERT} WHERE NOT is_bot
      ${ITEM_CONFLICT}
      RETURNING i.site_id, i.dim, i.hour, i.value, (i.xmax = 0) AS inserted
    ),
    ub AS (
      ${ITEM_UPSERT} WHERE is_bot
      ${ITEM_CONFLICT}
      RETURNING 1
    ),
    d AS (
      SELECT site_id, dim, hour, value, 1 AS visits, 0 AS pageviews, 0 AS events, 0 AS conversions, 0::numeric AS revenue
      FROM uh WHERE inserted
      UNION ALL
      SELECT site_id, dim, hour, value, 0, pageviews, events, conversions, revenue
      FROM tv WHERE NOT is_bot
      UNION ALL
      SELECT i.site_id, i.dim, s.hour, i.value, s.sign, s.sign * i.pageviews, s.sign * i.events, s.sign * i.conversions,
             s.sign * i.revenue
      FROM vs m JOIN visit_items i ON i.site_id = m.site_id AND i.session_id = m.session_id
      CROSS JOIN LATERAL (VALUES (-1, m.prev_hour, NOT m.prev_is_bot), (1, m.hour, NOT m.is_bot)) AS s(sign, hour, counted)
      WHERE m.prev_hour IS NOT NULL AND (m.prev_hour <> m.hour OR m.prev_is_bot <> m.is_bot) AND s.counted
    ),
    dl AS (
      SELECT site_id, dim, hour, value, ${ITEM_ROLLUP_FIGURES.map((c) => `sum(${c}) AS ${c}`).join(", ")}
      FROM d
      WHERE (SELECT count(*) FROM uh) + (SELECT count(*) FROM ub) >= 0
      GROUP BY 1, 2, 3, 4
      HAVING ${ITEM_NONZERO}
    ),
    r AS (
      INSERT INTO item_rollups AS r (site_id, dim, hour, value, ${ITEM_ROLLUP_FIGURES.join(", ")})
      SELECT * FROM dl
      ORDER BY 1, 2, 3, 4
      ON CONFLICT (site_id, dim, hour, value) DO UPDATE SET ${ITEM_SUMS}
      RETURNING 1
    )
    INSERT INTO item_rollups_daily AS r (site_id, dim, day, value, ${ITEM_ROLLUP_FIGURES.join(", ")})
    SELECT site_id, dim, ${daySql("hour")}, value, ${ITEM_ROLLUP_FIGURES.map((c) => `sum(${c})`).join(", ")}
    FROM dl
    WHERE (SELECT count(*) FROM r) >= 0
    GROUP BY 1, 2, 3, 4
    HAVING ${ITEM_NONZERO}
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (site_id, dim, day, value) DO UPDATE SET ${ITEM_SUMS}`

/**
 * The stored items of the visits whose start the visits statement just moved to another UTC hour
 * (an earlier event arrived late) get that hour (`visit_items.hour`, migration 0019: the value
 * index finds a period's visits with a page by it). Sent, before {@link UPSERT_VISIT_ITEMS}, only
 * for a batch with such visits ({@link movedVisitHours}); their rows are locked by this
 * transaction since the visits statement, so no other one writes their items meanwhile.
 * Parameters: site ids, session ids, the new hours.
 */
export const MOVE_VISIT_ITEMS_HOUR = `
    UPDATE visit_items i SET hour = m.hour
    FROM unnest($1::int4[], $2::text[], $3::timestamptz[]) AS m(site_id, session_id, hour)
    WHERE i.site_id = m.site_id AND i.session_id = m.session_id AND i.hour <> m.hour`

/** The visits {@link UPSERT_VISITS} moved to another start hour: {@link MOVE_VISIT_ITEMS_HOUR}'s rows. */
export const movedVisitHours = (rows: ReadonlyArray<UpsertedVisit>): ReadonlyArray<UpsertedVisit> =>
  rows.filter((r) => r.prev_hour !== null && r.prev_hour !== r.hour)

/** {@link MOVE_VISIT_ITEMS_HOUR}'s parameters. */
export const movedHoursParams = (rows: ReadonlyArray<UpsertedVisit>): Params => [
  int4Array(rows.map((r) => r.site_id)),
  textArray(rows.map((r) => r.session_id)),
  tsArray(rows.map((r) => r.hour))
]

/** The visits' part of {@link UPSERT_VISIT_ITEMS}'s parameters: what {@link UPSERT_VISITS} returned. */
export const visitHoursParams = (rows: ReadonlyArray<UpsertedVisit>): Params => [
  int4Array(rows.map((r) => r.site_id)),
  textArray(rows.map((r) => r.session_id)),
  tsArray(rows.map((r) => r.hour)),
  boolArray(rows.map((r) => r.is_bot)),
  tsArray(rows.map((r) => r.prev_hour)),
  boolArray(rows.map((r) => r.prev_is_bot))
]

/** The item rows' columns (site_id, session_id, dim, value, pageviews, events, conversions, revenue). */
export const itemParams = (rows: ReadonlyArray<VisitItemRow>): Params => [
  int4Array(rows.map((r) => r.siteId)),
  textArray(rows.map((r) => r.sessionId)),
  textArray(rows.map((r) => r.dim)),
  textArray(rows.map((r) => r.value)),
  int4Array(rows.map((r) => r.pageviews)),
  int4Array(rows.map((r) => r.events)),
  int4Array(rows.map((r) => r.conversions)),
  textArray(rows.map((r) => decimalText(r.revenue)))
]

/**
 * The parameters of {@link UPSERT_VISITS}: the visit rows' columns, their conversions and revenue
 * from `items` (`visitItemRows` of the same events). With `entryChanges` (the sink's WriteCache), rows whose
 * entry cannot change the stored one send no entry and first-touch values (NULL entry_at: the
 * upsert keeps what is stored).
 */
export const visitParams = (
  visits: ReadonlyArray<VisitRow>,
  items: ReadonlyArray<VisitItemRow>,
  entryChanges?: (row: VisitRow) => boolean
): Params => {
  const columns = VISIT_COLUMNS.map(() => [] as Array<unknown>)
  const conversions = conversionsOfItems(items)
  for (const s of visits) {
    const entry = entryChanges === undefined || entryChanges(s) ? s.entry : undefined
    const converted = conversions.size === 0 ? undefined : conversions.get(`${s.siteId}|${storedText(s.sessionId)}`)
    const v = entry?.view
    const values: ReadonlyArray<unknown> = [
      s.siteId,
      noNul(s.sessionId),
      s.visitorIdDaily,
      s.startedAt,
      s.lastSeenAt,
      s.pageviews,
      s.events,
      s.engaged,
      s.isBot,
      noNulOrNull(entry?.page),
      entry?.at ?? null,
      entry?.eventId ?? null,
      noNulOrNull(s.exitPage),
      s.exitAt,
      v?.pageUrl == null ? null : noNulOrNull(pageHost(v.pageUrl)),
      v?.traffic.source ?? null,
      noNulOrNull(v?.traffic.referrer),
      noNulOrNull(v?.traffic.rawSource),
      noNulOrNull(v?.traffic.medium),
      noNulOrNull(v?.traffic.campaign),
      noNulOrNull(v?.traffic.content),
      noNulOrNull(v?.traffic.term),
      v?.deviceType ?? null,
      noNulOrNull(v?.device.browser),
      noNulOrNull(v?.device.browserVersion),
      noNulOrNull(v?.device.os),
      noNulOrNull(v?.device.osVersion),
      noNulOrNull(v?.geo.country),
      noNulOrNull(v?.geo.region),
      noNulOrNull(v?.geo.city),
      noNulOrNull(v?.device.language),
      v?.network.asn ?? null,
      noNulOrNull(v?.network.org),
      v?.network.orgType ?? null,
      v?.network.isDatacenter ?? null,
      v?.network.isVpn ?? null,
      v?.network.isGovernment ?? null,
      v?.network.isTor ?? null,
      v?.network.proxyType ?? null,
      v?.network.responseTier ?? null,
      converted?.conversions ?? 0,
      converted === undefined ? "0" : decimalText(converted.revenue)
    ]
    for (let i = 0; i < values.length; i++) columns[i]!.push(values[i])
  }
  return VISIT_COLUMNS.map(([, type], i) => columnArray(type, columns[i]!))
}

export const INSERT_FAILURES = `
  INSERT INTO ingest_failures (stream_key, entry_id, event_id, payload, error, attempts)
  SELECT $1::text, entry_id, event_id, payload, error, attempts
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[]) AS t(entry_id, event_id, payload, error, attempts)
  ON CONFLICT (stream_key, entry_id) DO NOTHING`

export const failureParams = (streamKey: string, poison: ReadonlyArray<PoisonEntry>): Params => {
  const sorted = [...poison].sort((a, b) => compareStrings(a.entryId, b.entryId))
  return [
    PgTypes.text(streamKey),
    textArray(sorted.map((p) => p.entryId)),
    textArray(sorted.map((p) => noNulOrNull(p.eventId))),
    textArray(sorted.map((p) => noNul(p.payload))),
    textArray(sorted.map((p) => noNul(p.error))),
    int4Array(sorted.map((p) => Math.min(p.attempts, 2 ** 31 - 1)))
  ]
}


/** The statements of a batch transaction (documentation, diagnostics, EXPLAIN). */
export const STATEMENTS = {
  lockVisitors: LOCK_VISITORS,
  selectVisitorSessions: SELECT_VISITOR_SESSIONS,
  selectStoredEvents: SELECT_STORED_EVENTS,
  selectEarlierSessions: SELECT_EARLIER_SESSIONS,
  upsertVisitorSessions: UPSERT_VISITOR_SESSIONS,
  insertRawEvents: INSERT_RAW_EVENTS,
  upsertFingerprints: UPSERT_FINGERPRINTS,
  insertSeen: INSERT_SEEN,
  upsertVisits: UPSERT_VISITS,
  upsertVisitRollups: UPSERT_VISIT_ROLLUPS,
  upsertVisitItems: UPSERT_VISIT_ITEMS,
  upsertMetrics: UPSERT_METRICS,
  upsertDaily: UPSERT_DAILY,
  insertFailures: INSERT_FAILURES
} as const
