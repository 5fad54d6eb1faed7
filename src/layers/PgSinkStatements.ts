/**
 * One writer batch (SPEC §5): decode → enrich → ONE transaction that
 *   1. inserts every event into `raw_events` with a single `unnest` statement,
 *      `ON CONFLICT DO NOTHING RETURNING id, received_at`;
 *   2. upserts `session_fingerprints` for the views that were actually inserted (first touch;
 *      later views only update the viewport and fill an empty user_id);
 *   3. inserts the daily / hourly unique-visitor seen-set rows of those views;
 *   4. adds ONLY the inserted rows, new sessions and new seen-set rows to `aggregated_metrics`
 *      and `daily_metrics` (one upsert each, `value = value + excluded.value`);
 *   5. records poison entries in `ingest_failures`.
 * A redelivered / drained / replayed envelope therefore changes nothing, and a failure at any
 * point leaves nothing of the batch behind.
 *
 * `prepareBatch` does all the CPU work ahead — decoding, enrichment, the statements'
 * parameters and the rollups — assuming every event is new (the common case); the
 * transaction only recomputes for the inserted subset when some rows already existed.
 *
 * Every multi-row statement is sorted by its conflict key so concurrent writers take row locks
 * in the same order (no deadlocks between writers sharing the group).
 *
 * Tenant of non-view events (the SPEC resolves tenants for views; left open for the rest): the
 * event's own Origin / Referer / Host when it names a registered domain, else the tenant of
 * its session (a view in the same batch, else a view in an earlier batch whose transaction is
 * still in flight, else the session's stored fingerprint, looked up by the insert itself), else
 * NULL — so conversions and other events count per domain too.
 * Bot detection follows the enrichment module: only views are parsed, so `is_bot` is false
 * for non-view events.
 */
import { PgTypes } from "@effect/sql-pg"
import { Cause, Effect, Exit, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { type EnrichedEvent, type EnrichedView, enrichEvent, enrichView } from "../domain/Enrich.ts"
import type { RawEventEnvelope } from "../domain/Envelope.ts"
import { decodeEnvelope } from "../domain/EnvelopeDecode.ts"
import type { GeoInfo } from "../domain/Geo.ts"
import { memoizeString } from "../domain/Memo.ts"
import { tenantHost } from "../domain/Tenant.ts"
import { Domains, type Tenant } from "../layers/Domains.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import { Salts } from "../layers/Salts.ts"
import {
  addEvents,
  addSessions,
  addVisitors,
  DailyAccumulator,
  type DailyRow,
  dayStart,
  type Granularity,
  hourStart,
  type InsertedEvent,
  MetricAccumulator,
  type MetricRow,
  type Scope
} from "./Rollups.ts"

// ---------------------------------------------------------------------------------------------
// model

/** A stream entry as read (or claimed) from the primary stream. */
export interface BatchEntry {
  readonly id: string
  /** the envelope JSON (field "e"); "" when the entry had no such field */
  readonly payload: string
  /** times delivered to a consumer of the group (1 for a first read) */
  readonly deliveries: number
}

export interface PreparedEvent {
  readonly entryId: string
  readonly receivedAtMs: number
  readonly timestampMs: number
  readonly scope: Scope
  /**
   * A non-view event without a tenant of its own (no usable Origin/Referer/Host, e.g. sent
   * server-side) whose session has no view in this batch: the transaction takes the tenant of
   * the session's stored fingerprint.
   */
  readonly resolveScope: boolean
  readonly row: EnrichedView | EnrichedEvent
}

export interface PoisonEntry {
  readonly entryId: string
  readonly payload: string
  readonly error: string
  readonly attempts: number
  readonly eventId: string | null
}

export interface PreparedBatch {
  /** every entry of the batch: all of them are acknowledged once the transaction committed */
  readonly entryIds: ReadonlyArray<string>
  /** events to insert, one per (eventId, receivedAt) */
  readonly events: ReadonlyArray<PreparedEvent>
  readonly poison: ReadonlyArray<PoisonEntry>
  /** entries of this batch that repeated an (eventId, receivedAt) already in the batch */
  readonly inBatchDuplicates: number
  /** the tenant of each session that has a view with a tenant in this batch (its first such view) */
  readonly viewScopes: ReadonlyMap<string, Scope>
  /**
   * Statement parameters and rollups computed ahead (outside the transaction, while the
   * previous batch is being written), valid when every event turns out to be new — the
   * common case. Otherwise the transaction recomputes them for the inserted rows only.
   */
  readonly plan: BatchPlan | undefined
}

export interface WriteResult {
  readonly inserted: number
  /** events already stored (redelivered, drained twice, replayed) plus in-batch repeats */
  readonly duplicates: number
  readonly poison: number
  readonly newSessions: number
  readonly newVisitors: number
}

/** A batch could not be written. `transient` → retry the same batch later. */
export class BatchWriteError extends Schema.TaggedError<BatchWriteError>()("BatchWriteError", {
  message: Schema.String,
  transient: Schema.Boolean,
  cause: Schema.Defect()
}) {}

// ---------------------------------------------------------------------------------------------
// error classification

/** SQLSTATE classes that mean "this data / statement is wrong", not "try again later". */
const PERMANENT_SQLSTATE_CLASSES = new Set(["0A", "21", "22", "23", "26", "2B", "2D", "2F", "3F", "42", "44", "P0", "XX"])

const sqlState = (error: SqlError): string | undefined => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  const code = typeof cause === "object" && cause !== null ? (cause as { readonly code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

/**
 * Transient: the driver says retryable (connection, deadlock, serialization, lock/statement
 * timeout), or the server gave a state outside the "bad data / bad statement" classes
 * (e.g. 57P01 admin shutdown, 53100 disk full), or gave none at all (socket-level failure).
 */
export const isTransientSqlError = (error: SqlError): boolean => {
  if (error.isRetryable) return true
  const code = sqlState(error)
  return code === undefined ? error.reason._tag === "UnknownError" : !PERMANENT_SQLSTATE_CLASSES.has(code.slice(0, 2))
}

/** "<driver message>: <server message> (SQLSTATE)" */
export const describeSqlError = (error: SqlError): string => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  const detail = cause instanceof Error && cause.message !== error.message ? `: ${cause.message}` : ""
  const code = sqlState(error)
  return `${error.message}${detail}${code === undefined ? "" : ` (SQLSTATE ${code})`}`
}

const fromSqlError = (error: SqlError) =>
  new BatchWriteError({ message: describeSqlError(error), transient: isTransientSqlError(error), cause: error })

// ---------------------------------------------------------------------------------------------
// preparation (outside the transaction)

const MAX_ERROR_TEXT = 4000
/** 0001-01-01 … 9999-12-31 UTC: what PostgreSQL and ISO-8601 both hold */
const MIN_MS = new Date(0).setUTCFullYear(1, 0, 1)
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
const DAY_MS = 86_400_000

const truncate = (text: string, max = MAX_ERROR_TEXT) => (text.length > max ? `${text.slice(0, max)}…` : text)

/** PostgreSQL text cannot hold NUL characters. */
const noNul = (text: string): string => (text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text)
const noNulOrNull = (text: string | null | undefined): string | null => (text == null ? null : noNul(text))

const describeCause = (cause: Cause.Cause<unknown>): string => truncate(Cause.pretty(cause))

const eventIdOf = (payload: string): string | null => {
  const match = /"eventId"\s*:\s*"([^"\\]{1,64})"/.exec(payload)
  return match?.[1] ?? null
}

const dayNames = new Map<number, string>()
/** `YYYY-MM-DD` of the UTC day of `epochMs` (the salt day of a receivedAt; cached). */
const utcDayOf = (epochMs: number): string => {
  const day = Math.floor(epochMs / DAY_MS)
  let name = dayNames.get(day)
  if (name === undefined) {
    name = new Date(day * DAY_MS).toISOString().slice(0, 10)
    if (dayNames.size > 64) dayNames.clear()
    dayNames.set(day, name)
  }
  return name
}

export interface PrepareOptions {
  /** entries delivered more often than this are poison (default 5) */
  readonly maxDeliveries: number
  /** rows this writer knows are stored (skipped when they would change nothing) */
  readonly cache?: WriteCache | undefined
  /**
   * Tenants of sessions viewed in earlier batches whose transactions may not have committed yet
   * (see Writer.ts: transactions in flight) — invisible to this batch's fingerprint lookup.
   */
  readonly pendingViewScopes?: ((sessionId: string) => Scope | undefined) | undefined
}

const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Decodes and enriches a batch and computes its statements' parameters. Undecodable entries,
 * entries delivered more than `maxDeliveries` times and entries whose enrichment throws
 * become poison (never lost: they go to `ingest_failures` in the batch's transaction).
 * Needs the salts of the batch's days (created on first use, outside any transaction).
 */
export const prepareBatch = Effect.fnUntraced(function*(entries: ReadonlyArray<BatchEntry>, options: PrepareOptions) {
  const salts = yield* Salts
  const domains = yield* Domains
  const geo = yield* GeoLookup

  const poison: Array<PoisonEntry> = []
  const decoded: Array<{ readonly entry: BatchEntry; readonly envelope: RawEventEnvelope; readonly receivedAtMs: number }> =
    []
  const saltDays = new Set<string>()

  let work = 0
  for (const entry of entries) {
    // let the event loop serve the previous batch's transaction between slices of CPU work
    if ((++work & 15) === 0) yield* Effect.yieldNow
    if (entry.deliveries > options.maxDeliveries) {
      poison.push({
        entryId: entry.id,
        payload: entry.payload,
        error: `delivered ${entry.deliveries} times without being stored (limit ${options.maxDeliveries})`,
        attempts: entry.deliveries,
        eventId: eventIdOf(entry.payload)
      })
      continue
    }
    const exit = decodeEnvelope(entry.payload)
    if (Exit.isFailure(exit)) {
      poison.push({
        entryId: entry.id,
        payload: entry.payload,
        error: `undecodable envelope: ${describeCause(exit.cause)}`,
        attempts: entry.deliveries,
        eventId: eventIdOf(entry.payload)
      })
      continue
    }
    const envelope = exit.value
    const receivedAtMs = Date.parse(envelope.receivedAt)
    if (!(receivedAtMs >= MIN_MS && receivedAtMs <= MAX_MS)) {
      poison.push({
        entryId: entry.id,
        payload: entry.payload,
        error: `receivedAt out of range: ${envelope.receivedAt}`,
        attempts: entry.deliveries,
        eventId: envelope.eventId
      })
      continue
    }
    if (envelope.payload.isView) saltDays.add(utcDayOf(receivedAtMs))
    decoded.push({ entry, envelope, receivedAtMs })
  }

  const saltByDay = saltDays.size === 0 ? new Map<string, Uint8Array>() : yield* salts.saltsFor(saltDays)

  const events: Array<PreparedEvent> = []
  /** eventId → receivedAt(s) already in the batch */
  const seen = new Map<string, number | Array<number>>()
  let inBatchDuplicates = 0
  const sessionScope = new Map<string, Scope>()
  const unscoped: Array<number> = []

  for (const { entry, envelope, receivedAtMs } of decoded) {
    if ((++work & 15) === 0) yield* Effect.yieldNow
    const already = seen.get(envelope.eventId)
    if (already === receivedAtMs || (Array.isArray(already) && already.includes(receivedAtMs))) {
      inBatchDuplicates++
      continue
    }
    let row: EnrichedView | EnrichedEvent
    let tenant: Tenant | null
    try {
      if (envelope.payload.isView) {
        const salt = saltByDay.get(utcDayOf(receivedAtMs))
        if (salt === undefined) throw new Error(`no visitor salt for ${envelope.receivedAt}`)
        const view = enrichView(envelope, salt, geoOf(geo, envelope.edge.ip))
        row = view
        tenant = domains.resolve(view.tenantHost)
      } else {
        row = enrichEvent(envelope)
        tenant = domains.resolve(tenantHost(envelope.edge.headers))
      }
    } catch (error) {
      poison.push({
        entryId: entry.id,
        payload: entry.payload,
        error: truncate(`enrichment failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`),
        attempts: entry.deliveries,
        eventId: envelope.eventId
      })
      continue
    }
    seen.set(
      envelope.eventId,
      already === undefined ? receivedAtMs : Array.isArray(already) ? [...already, receivedAtMs] : [already, receivedAtMs]
    )
    // row.timestamp is the client timestamp (when finite and in range) else receivedAt
    const clientMs = envelope.payload.timestamp
    const timestampMs = clientMs !== undefined && row.timestamp !== row.receivedAt
      ? Math.trunc(clientMs) // what Date (and so row.timestamp) holds
      : Date.parse(row.timestamp)
    const scope: Scope = tenant === null
      ? NO_SCOPE
      : { corpId: tenant.corpId, domainId: tenant.domainId }
    if (row.isView) {
      if (tenant !== null && !sessionScope.has(row.sessionId)) sessionScope.set(row.sessionId, scope)
    } else if (tenant === null) {
      unscoped.push(events.length)
    }
    events.push({
      entryId: entry.id,
      receivedAtMs,
      timestampMs: Number.isFinite(timestampMs) ? timestampMs : receivedAtMs,
      scope,
      resolveScope: false,
      row
    })
  }

  // A non-view event without tenant headers of its own (e.g. sent server-side) takes the
  // tenant of its session: a view of this batch, else a view of an earlier batch still in its
  // transaction, else (inside the transaction) the stored fingerprint.
  for (const index of unscoped) {
    const event = events[index]!
    const scope = sessionScope.get(event.row.sessionId) ?? options.pendingViewScopes?.(event.row.sessionId)
    events[index] = scope !== undefined ? { ...event, scope } : { ...event, resolveScope: true }
  }

  events.sort((a, b) => compareStrings(a.row.eventId, b.row.eventId))
  return {
    entryIds: entries.map((entry) => entry.id),
    events,
    poison,
    inBatchDuplicates,
    viewScopes: sessionScope,
    plan: yield* makePlan(events, options.cache)
  } satisfies PreparedBatch
})

/** geoip lookups repeat for every event of a visitor: a small cache per GeoLookup service. */
const geoCaches = new WeakMap<GeoLookup["Service"], (ip: string) => GeoInfo>()
const GEO_CACHE_SIZE = 100_000
const geoOf = (geo: GeoLookup["Service"], ip: string | undefined): GeoInfo => {
  if (ip === undefined) return geo.lookup(ip)
  let lookup = geoCaches.get(geo)
  if (lookup === undefined) geoCaches.set(geo, lookup = memoizeString((address) => geo.lookup(address), GEO_CACHE_SIZE))
  return lookup(ip)
}

const NO_SCOPE: Scope = { corpId: null, domainId: null }

// ---------------------------------------------------------------------------------------------
// parameters

class ParameterError extends Error {}

const arrayOf = (values: ReadonlyArray<unknown>, oid: number): PgTypes.Parameter => {
  const result = PgTypes.array(values, oid)
  if (Result.isFailure(result)) throw new ParameterError(result.failure.message)
  return result.success
}
const textArray = (values: ReadonlyArray<string | null>) => arrayOf(values, PgTypes.OID.text)
const uuidArray = (values: ReadonlyArray<string>) => arrayOf(values, PgTypes.OID.uuid)
const int4Array = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.int4)
const int8Array = (values: ReadonlyArray<number>) => arrayOf(values.map((v) => BigInt(Math.round(v))), PgTypes.OID.int8)
const float8Array = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.float8)
const boolArray = (values: ReadonlyArray<boolean | null>) => arrayOf(values, PgTypes.OID.bool)
const byteaArray = (values: ReadonlyArray<Uint8Array | null>) => arrayOf(values, PgTypes.OID.bytea)
const tsArray = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.timestamptz)

type Params = ReadonlyArray<unknown>
/** Parameters, or the reason they cannot be encoded (a permanent failure of the batch). */
type ParamsOrError = { readonly params: Params } | { readonly error: string }

const tryParams = (build: () => Params): ParamsOrError => {
  try {
    return { params: build() }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) }
  }
}

const metadataJson = (metadata: Readonly<Record<string, unknown>> | null): string | null => {
  if (metadata === null) return null
  const json = JSON.stringify(metadata)
  // jsonb cannot hold U+0000 (escaped or not)
  return json.includes("\\u0000")
    ? JSON.stringify(metadata, (_k, v) => (typeof v === "string" ? noNul(v) : v)).replaceAll("\\u0000", "\\ufffd")
    : json
}

const finite = (value: number | undefined): number | null => (value !== undefined && Number.isFinite(value) ? value : null)

// ---------------------------------------------------------------------------------------------
// statements

// Non-view events flagged `resolve` take corp/domain from their session's fingerprint (the
// CASE keeps the sub-selects from running for the other rows).
const INSERT_RAW_EVENTS = `
  INSERT INTO raw_events (id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
                          metadata, "timestamp", received_at, visitor_id_daily, corp_id, domain_id)
  SELECT id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
         metadata::jsonb, ts, received_at, visitor_id_daily,
         CASE WHEN resolve THEN (SELECT f.corp_id FROM session_fingerprints f WHERE f.session_id = t.session_id) ELSE corp_id END,
         CASE WHEN resolve THEN (SELECT f.domain_id FROM session_fingerprints f WHERE f.session_id = t.session_id) ELSE domain_id END
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::bool[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::bytea[], $14::int4[], $15::int4[],
              $16::bool[])
       AS t(id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
            metadata, ts, received_at, visitor_id_daily, corp_id, domain_id, resolve)
  ON CONFLICT DO NOTHING
  RETURNING id::text AS id, received_at, corp_id, domain_id`

const rawParams = (events: ReadonlyArray<PreparedEvent>): Params => [
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
  boolArray(events.map((e) => e.resolveScope))
]

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
  ["first_seen_at", "timestamptz", "other"],
  ["viewport_updated_at", "timestamptz", "other"]
]

/**
 * First touch wins: a stored session keeps its first-view columns unless this batch holds an
 * earlier view. Later views only replace the viewport (when they carry one that differs) and
 * fill an empty user_id. Rows that would not change are not updated at all (no dead tuples).
 * `xmax = 0` tells a row inserted by this statement from an updated one.
 */
const UPSERT_FINGERPRINTS = (() => {
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
      updated_at = now()
    WHERE ${earlier} OR ${newViewport} OR ${fillUser}
    RETURNING session_id, (xmax = 0) AS inserted`
})()

interface SessionRow {
  readonly sessionId: string
  first: PreparedEvent & { readonly row: EnrichedView }
  viewport: EnrichedView | undefined
  viewportAt: number
  userId: string | null
  userAt: number
  firstSeenMs: number
}

/**
 * One row per session from the views, sorted by session id: first-touch columns from the
 * earliest view, the viewport of the latest view that has one, the user id of the earliest
 * view that has one.
 */
const sessionRows = (events: ReadonlyArray<PreparedEvent>, cache?: WriteCache): Array<SessionRow> => {
  const sessions = new Map<string, SessionRow>()
  for (const event of events) {
    if (!event.row.isView) continue
    const view = event.row
    const hasViewport = view.device.viewportWidth !== undefined || view.device.viewportHeight !== undefined
    const userId = view.userId !== null && view.userId.length > 0 ? view.userId : null
    const current = sessions.get(view.sessionId)
    if (current === undefined) {
      sessions.set(view.sessionId, {
        sessionId: noNul(view.sessionId),
        first: event as PreparedEvent & { readonly row: EnrichedView },
        viewport: hasViewport ? view : undefined,
        viewportAt: event.receivedAtMs,
        userId,
        userAt: event.receivedAtMs,
        firstSeenMs: event.receivedAtMs
      })
      continue
    }
    if (event.receivedAtMs < current.firstSeenMs) {
      current.first = event as PreparedEvent & { readonly row: EnrichedView }
      current.firstSeenMs = event.receivedAtMs
    }
    if (hasViewport && (current.viewport === undefined || event.receivedAtMs >= current.viewportAt)) {
      current.viewport = view
      current.viewportAt = event.receivedAtMs
    }
    if (userId !== null && (current.userId === null || event.receivedAtMs < current.userAt)) {
      current.userId = userId
      current.userAt = event.receivedAtMs
    }
  }
  // only the rows that can change something are sorted and sent
  const rows = cache === undefined ? [...sessions.values()] : cache.sessionsToWrite(sessions.values())
  return rows.sort((a, b) => compareStrings(a.sessionId, b.sessionId))
}

const fingerprintParams = (sessions: ReadonlyArray<SessionRow>): Params => {
  const columns = FINGERPRINT_COLUMNS.map(() => [] as Array<unknown>)
  for (const s of sessions) {
    const v = s.first.row
    const d = v.device
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
      s.firstSeenMs,
      s.viewport === undefined ? s.firstSeenMs : s.viewportAt
    ]
    for (let i = 0; i < values.length; i++) columns[i]!.push(values[i])
  }
  return FINGERPRINT_COLUMNS.map(([, type], i) => {
    const values = columns[i]!
    switch (type) {
      case "text":
        return textArray(values as Array<string | null>)
      case "int4":
        return int4Array(values as Array<number | null>)
      case "bool":
        return boolArray(values as Array<boolean | null>)
      case "float8":
        return float8Array(values as Array<number | null>)
      case "bytea":
        return byteaArray(values as Array<Uint8Array | null>)
      default:
        return tsArray(values as Array<number | null>)
    }
  })
}

const INSERT_SEEN = `
  INSERT INTO visitor_seen (bucket_start, granularity, domain_id, visitor_id_daily, corp_id)
  SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::bytea[], $5::int4[])
  ON CONFLICT DO NOTHING
  RETURNING bucket_start, granularity, domain_id, corp_id`

interface SeenRow {
  readonly key: string
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly scope: Scope
  readonly vid: Uint8Array
}

/** The visitor id bytes as a map key (latin1: one char per byte); visitor ids are shared per visitor. */
const vidKeys = new WeakMap<Uint8Array, string>()
const vidKey = (vid: Uint8Array): string => {
  let key = vidKeys.get(vid)
  if (key === undefined) {
    key = Buffer.from(vid.buffer, vid.byteOffset, vid.byteLength).toString("latin1")
    vidKeys.set(vid, key)
  }
  return key
}

/**
 * Hour and day seen-set rows of the human views, one per (bucket, domain, visitor), sorted;
 * with a cache, without the rows this writer already stored.
 */
const seenRows = (events: ReadonlyArray<PreparedEvent>, cache?: WriteCache): Array<SeenRow> => {
  const rows = new Map<string, SeenRow | null>()
  for (const event of events) {
    if (!event.row.isView || event.row.isBot) continue
    const vid = event.row.visitorIdDaily
    const hour = hourStart(event.receivedAtMs)
    const day = dayStart(event.receivedAtMs)
    const base = `${event.scope.domainId}|${vidKey(vid)}`
    const hourKey = `${hour}|h|${base}`
    const dayKey = `${day}|d|${base}`
    if (!rows.has(hourKey)) {
      rows.set(
        hourKey,
        cache?.isSeen(hourKey) ? null : { key: hourKey, bucketStart: hour, granularity: "hour", scope: event.scope, vid }
      )
    }
    if (!rows.has(dayKey)) {
      rows.set(
        dayKey,
        cache?.isSeen(dayKey) ? null : { key: dayKey, bucketStart: day, granularity: "day", scope: event.scope, vid }
      )
    }
  }
  const out: Array<SeenRow> = []
  for (const row of rows.values()) if (row !== null) out.push(row)
  return out.sort((a, b) => compareStrings(a.key, b.key))
}

const seenParams = (rows: ReadonlyArray<SeenRow>): Params => [
  tsArray(rows.map((r) => r.bucketStart)),
  textArray(rows.map((r) => r.granularity)),
  int4Array(rows.map((r) => r.scope.domainId)),
  byteaArray(rows.map((r) => r.vid)),
  int4Array(rows.map((r) => r.scope.corpId))
]

const UPSERT_METRICS = `
  INSERT INTO aggregated_metrics AS m (bucket_start, granularity, metric, corp_id, domain_id, dimension, dimension_value, value)
  SELECT b, g, metric, c, d, dim, dv, v::numeric
  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::text[], $8::float8[])
       AS t(b, g, metric, c, d, dim, dv, v)
  ON CONFLICT (bucket_start, granularity, metric, corp_id, domain_id, dimension, dimension_value)
  DO UPDATE SET value = m.value + excluded.value, updated_at = now()`

const metricParams = (rows: ReadonlyArray<MetricRow>): Params => [
  tsArray(rows.map((r) => r.bucketStart)),
  textArray(rows.map((r) => r.granularity)),
  textArray(rows.map((r) => r.metric)),
  int4Array(rows.map((r) => r.corpId)),
  int4Array(rows.map((r) => r.domainId)),
  textArray(rows.map((r) => r.dimension)),
  textArray(rows.map((r) => noNulOrNull(r.dimensionValue))),
  float8Array(rows.map((r) => r.value))
]

const UPSERT_DAILY = `
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

const dailyParams = (rows: ReadonlyArray<DailyRow>): Params => [
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

const INSERT_FAILURES = `
  INSERT INTO ingest_failures (stream_key, entry_id, event_id, payload, error, attempts)
  SELECT $1::text, entry_id, event_id, payload, error, attempts
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[]) AS t(entry_id, event_id, payload, error, attempts)
  ON CONFLICT (stream_key, entry_id) DO NOTHING`

const failureParams = (streamKey: string, poison: ReadonlyArray<PoisonEntry>): Params => {
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


// ---------------------------------------------------------------------------------------------
// what this writer knows is already stored

interface KnownSession {
  firstSeenMs: number
  viewportWidth: number | null
  viewportHeight: number | null
  viewportAt: number
  hasUser: boolean
}

const viewportOf = (row: SessionRow) => {
  const device = row.viewport?.device
  return {
    width: device === undefined ? null : finite(device.viewportWidth),
    height: device === undefined ? null : finite(device.viewportHeight)
  }
}

/**
 * Sessions and seen-set rows this writer has committed, so that a batch does not send rows
 * the database would ignore anyway: a later view of a known session that changes nothing
 * (not earlier, same viewport, user already set) and a visitor already counted for a bucket.
 * Only ever skips rows that would be no-ops given what this writer committed; rows written by
 * other writers are unknown here and simply sent (the statements' conflict rules decide).
 * One imprecision with several writers: a viewport set by another writer from a view later
 * than ours may be kept when a still later view repeats the viewport we stored. Bounded; the
 * maps are cleared when full.
 */
export class WriteCache {
  private readonly sessions = new Map<string, KnownSession>()
  private readonly seen = new Set<string>()
  private readonly maxSessions: number
  private readonly maxSeen: number

  constructor(options: { readonly maxSessions?: number; readonly maxSeen?: number } = {}) {
    this.maxSessions = options.maxSessions ?? 200_000
    this.maxSeen = options.maxSeen ?? 400_000
  }

  /** The session rows that could change the stored fingerprint (or create it). */
  sessionsToWrite(rows: Iterable<SessionRow>): Array<SessionRow> {
    if (this.sessions.size === 0) return [...rows]
    const out: Array<SessionRow> = []
    for (const row of rows) {
      const known = this.sessions.get(row.sessionId)
      if (known === undefined || this.changes(row, known)) out.push(row)
    }
    return out
  }

  private changes(row: SessionRow, known: KnownSession): boolean {
    if (row.firstSeenMs < known.firstSeenMs) return true
    if (row.userId !== null && !known.hasUser) return true
    if (row.viewport === undefined || row.viewportAt < known.viewportAt) return false
    const { height, width } = viewportOf(row)
    return width !== known.viewportWidth || height !== known.viewportHeight
  }

  /** Is this seen-set row (by key) one this writer has stored? */
  isSeen(key: string): boolean {
    return this.seen.has(key)
  }

  /** After COMMIT: the state the database now holds for these rows. */
  committed(sessions: ReadonlyArray<SessionRow>, seen: ReadonlyArray<SeenRow>): void {
    if (this.sessions.size + sessions.length > this.maxSessions) this.sessions.clear()
    for (const row of sessions) {
      const { height, width } = viewportOf(row)
      const known = this.sessions.get(row.sessionId)
      if (known === undefined) {
        this.sessions.set(row.sessionId, {
          firstSeenMs: row.firstSeenMs,
          viewportWidth: width,
          viewportHeight: height,
          viewportAt: row.viewport === undefined ? row.firstSeenMs : row.viewportAt,
          hasUser: row.userId !== null
        })
        continue
      }
      known.firstSeenMs = Math.min(known.firstSeenMs, row.firstSeenMs)
      if (row.viewport !== undefined && row.viewportAt >= known.viewportAt) {
        known.viewportWidth = width
        known.viewportHeight = height
        known.viewportAt = row.viewportAt
      }
      known.hasUser ||= row.userId !== null
    }
    if (this.seen.size + seen.length > this.maxSeen) this.seen.clear()
    for (const row of seen) this.seen.add(row.key)
  }
}

// ---------------------------------------------------------------------------------------------
// the plan: everything computable before knowing which rows are new

export interface BatchPlan {
  readonly raw: ParamsOrError
  readonly sessions: ReadonlyArray<SessionRow>
  readonly fingerprints: ParamsOrError
  readonly seen: ReadonlyArray<SeenRow>
  readonly seenParams: ParamsOrError
  /** rollups of the events themselves (not sessions / unique visitors) */
  readonly eventMetrics: ReadonlyArray<MetricRow>
  readonly eventDaily: ReadonlyArray<DailyRow>
}

const eventRollups = (events: ReadonlyArray<PreparedEvent>) => {
  const metrics = new MetricAccumulator()
  const daily = new DailyAccumulator()
  addEvents(metrics, daily, events as ReadonlyArray<InsertedEvent>)
  return { metrics: metrics.rows(), daily: daily.rows() }
}

/** Computed in slices, yielding to the event loop between them (see prepareBatch). */
const makePlan = Effect.fnUntraced(function*(events: ReadonlyArray<PreparedEvent>, cache: WriteCache | undefined) {
  if (events.length === 0) return undefined
  const raw = tryParams(() => rawParams(events))
  yield* Effect.yieldNow
  const sessions = sessionRows(events, cache)
  const fingerprints = tryParams(() => fingerprintParams(sessions))
  yield* Effect.yieldNow
  const seen = seenRows(events, cache)
  const seenParamsOrError = tryParams(() => seenParams(seen))
  yield* Effect.yieldNow
  const rollups = eventRollups(events.filter((e) => !e.resolveScope))
  return {
    raw,
    sessions,
    fingerprints,
    seen,
    seenParams: seenParamsOrError,
    eventMetrics: rollups.metrics,
    eventDaily: rollups.daily
  } satisfies BatchPlan
})

// ---------------------------------------------------------------------------------------------
// the transaction

export interface WriteOptions {
  readonly streamKey: string
  /** the cache the batch was prepared with: updated after COMMIT */
  readonly cache?: WriteCache | undefined
  /** test hook: runs inside the transaction after every statement, before COMMIT */
  readonly beforeCommit?: Effect.Effect<void, SqlError> | undefined
}

/** Writes a prepared batch in one transaction. */
export const writeBatch = (
  batch: PreparedBatch,
  options: WriteOptions
): Effect.Effect<WriteResult, BatchWriteError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const run = <A extends object>(statement: string, params: ParamsOrError | (() => Params)) =>
      Effect.suspend(() => {
        const resolved = typeof params === "function" ? tryParams(params) : params
        if ("error" in resolved) {
          return Effect.fail(
            new BatchWriteError({ message: `cannot encode parameters: ${resolved.error}`, transient: false, cause: resolved.error })
          )
        }
        return sql.unsafe<A>(statement, resolved.params).pipe(Effect.mapError(fromSqlError))
      })

    const body = Effect.gen(function*() {
      const plan = batch.plan
      const events = batch.events
      let inserted: ReadonlyArray<PreparedEvent> = []
      let allNew = false
      let newSessions: Array<SessionRow> = []
      let newVisitors: Array<{ bucketStart: number; granularity: Granularity; scope: Scope }> = []
      let eventMetrics: ReadonlyArray<MetricRow> = []
      let eventDaily: ReadonlyArray<DailyRow> = []
      let sentSessions: ReadonlyArray<SessionRow> = []
      let sentSeen: ReadonlyArray<SeenRow> = []

      if (plan !== undefined) {
        // 1. raw_events
        const returned = yield* run<
          { readonly id: string; readonly received_at: Date; readonly corp_id: number | null; readonly domain_id: number | null }
        >(INSERT_RAW_EVENTS, plan.raw)
        allNew = returned.length === events.length
        if (allNew && !events.some((e) => e.resolveScope)) {
          // the common case: every row is new and scoped — no need to match the returned rows
          inserted = events
        } else {
          const resolvedScope = new Map<string, Scope>()
          const keys = new Set<string>()
          for (const r of returned) {
            const key = `${r.id}|${r.received_at.getTime()}`
            keys.add(key)
            if (r.domain_id !== null || r.corp_id !== null) resolvedScope.set(key, { corpId: r.corp_id, domainId: r.domain_id })
          }
          inserted = (allNew ? events : events.filter((e) => keys.has(`${e.row.eventId}|${e.receivedAtMs}`))).map((e) => {
            if (!e.resolveScope) return e
            return { ...e, scope: resolvedScope.get(`${e.row.eventId}|${e.receivedAtMs}`) ?? NO_SCOPE }
          })
        }

        // 2. session fingerprints of the inserted views
        const sessions = allNew
          ? plan.sessions
          : sessionRows(inserted, options.cache)
        sentSessions = sessions
        if (sessions.length > 0) {
          const returnedSessions = yield* run<{ readonly session_id: string; readonly inserted: boolean }>(
            UPSERT_FINGERPRINTS,
            allNew ? plan.fingerprints : () => fingerprintParams(sessions)
          )
          const created = new Set<string>()
          for (const r of returnedSessions) if (r.inserted) created.add(r.session_id)
          newSessions = sessions.filter((s) => created.has(s.sessionId))
        }

        // 3. unique-visitor seen-set of the inserted human views
        const seen = allNew
          ? plan.seen
          : seenRows(inserted, options.cache)
        sentSeen = seen
        if (seen.length > 0) {
          const returnedSeen = yield* run<
            {
              readonly bucket_start: Date
              readonly granularity: Granularity
              readonly domain_id: number | null
              readonly corp_id: number | null
            }
          >(INSERT_SEEN, allNew ? plan.seenParams : () => seenParams(seen))
          newVisitors = returnedSeen.map((r) => ({
            bucketStart: r.bucket_start.getTime(),
            granularity: r.granularity,
            scope: { corpId: r.corp_id, domainId: r.domain_id }
          }))
        }

        // 4. rollups of the inserted events (computed ahead when all are new and scoped)
        const hasResolved = inserted.some((e) => e.resolveScope)
        if (allNew && !hasResolved) {
          eventMetrics = plan.eventMetrics
          eventDaily = plan.eventDaily
        } else {
          const rollups = eventRollups(inserted)
          eventMetrics = rollups.metrics
          eventDaily = rollups.daily
        }
      }

      // sessions and unique visitors (metric names disjoint from the event metrics, so the
      // two row sets never share a key and their concatenation keeps a global lock order)
      const extra = new MetricAccumulator()
      const daily = new DailyAccumulator()
      for (const row of eventDaily) daily.addRow(row)
      addSessions(extra, daily, newSessions.map((s) => ({ firstSeenMs: s.firstSeenMs, scope: s.first.scope, view: s.first.row })))
      addVisitors(extra, daily, newVisitors)
      const extraRows = extra.rows()
      if (eventMetrics.length > 0 || extraRows.length > 0) {
        yield* run(UPSERT_METRICS, () => metricParams(extraRows.length === 0 ? eventMetrics : [...eventMetrics, ...extraRows]))
      }
      if (daily.size > 0) yield* run(UPSERT_DAILY, () => dailyParams(daily.rows()))

      // 5. poison entries, kept with their raw payload
      if (batch.poison.length > 0) yield* run(INSERT_FAILURES, () => failureParams(options.streamKey, batch.poison))

      if (options.beforeCommit !== undefined) yield* Effect.mapError(options.beforeCommit, fromSqlError)

      return [{
        inserted: inserted.length,
        duplicates: events.length - inserted.length + batch.inBatchDuplicates,
        poison: batch.poison.length,
        newSessions: newSessions.filter((s) => !s.first.row.isBot).length,
        newVisitors: newVisitors.filter((v) => v.granularity === "day").length
      } satisfies WriteResult, sentSessions, sentSeen] as const
    })

    const [result, sessions, seen] = yield* sql.withTransaction(body).pipe(
      Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError(error)))
    )
    options.cache?.committed(sessions, seen)
    return result
  })

/** The statements of a batch transaction (documentation, diagnostics, EXPLAIN). */
export const STATEMENTS = {
  insertRawEvents: INSERT_RAW_EVENTS,
  upsertFingerprints: UPSERT_FINGERPRINTS,
  insertSeen: INSERT_SEEN,
  upsertMetrics: UPSERT_METRICS,
  upsertDaily: UPSERT_DAILY,
  insertFailures: INSERT_FAILURES
} as const
