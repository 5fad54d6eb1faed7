/**
 * Writer-side enrichment of one envelope (docs/architecture.md, enrichment and data model).
 *
 * Pure and synchronous: the day's salt (chosen by the envelope's `receivedAt` UTC day, see
 * `saltDay`), the geo record (from the `GeoLookup` service, for `envelope.edge.ip`) and the
 * network (from the `NetworkLookup` service, same address) are inputs, so this runs without I/O
 * and without Layers.
 *
 * - Views → {@link enrichView}: everything `raw_events` and `session_fingerprints` need.
 * - Other events → {@link enrichEvent}: the `raw_events` columns and bot detection on their own
 *   User-Agent. Device enrichment, fingerprinting, visitor identity and tenant resolution are
 *   for views (sessions and visitors are counted from views), so `deviceType`, `visitorIdDaily`
 *   and `tenantHost` are null. `isBot` here is the event's own User-Agent only; the prepare
 *   stage (programs/PrepareBatch.ts) also marks the events of a session known to be a bot.
 *   It is never NULL: a NULL would silently drop the event from `NOT is_bot` rollups.
 *
 * Column choices:
 *  - `timestamp`: the client timestamp (ms) when it lies within [receivedAt − 7 days,
 *    receivedAt + 1 day], else `receivedAt` — see {@link eventTimestamp}; a timestamp not used
 *    is kept in `metadata` under {@link CLIENT_TIMESTAMP_KEY}.
 *  - `referrer` (raw_events): `payload.referrer`, else the attribution referrer.
 *  - `landingPage`: `payload.pageUrl`; an empty page url (the collector's `""` fallback) → null.
 *  - `receivedAt` is passed through exactly as captured at the edge.
 */
import { resolveTrafficSource, type TrafficSource } from "./Attribution.ts"
import { type DeviceInfo, type DeviceType, isBotUserAgentCached, parseDevice } from "./Device.ts"
import type { ClientDevice, EventKind, RawEventEnvelope } from "./Envelope.ts"
import type { GeoInfo } from "./Geo.ts"
import { visitorIdentity } from "./Identity.ts"
import type { Metadata } from "./Limits.ts"
import { emptyNetwork, type NetworkInfo } from "./Network.ts"
import { tenantHost } from "./Tenant.ts"

/** Columns of `raw_events` that come straight from the envelope. */
export interface EventRowBase {
  /** raw_events primary key (minted at the edge) */
  readonly eventId: string
  readonly kind: EventKind
  readonly eventType: string
  readonly sessionId: string
  readonly userId: string | null
  readonly pageUrl: string | null
  readonly referrer: string | null
  readonly metadata: Metadata | null
  /** ISO-8601: client timestamp when usable, else `receivedAt` */
  readonly timestamp: string
  /** ISO-8601, the edge clock at capture, as-is */
  readonly receivedAt: string
}

export interface EnrichedView extends EventRowBase {
  readonly isView: true
  /** device, browser, OS and the client's device data as sent (session_fingerprints) */
  readonly device: DeviceInfo
  readonly deviceType: DeviceType
  readonly isBot: boolean
  /** hex HMAC of the IP with the day's salt; null without an IP */
  readonly ipHash: string | null
  /** 32 bytes (raw_events.visitor_id_daily) */
  readonly visitorIdDaily: Uint8Array
  /** first-touch attribution (session_fingerprints) */
  readonly traffic: TrafficSource
  /** hostname to look up in `domains` (→ domain_id, corp_id); null when none */
  readonly tenantHost: string | null
  readonly landingPage: string | null
  readonly geo: GeoInfo
  /** ASN, organisation and kind of network of the IP (docs/network.md); shared, do not mutate */
  readonly network: NetworkInfo
}

export interface EnrichedEvent extends EventRowBase {
  readonly isView: false
  readonly deviceType: null
  /** its own User-Agent is a bot (then its session's known bot status is not needed) */
  readonly isBot: boolean
  readonly ipHash: null
  /** set only for an event sent without a sessionId (its session is assigned by visitor) */
  readonly visitorIdDaily: Uint8Array | null
  readonly tenantHost: null
}

const DAY_MS = 86_400_000

/**
 * How far a client timestamp may lie before / after the edge's `receivedAt` and still be the
 * event time. Clients queue events (offline apps, retries, a spool that held them) for hours
 * or days, so the past allows a week; a clock that runs ahead is tolerated for a day. Anything
 * further — `2100-01-01`, `-5` (1969), a seconds-for-milliseconds mix-up — is a broken clock,
 * not an event time: it would put the event outside every time-range query of its real day.
 */
export const CLIENT_TIMESTAMP_MAX_PAST_MS = 7 * DAY_MS
export const CLIENT_TIMESTAMP_MAX_FUTURE_MS = DAY_MS

/** The metadata key that keeps a client timestamp that was not used (epoch ms as sent). */
export const CLIENT_TIMESTAMP_KEY = "$clientTimestamp"

/**
 * Years 0001–9999 only, whatever `receivedAt` says: `toISOString` writes other years in the
 * expanded ±YYYYYY form and PostgreSQL rejects years beyond its range.
 */
const MIN_TS = new Date(0).setUTCFullYear(1, 0, 1) // Date.UTC would map year 1 to 1901
const MAX_TS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** The client timestamp is within [receivedAt − 7 days, receivedAt + 1 day] (and years 0001–9999). */
const believable = (timestamp: number, receivedAt: string): boolean => {
  const received = Date.parse(receivedAt)
  return timestamp >= received - CLIENT_TIMESTAMP_MAX_PAST_MS && timestamp <= received + CLIENT_TIMESTAMP_MAX_FUTURE_MS &&
    timestamp >= MIN_TS && timestamp <= MAX_TS
}

/** The event time: the client timestamp when believable (above), else the edge `receivedAt`. */
export const eventTimestamp = (timestamp: number | undefined, receivedAt: string): string =>
  timestamp !== undefined && believable(timestamp, receivedAt) ? new Date(timestamp).toISOString() : receivedAt

const nonBlank = (value: string | undefined): string | undefined =>
  value === undefined || value.trim().length === 0 ? undefined : value

const rowBase = (envelope: RawEventEnvelope): EventRowBase => {
  const { payload } = envelope
  const sent = payload.timestamp
  const used = sent !== undefined && believable(sent, envelope.receivedAt)
  return {
    eventId: envelope.eventId,
    kind: envelope.kind,
    eventType: payload.eventType,
    // "" until the writer assigns the session of an event sent without one
    sessionId: payload.sessionId ?? "",
    userId: payload.userId ?? null,
    pageUrl: payload.pageUrl ?? null,
    referrer: nonBlank(payload.referrer) ?? nonBlank(payload.attribution?.referrer) ?? null,
    // a client timestamp that is not the event time is kept, not dropped
    metadata: sent === undefined || used ? payload.metadata ?? null : { ...payload.metadata, [CLIENT_TIMESTAMP_KEY]: sent },
    timestamp: used ? new Date(sent).toISOString() : envelope.receivedAt,
    receivedAt: envelope.receivedAt
  }
}

/** How a view's device is parsed: the cached {@link parseDevice} by default. */
export type DeviceParser = (ua: string | undefined, client?: ClientDevice) => DeviceInfo

/** Build an `enrichView` over a given device parser (the benchmark's uncached baseline uses this). */
export const makeEnrichView = (parse: DeviceParser) =>
(
  envelope: RawEventEnvelope,
  salt: Uint8Array,
  geo: GeoInfo,
  network: NetworkInfo = emptyNetwork
): EnrichedView => {
  const { edge, payload } = envelope
  const device = parse(edge.ua, payload.clientDevice)
  const attribution = payload.attribution
  const traffic = resolveTrafficSource({
    utmSource: attribution?.utmSource,
    utmMedium: attribution?.utmMedium,
    utmCampaign: attribution?.utmCampaign,
    utmContent: attribution?.utmContent,
    utmTerm: attribution?.utmTerm,
    referrer: nonBlank(attribution?.referrer) ?? payload.referrer
  })
  const identity = visitorIdentity(salt, edge.ip, edge.ua, edge.lang)
  return {
    ...rowBase(envelope),
    isView: true,
    device,
    deviceType: device.deviceType,
    isBot: device.isBot,
    ipHash: identity.ipHash,
    visitorIdDaily: identity.visitorIdDaily,
    traffic,
    tenantHost: tenantHost(edge.headers),
    landingPage: nonBlank(payload.pageUrl) ?? null,
    geo,
    network
  }
}

/**
 * Enrich a view: device/bot, IP hash and daily visitor id (with `salt`, the salt of the
 * envelope's `receivedAt` day), first-touch traffic source (attribution, its referrer falling
 * back to the payload's referrer), tenant host, landing page and the given `geo` and `network`
 * (none: {@link emptyNetwork}).
 */
export const enrichView: (
  envelope: RawEventEnvelope,
  salt: Uint8Array,
  geo: GeoInfo,
  network?: NetworkInfo
) => EnrichedView = makeEnrichView(
  parseDevice
)

/**
 * The `raw_events` row of a non-view event: bot detection on its own User-Agent (cached, as for
 * views); no device, identity or tenant work — views only. With `salt` (the event was sent
 * without a sessionId) its daily visitor id too: the writer assigns its session by visitor.
 */
export const enrichEvent = (envelope: RawEventEnvelope, salt?: Uint8Array): EnrichedEvent => ({
  ...rowBase(envelope),
  isView: false,
  deviceType: null,
  isBot: isBotUserAgentCached(envelope.edge.ua),
  ipHash: null,
  visitorIdDaily: salt === undefined
    ? null
    : visitorIdentity(salt, envelope.edge.ip, envelope.edge.ua, envelope.edge.lang).visitorIdDaily,
  tenantHost: null
})
