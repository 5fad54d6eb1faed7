/**
 * The eight tracking request bodies (docs/api.md). Unknown extra fields are ignored
 * (decoding strips them); strings are capped (see Limits.ts). `sessionId` is optional: without
 * it the writer assigns the session by site, daily visitor id and 30 minutes of inactivity
 * (domain/Visits.ts); a client's may not start with "~" (the server-assigned ids do).
 */
import { Schema } from "effect"
import { AttributionInput, ClientDevice } from "./Envelope.ts"
import { boundedId, ClientSessionId, EventType, Id, MAX_EVENT_TYPE, Metadata, Text, TimestampInput, Url } from "./Limits.ts"

const opt = Schema.optionalKey

export const ViewRequest = Schema.Struct({
  sessionId: opt(ClientSessionId),
  pageUrl: opt(Url),
  contentId: opt(Id),
  contentType: opt(Text),
  app: opt(Text),
  duration: opt(Schema.Finite),
  referrer: opt(Url),
  userId: opt(Id),
  metadata: opt(Metadata),
  clientDevice: opt(ClientDevice),
  attribution: opt(AttributionInput)
})
export type ViewRequest = typeof ViewRequest.Type

/** `engagement_<metricType>` must still fit the 100-character event type cap. */
export const ENGAGEMENT_PREFIX = "engagement_"

export const EngagementRequest = Schema.Struct({
  /** also the session id of the event */
  userId: ClientSessionId,
  metricType: boundedId(MAX_EVENT_TYPE - ENGAGEMENT_PREFIX.length),
  targetId: opt(Id),
  targetType: opt(Text),
  metadata: opt(Metadata)
})
export type EngagementRequest = typeof EngagementRequest.Type

export const InteractionItem = Schema.Struct({
  type: EventType,
  sessionId: opt(ClientSessionId),
  userId: opt(Id),
  data: opt(Metadata),
  timestamp: opt(TimestampInput)
})
export type InteractionItem = typeof InteractionItem.Type

export const InteractionRequest = Schema.Struct({ events: Schema.Array(InteractionItem) })
export type InteractionRequest = typeof InteractionRequest.Type

export const EventRequest = Schema.Struct({
  eventType: EventType,
  sessionId: opt(ClientSessionId),
  userId: opt(Id),
  pageUrl: opt(Url),
  metadata: opt(Metadata),
  timestamp: opt(TimestampInput)
})
export type EventRequest = typeof EventRequest.Type

export const BatchRequest = Schema.Struct({ events: Schema.Array(EventRequest) })
export type BatchRequest = typeof BatchRequest.Type

export const ConversionRequest = Schema.Struct({
  conversionType: EventType,
  sessionId: opt(ClientSessionId),
  userId: opt(Id),
  pageUrl: opt(Url),
  value: opt(Schema.Finite),
  currency: opt(
    Schema.String.check(Schema.isPattern(/^[A-Za-z]{3}$/, { message: "currency must be an ISO 4217 code (3 letters)" }))
  ),
  metadata: opt(Metadata)
})
export type ConversionRequest = typeof ConversionRequest.Type

export const FunnelRequest = Schema.Struct({
  funnelId: Id,
  stepId: Id,
  stepOrder: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  sessionId: opt(ClientSessionId),
  userId: opt(Id),
  pageUrl: opt(Url),
  metadata: opt(Metadata)
})
export type FunnelRequest = typeof FunnelRequest.Type

export const RegistrationFunnelRequest = Schema.Struct({
  event: Schema.Literals(["visit", "signup", "profile", "conversion"]),
  sessionId: opt(ClientSessionId),
  timestamp: Schema.String.check(Schema.isMaxLength(64)),
  userId: opt(Id),
  route: opt(Url),
  audience: opt(Text),
  userType: opt(Text),
  registrationPath: opt(Text),
  registrationType: opt(Text),
  entryReferrer: opt(Url),
  referrer: opt(Url)
})
export type RegistrationFunnelRequest = typeof RegistrationFunnelRequest.Type
