/**
 * The writer's prepare stage (docs/architecture.md, writer), sink-neutral: stream entries →
 * a `PreparedBatch` (domain/Batch.ts). Decodes each envelope with the shared Schema, enriches
 * it (views: device, bot, geo, salted IP hash, daily visitor id, traffic source; other events:
 * their raw_events columns), resolves its tenant, drops in-batch repeats, sorts the events by
 * eventId (the insert's lock order) and computes the rollup deltas for the case that every
 * event is new. Entries that cannot be events become poison (kept, never lost).
 *
 * Tenant: the site the collector admitted the event for (`edge.site`, set for a site's write or
 * server key) when the writer knows that site (`Domains.byId`; an unknown id reloads the table
 * once, a site added seconds ago), else the hostname of Origin / Referer / Host when it names a
 * registered domain. A non-view event with neither takes the tenant of its session — a view in
 * the same batch, else a view in an earlier batch whose write is still in flight
 * (`pendingViewScopes`), else the session's stored first touch, which the sink looks up when it
 * stores the event (`resolveScope`) — else NULL, so conversions and other events count per
 * domain too.
 *
 * Bots, on every event: an event is a bot event when its own User-Agent is a bot, or when its
 * session is known to be a bot. What is known of a session, in the order the tenant is carried:
 * its views in this batch (one bot view marks the session, so every event of it in the batch —
 * views included — is a bot event), else its views in batches still being written
 * (`pendingSessionBot`, the status those batches gave the session), else — for a non-view event
 * whose session has no view in either — its stored first touch, which the sink looks up when it
 * stores the event (`resolveBot`). A view in this batch or in flight decides the session
 * without the stored first touch. Bot events are stored with `is_bot` and count only as
 * `bot_events` (domain/Rollups.ts).
 *
 * Events sent without a `sessionId` (domain/Visits.ts): their daily visitor id is computed
 * (non-views too) and they carry a provisional session id per (site, visitor) — the session
 * carry-over below then works per visitor — and an `assign` key; the sink assigns the real
 * session inside its transaction, where the visitor's stored sessions are locked.
 *
 * Network (docs/network.md): each view's IP is looked up in `NetworkLookup` (cached per IP in the
 * service) beside geo; the result rides on the view (`row.network`) to the session's stored
 * first touch and its visit. The site's `datacenterTraffic` setting (`Domains.datacenterTraffic`)
 * applies to events of a known site from a datacenter network (hosting or VPN): `exclude` makes
 * the event a bot event — like a bot User-Agent, so a view from a datacenter makes its whole
 * session a bot session through the carry-over above; a non-view event is looked up for this
 * only on such a site — and `count` stores its `responseTier` as `allow` (the site counts that
 * traffic as ordinary; Tor stays `flag`). `flag` (the default) stores the lookup as it is.
 */
import { Cause, Effect, Exit } from "effect"
import {
  type BatchEntry,
  compareStrings,
  eventIdOf,
  type PoisonEntry,
  type PreparedBatch,
  type PreparedEvent,
  truncateError
} from "../domain/Batch.ts"
import { type EnrichedEvent, type EnrichedView, enrichEvent, enrichView } from "../domain/Enrich.ts"
import type { RawEventEnvelope } from "../domain/Envelope.ts"
import { decodeEnvelope } from "../domain/EnvelopeDecode.ts"
import type { GeoInfo } from "../domain/Geo.ts"
import { memoizeString } from "../domain/Memo.ts"
import type { NetworkInfo } from "../domain/Network.ts"
import { eventRollups } from "../domain/Rollups.ts"
import { NO_SCOPE, type Scope, type Tenant, tenantHost } from "../domain/Tenant.ts"
import { utcDay } from "../domain/Time.ts"
import { provisionalSessionId, type VisitorKey, visitorKeyOf } from "../domain/Visits.ts"
import { Domains } from "../layers/Domains.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import { NetworkLookup } from "../layers/NetworkLookup.ts"
import { Salts } from "../layers/Salts.ts"

/** 0001-01-01 … 9999-12-31 UTC: what PostgreSQL and ISO-8601 both hold */
const MIN_MS = new Date(0).setUTCFullYear(1, 0, 1)
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

const describeCause = (cause: Cause.Cause<unknown>): string => truncateError(Cause.pretty(cause))

export interface PrepareOptions {
  /** the stream (partition) key the entries were read from */
  readonly streamKey: string
  /** entries delivered more often than this are poison (default 5) */
  readonly maxDeliveries: number
  /**
   * Tenants of sessions viewed in earlier batches whose writes may not have committed yet
   * (see Writer.ts: writes in flight) — invisible to this batch's first-touch lookup.
   */
  readonly pendingViewScopes?: ((sessionId: string) => Scope | undefined) | undefined
  /**
   * Whether a session that has a view in an earlier batch whose write may not have committed
   * yet is a bot; undefined when no such batch has a view of it.
   */
  readonly pendingSessionBot?: ((sessionId: string) => boolean | undefined) | undefined
}

/**
 * Decodes and enriches a batch. Undecodable entries, entries delivered more than
 * `maxDeliveries` times and entries whose enrichment throws become poison (never lost: the
 * sink stores them with the batch). Needs the salts of the batch's days (created on first use,
 * outside any transaction).
 */
export const prepareBatch = Effect.fnUntraced(function*(entries: ReadonlyArray<BatchEntry>, options: PrepareOptions) {
  const salts = yield* Salts
  const domains = yield* Domains
  const geo = yield* GeoLookup
  const network = yield* NetworkLookup

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
    // views and events without a sessionId (assigned by daily visitor id) need the day's salt
    if (envelope.payload.isView || envelope.payload.sessionId === undefined) saltDays.add(utcDay(receivedAtMs))
    decoded.push({ entry, envelope, receivedAtMs })
  }

  const saltByDay = saltDays.size === 0 ? new Map<string, Uint8Array>() : yield* salts.saltsFor(saltDays)

  // sites the tenant table does not know yet (added seconds ago): reload it (at most once)
  const unknownSites = new Set<number>()
  for (const { envelope } of decoded) {
    const site = envelope.edge.site
    if (site !== undefined && domains.byId(site) === null) unknownSites.add(site)
  }
  if (unknownSites.size > 0) yield* domains.refreshForUnknown([...unknownSites])
  /** the tenant of the site the collector admitted the event for, else of its hostname */
  const tenantOf = (site: number | undefined, host: string | null): Tenant | null =>
    (site === undefined ? null : domains.byId(site)) ?? domains.resolve(host)

  /** built here, then completed in place by the session passes below (no copies) */
  const events: Array<{ -readonly [K in keyof PreparedEvent]: PreparedEvent[K] }> = []
  /** eventId → receivedAt(s) already in the batch */
  const seen = new Map<string, number | Array<number>>()
  let inBatchDuplicates = 0
  const sessionScope = new Map<string, Scope>()
  /** sessions with a view in this batch → one of those views is a bot */
  const viewBots = new Map<string, boolean>()
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
        const salt = saltByDay.get(utcDay(receivedAtMs))
        if (salt === undefined) throw new Error(`no visitor salt for ${envelope.receivedAt}`)
        const view = enrichView(envelope, salt, geoOf(geo, envelope.edge.ip), network.lookup(envelope.edge.ip))
        row = view
        tenant = tenantOf(envelope.edge.site, view.tenantHost)
        // the site's datacenterTraffic setting (rare path: only datacenter traffic of a site that changed it)
        if (tenant !== null && view.network.isDatacenter === true) {
          const setting = domains.datacenterTraffic?.(tenant.domainId)
          if (setting === "exclude" && !view.isBot) row = { ...view, isBot: true }
          else if (setting === "count" && view.network.responseTier === "flag" && view.network.isTor !== true) {
            row = { ...view, network: countedNetwork(view.network) }
          }
        }
      } else {
        let salt: Uint8Array | undefined
        if (envelope.payload.sessionId === undefined) {
          salt = saltByDay.get(utcDay(receivedAtMs))
          if (salt === undefined) throw new Error(`no visitor salt for ${envelope.receivedAt}`)
        }
        row = enrichEvent(envelope, salt)
        tenant = tenantOf(envelope.edge.site, tenantHost(envelope.edge.headers))
        if (
          tenant !== null && !row.isBot && domains.datacenterTraffic?.(tenant.domainId) === "exclude" &&
          network.lookup(envelope.edge.ip).isDatacenter === true
        ) row = { ...row, isBot: true }
      }
    } catch (error) {
      poison.push({
        entryId: entry.id,
        payload: entry.payload,
        error: truncateError(`enrichment failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`),
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
    // no sessionId: the sink assigns one by (site, daily visitor id); until then the event
    // carries a provisional id per visitor, so the session passes below work per visitor
    let assign: VisitorKey | undefined
    if (envelope.payload.sessionId === undefined && row.visitorIdDaily !== null) {
      assign = visitorKeyOf(scope.domainId ?? 0, row.visitorIdDaily)
      row = { ...row, sessionId: provisionalSessionId(assign) }
    }
    if (row.isView) {
      if (tenant !== null && !sessionScope.has(row.sessionId)) sessionScope.set(row.sessionId, scope)
      if (viewBots.get(row.sessionId) !== true) viewBots.set(row.sessionId, row.isBot)
    } else if (tenant === null && assign === undefined) {
      // (an event without a sessionId keys its session on its own site: none to take)
      unscoped.push(events.length)
    }
    events.push({
      entryId: entry.id,
      receivedAtMs,
      timestampMs: Number.isFinite(timestampMs) ? timestampMs : receivedAtMs,
      scope,
      resolveScope: false,
      resolveBot: false,
      assign,
      row
    })
  }

  // Bots: a session with a bot view in this batch or in a batch in flight is a bot session;
  // every event of it is a bot event. A non-view event of a session with no view in either is
  // completed by the sink from the stored first touch.
  const sessionBots = new Map<string, boolean>()
  for (const [sessionId, bot] of viewBots) sessionBots.set(sessionId, bot || options.pendingSessionBot?.(sessionId) === true)
  for (const event of events) {
    if (event.row.isBot) continue
    const sessionId = event.row.sessionId
    const bot = sessionBots.get(sessionId) ?? options.pendingSessionBot?.(sessionId)
    if (bot === true) event.row = { ...event.row, isBot: true }
    else if (bot === undefined && !event.row.isView) event.resolveBot = true
  }

  // A non-view event without a tenant of its own (e.g. sent server-side with a legacy key)
  // takes the tenant of its session: a view of this batch, else a view of an earlier batch
  // still in its transaction, else (inside the transaction) the stored fingerprint.
  for (const index of unscoped) {
    const event = events[index]!
    const scope = sessionScope.get(event.row.sessionId) ?? options.pendingViewScopes?.(event.row.sessionId)
    if (scope !== undefined) event.scope = scope
    else event.resolveScope = true
  }

  events.sort((a, b) => compareStrings(a.row.eventId, b.row.eventId))
  return {
    streamKey: options.streamKey,
    entryIds: entries.map((entry) => entry.id),
    events,
    poison,
    inBatchDuplicates,
    viewScopes: sessionScope,
    sessionBots,
    rollups: events.length === 0 ? undefined : eventRollups(events.filter((e) => !e.resolveScope))
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

/** A datacenter network on a site that counts datacenter traffic as ordinary: `responseTier` allow. */
const countedNetworks = new WeakMap<NetworkInfo, NetworkInfo>()
const countedNetwork = (info: NetworkInfo): NetworkInfo => {
  let counted = countedNetworks.get(info)
  if (counted === undefined) countedNetworks.set(info, counted = Object.freeze({ ...info, responseTier: "allow" as const }))
  return counted
}
