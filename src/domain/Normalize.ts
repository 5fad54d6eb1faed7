/**
 * One normalization function per endpoint, as the endpoint table of docs/api.md says.
 * Pure: request body in, NormalizedEvent(s) out.
 */
import type { NormalizedEvent } from "./Envelope.ts"
import { ENGAGEMENT_PREFIX } from "./Requests.ts"
import type {
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionItem,
  RegistrationFunnelRequest,
  ViewRequest
} from "./Requests.ts"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** Copies the defined entries of `fields` (undefined values are dropped, never stored). */
const defined = (fields: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key in fields) if (fields[key] !== undefined) out[key] = fields[key]
  return out
}

const isEmpty = (record: Record<string, unknown>) => {
  for (const _ in record) return false
  return true
}

/** Epoch ms from a number (as is) or a date string; unparseable → undefined. */
export const parseTimestamp = (input: number | string | undefined): number | undefined => {
  if (input === undefined) return undefined
  if (typeof input === "number") return Number.isFinite(input) ? input : undefined
  const trimmed = input.trim()
  if (trimmed === "") return undefined
  // a numeric string is epoch milliseconds too
  const ms = /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : Date.parse(trimmed)
  return Number.isFinite(ms) ? ms : undefined
}

type Optional<T> = { [K in keyof T]?: T[K] | undefined }

/** `base` plus the defined entries of `extra` (absent stays absent, never `undefined`). */
const event = (base: Mutable<NormalizedEvent>, extra: Optional<NormalizedEvent>): NormalizedEvent => {
  for (const key in extra) {
    const value = (extra as Record<string, unknown>)[key]
    if (value !== undefined) (base as Record<string, unknown>)[key] = value
  }
  return base
}

export const normalizeView = (body: ViewRequest): NormalizedEvent => {
  const metadata = { ...body.metadata, ...defined({ contentType: body.contentType, app: body.app, duration: body.duration }) }
  const attribution = body.attribution === undefined && body.referrer === undefined
    ? undefined
    : { ...body.attribution, ...(body.attribution?.referrer === undefined && body.referrer !== undefined ? { referrer: body.referrer } : {}) }
  return event(
    { eventType: "pageview", isView: true, pageUrl: body.pageUrl ?? body.contentId ?? "" },
    {
      sessionId: body.sessionId,
      userId: body.userId,
      referrer: body.referrer,
      metadata: isEmpty(metadata) ? undefined : metadata,
      clientDevice: body.clientDevice,
      attribution
    }
  )
}

export const normalizeEngagement = (body: EngagementRequest): NormalizedEvent =>
  event(
    { eventType: `${ENGAGEMENT_PREFIX}${body.metricType}`, sessionId: body.userId, userId: body.userId, isView: false },
    { metadata: { ...body.metadata, ...defined({ metricType: body.metricType, targetId: body.targetId, targetType: body.targetType }) } }
  )

export const normalizeInteraction = (item: InteractionItem): NormalizedEvent =>
  event(
    { eventType: item.type, isView: false },
    { sessionId: item.sessionId, userId: item.userId, metadata: item.data, timestamp: parseTimestamp(item.timestamp) }
  )

export const normalizeEvent = (body: EventRequest): NormalizedEvent =>
  event(
    { eventType: body.eventType, isView: false },
    { sessionId: body.sessionId, userId: body.userId, pageUrl: body.pageUrl, metadata: body.metadata, timestamp: parseTimestamp(body.timestamp) }
  )

export const normalizeConversion = (body: ConversionRequest): NormalizedEvent =>
  event(
    { eventType: "conversion", isView: false },
    {
      sessionId: body.sessionId,
      userId: body.userId,
      pageUrl: body.pageUrl,
      metadata: {
        ...body.metadata,
        ...defined({ conversionType: body.conversionType, value: body.value, currency: body.currency?.toUpperCase() })
      }
    }
  )

export const normalizeFunnel = (body: FunnelRequest): NormalizedEvent =>
  event(
    { eventType: "funnel_step", isView: false },
    {
      sessionId: body.sessionId,
      userId: body.userId,
      pageUrl: body.pageUrl,
      metadata: { ...body.metadata, funnelId: body.funnelId, stepId: body.stepId, stepOrder: body.stepOrder }
    }
  )

export const normalizeRegistrationFunnel = (body: RegistrationFunnelRequest): NormalizedEvent => {
  const { event: step, sessionId, timestamp, userId, route, ...rest } = body
  const metadata = defined(rest)
  return event(
    { eventType: `registration_funnel_${step}`, isView: false },
    { sessionId, userId, pageUrl: route, timestamp: parseTimestamp(timestamp), metadata: isEmpty(metadata) ? undefined : metadata }
  )
}
