/**
 * Hand-written checks for the common valid requests, the collector's hot path (issue 2):
 * `true` only when the endpoint's Schema (Requests.ts) would accept the body as it is.
 * Anything else — including a body that is valid in a way these checks do not recognise —
 * goes to the Schema decode, which also writes the 400 report. They only read a body that
 * came out of `JSON.parse`. test/request-check.test.ts holds them to the Schema.
 */
import type { BatchRequest, EventRequest, ViewRequest } from "./Requests.ts"
import { MAX_EVENT_TYPE, MAX_ID, MAX_METADATA_BYTES, MAX_TEXT, MAX_URL, SERVER_SESSION_PREFIX, serializedSize } from "./Limits.ts"
import { copyAttribution, copyClientDevice, isFinite, isRecord } from "./StructCopy.ts"

/** a string of `min`..`max` UTF-16 code units (Schema.isMinLength / isMaxLength) */
const isText = (value: unknown, min: number, max: number): value is string =>
  typeof value === "string" && value.length >= min && value.length <= max

const optionalText = (value: unknown, min: number, max: number) => value === undefined || isText(value, min, max)

/** `ClientSessionId`, optional: an id that does not start with "~" */
const optionalSessionId = (value: unknown) =>
  value === undefined || (isText(value, 1, MAX_ID) && !value.startsWith(SERVER_SESSION_PREFIX))

/** `Metadata`: a JSON object that serializes to at most 16 KiB */
const optionalMetadata = (value: unknown) => {
  if (value === undefined) return true
  if (!isRecord(value)) return false
  const size = serializedSize(value)
  return size !== undefined && size <= MAX_METADATA_BYTES
}

const optionalFinite = (value: unknown) => value === undefined || isFinite(value)

/** `TimestampInput`: a finite number or a string of at most 64 characters */
const optionalTimestamp = (value: unknown) =>
  value === undefined || (typeof value === "number" ? Number.isFinite(value) : isText(value, 0, 64))

/** What `EventRequest` accepts: eventType, sessionId? (not "~…"), userId?, pageUrl?, metadata?, timestamp? */
export const isEventRequest = (body: unknown): body is EventRequest => {
  if (!isRecord(body)) return false
  return isText(body.eventType, 1, MAX_EVENT_TYPE) &&
    optionalSessionId(body.sessionId) &&
    optionalText(body.userId, 1, MAX_ID) &&
    optionalText(body.pageUrl, 0, MAX_URL) &&
    optionalTimestamp(body.timestamp) &&
    optionalMetadata(body.metadata)
}

/** What `BatchRequest` accepts: `events`, an array of `EventRequest`s (the batch bound is checked before). */
export const isBatchRequest = (body: unknown): body is BatchRequest => {
  if (!isRecord(body)) return false
  const events = body.events
  if (!Array.isArray(events)) return false
  for (let i = 0; i < events.length; i++) if (!isEventRequest(events[i])) return false
  return true
}

/**
 * What `ViewRequest` decodes `body` to — only its fields, nested objects stripped of unknown
 * keys — or undefined when the check does not recognise the body as valid (the Schema decides).
 */
export const viewRequestOf = (body: unknown): ViewRequest | undefined => {
  if (!isRecord(body)) return undefined
  if (
    !optionalSessionId(body.sessionId) ||
    !optionalText(body.pageUrl, 0, MAX_URL) ||
    !optionalText(body.contentId, 1, MAX_ID) ||
    !optionalText(body.contentType, 0, MAX_TEXT) ||
    !optionalText(body.app, 0, MAX_TEXT) ||
    !optionalFinite(body.duration) ||
    !optionalText(body.referrer, 0, MAX_URL) ||
    !optionalText(body.userId, 1, MAX_ID) ||
    !optionalMetadata(body.metadata)
  ) return undefined
  const view: Record<string, unknown> = {}
  if (body.sessionId !== undefined) view.sessionId = body.sessionId
  if (body.pageUrl !== undefined) view.pageUrl = body.pageUrl
  if (body.contentId !== undefined) view.contentId = body.contentId
  if (body.contentType !== undefined) view.contentType = body.contentType
  if (body.app !== undefined) view.app = body.app
  if (body.duration !== undefined) view.duration = body.duration
  if (body.referrer !== undefined) view.referrer = body.referrer
  if (body.userId !== undefined) view.userId = body.userId
  if (body.metadata !== undefined) view.metadata = body.metadata
  if (body.clientDevice !== undefined) {
    const device = copyClientDevice(body.clientDevice)
    if (device === undefined) return undefined
    view.clientDevice = device
  }
  if (body.attribution !== undefined) {
    const attribution = copyAttribution(body.attribution)
    if (attribution === undefined) return undefined
    view.attribution = attribution
  }
  return view as ViewRequest
}
