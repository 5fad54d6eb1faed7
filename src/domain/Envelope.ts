/**
 * The collector → writer contract (docs/architecture.md, envelope). Both sides decode with these
 * schemas; the writer treats an envelope that does not decode as poison.
 */
import { Schema } from "effect"
import { EventType, Id, Metadata, Text, Url } from "./Limits.ts"

const opt = Schema.optionalKey

/** Device data the client sends with a view; kept as sent, absent fields stay absent. */
export const ClientDevice = Schema.Struct({
  screenWidth: opt(Schema.Finite),
  screenHeight: opt(Schema.Finite),
  viewportWidth: opt(Schema.Finite),
  viewportHeight: opt(Schema.Finite),
  pixelRatio: opt(Schema.Finite),
  colorDepth: opt(Schema.Finite),
  language: opt(Text),
  languages: opt(Schema.Array(Text).check(Schema.isMaxLength(32))),
  timezone: opt(Text),
  timezoneOffset: opt(Schema.Finite),
  deviceMemory: opt(Schema.Finite),
  hardwareConcurrency: opt(Schema.Finite),
  touchPoints: opt(Schema.Finite),
  cookiesEnabled: opt(Schema.Boolean),
  doNotTrack: opt(Schema.NullOr(Schema.Union([Schema.Boolean, Text])))
})
export type ClientDevice = typeof ClientDevice.Type

/** First-touch attribution hints as sent by the client (all optional). */
export const AttributionInput = Schema.Struct({
  utmSource: opt(Text),
  utmMedium: opt(Text),
  utmCampaign: opt(Text),
  utmContent: opt(Text),
  utmTerm: opt(Text),
  referrer: opt(Url)
})
export type AttributionInput = typeof AttributionInput.Type

export const EventKind = Schema.Literals([
  "view",
  "engagement",
  "interaction",
  "event",
  "batch",
  "conversion",
  "funnel",
  "registration-funnel"
])
export type EventKind = typeof EventKind.Type

export const NormalizedEvent = Schema.Struct({
  eventType: EventType,
  /** absent: the writer assigns the session (domain/Visits.ts) */
  sessionId: opt(Id),
  userId: opt(Id),
  pageUrl: opt(Url),
  referrer: opt(Url),
  metadata: opt(Metadata),
  /** epoch milliseconds, client clock */
  timestamp: opt(Schema.Finite),
  isView: Schema.Boolean,
  clientDevice: opt(ClientDevice),
  attribution: opt(AttributionInput)
})
export type NormalizedEvent = typeof NormalizedEvent.Type

export const EdgeInfo = Schema.Struct({
  ip: opt(Schema.String),
  ua: opt(Schema.String),
  lang: opt(Schema.String),
  headers: Schema.Struct({
    origin: opt(Schema.String),
    referer: opt(Schema.String),
    host: opt(Schema.String)
  }),
  /**
   * The site (its id, = `domain_id`) whose key the collector admitted the request with (issue
   * 13); absent in open mode and for the legacy global keys. The writer takes the tenant from
   * it when present (an explicit origin or a server-side call need not name a site hostname).
   */
  site: opt(Schema.Int)
})
export type EdgeInfo = typeof EdgeInfo.Type

export const ENVELOPE_VERSION = 1 as const

export const RawEventEnvelope = Schema.Struct({
  v: Schema.Literal(ENVELOPE_VERSION),
  eventId: Schema.String.check(Schema.isUUID()),
  kind: EventKind,
  /** EDGE clock at capture, ISO-8601; persisted as-is */
  receivedAt: Schema.String.check(
    Schema.makeFilter((s) => Number.isFinite(Date.parse(s)) ? undefined : "receivedAt must be an ISO-8601 date")
  ),
  edge: EdgeInfo,
  payload: NormalizedEvent
})
export type RawEventEnvelope = typeof RawEventEnvelope.Type

/** The stream entry field that holds the JSON-encoded envelope. */
export const ENVELOPE_FIELD = "e"

const EnvelopeFromJson = Schema.fromJsonString(RawEventEnvelope)
export const decodeEnvelopeJson = Schema.decodeUnknownExit(EnvelopeFromJson)
export const encodeEnvelopeJson = (envelope: RawEventEnvelope): string => JSON.stringify(envelope)
