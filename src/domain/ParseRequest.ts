/**
 * Decodes a tracking request body into normalized events: the endpoint's Schema with
 * every error reported (by path), the batch bound checked before the items are decoded.
 * Page views, custom events and batches of them — the bulk of the traffic — first try a
 * hand-written check (domain/RequestCheck.ts) that gives the same events without the Schema machinery;
 * whatever it does not accept is decoded by the Schema as before.
 */
import { Exit, Predicate, Schema } from "effect"
import { type EventKind, NormalizedEvent } from "./Envelope.ts"
import {
  normalizeConversion,
  normalizeEngagement,
  normalizeEvent,
  normalizeFunnel,
  normalizeInteraction,
  normalizeRegistrationFunnel,
  normalizeView
} from "./Normalize.ts"
import {
  BatchRequest,
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionRequest,
  RegistrationFunnelRequest,
  ViewRequest
} from "./Requests.ts"
import { MAX_METADATA_BYTES, serializedSize } from "./Limits.ts"
import { isBatchRequest, isEventRequest, viewRequestOf } from "./RequestCheck.ts"
import { invalid, InvalidRequest, issuesOf } from "./Validation.ts"

const decoder = <S extends Schema.Top & { readonly DecodingServices: never }, A>(
  schema: S,
  normalize: (body: S["Type"]) => ReadonlyArray<NormalizedEvent>
) => {
  const decode = Schema.decodeUnknownExit(schema as any, { errors: "all" }) as (u: unknown) => Exit.Exit<S["Type"], Schema.SchemaError>
  return (body: unknown): ReadonlyArray<NormalizedEvent> | InvalidRequest => {
    const exit = decode(body)
    if (Exit.isSuccess(exit)) return normalize(exit.value)
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (error && error._tag === "Fail" && Schema.isSchemaError(error.error)) {
      return new InvalidRequest({ issues: issuesOf(error.error.issue).map((i) => ({ path: [...i.path], message: i.message })) })
    }
    return invalid([], "request body could not be validated")
  }
}

const isNormalizedEvent = Schema.is(NormalizedEvent)
const decodeNormalized = Schema.decodeUnknownExit(NormalizedEvent, { errors: "all" })

/**
 * The normalized events must satisfy the envelope Schema the writer decodes with:
 * merging fields into metadata can push it over its cap, and a 202 for an envelope the
 * writer would call poison would break the promise. Issues are reported under the
 * request path of the event (`["events", i, …]` for batches).
 */
const checkNormalized = (
  kind: EventKind,
  events: ReadonlyArray<NormalizedEvent>
): ReadonlyArray<NormalizedEvent> | InvalidRequest => {
  const issues: Array<{ path: Array<string | number>; message: string }> = []
  events.forEach((event, index) => {
    if (isNormalizedEvent(event)) return
    const exit = decodeNormalized(event)
    if (Exit.isSuccess(exit)) return
    const prefix = isBatchKind(kind) ? ["events", index] : []
    for (const reason of exit.cause.reasons) {
      if (reason._tag !== "Fail") continue
      for (const issue of issuesOf(reason.error.issue)) {
        issues.push({
          path: [...prefix, ...issue.path],
          message: issue.path[0] === "metadata" ? `${issue.message} (after the endpoint's fields are merged in)` : issue.message
        })
      }
    }
  })
  return issues.length === 0 ? events : new InvalidRequest({ issues })
}

const single = <T>(f: (body: T) => NormalizedEvent) => (body: T) => [f(body)]

const decoders: Record<EventKind, (body: unknown) => ReadonlyArray<NormalizedEvent> | InvalidRequest> = {
  view: decoder(ViewRequest, single(normalizeView)),
  engagement: decoder(EngagementRequest, single(normalizeEngagement)),
  interaction: decoder(InteractionRequest, (b) => b.events.map(normalizeInteraction)),
  event: decoder(EventRequest, single(normalizeEvent)),
  batch: decoder(BatchRequest, (b) => b.events.map(normalizeEvent)),
  conversion: decoder(ConversionRequest, single(normalizeConversion)),
  funnel: decoder(FunnelRequest, single(normalizeFunnel)),
  "registration-funnel": decoder(RegistrationFunnelRequest, single(normalizeRegistrationFunnel))
}

/**
 * A view by the hand check. Of the envelope check only the metadata cap can fail: the view's
 * contentType / app / duration are merged into its metadata (every other field is copied
 * under the same cap the envelope Schema has).
 */
const fastView = (body: unknown): ReadonlyArray<NormalizedEvent> | undefined => {
  const view = viewRequestOf(body)
  if (view === undefined) return undefined
  const event = normalizeView(view)
  if (event.metadata !== undefined && (view.contentType !== undefined || view.app !== undefined || view.duration !== undefined)) {
    const size = serializedSize(event.metadata)
    if (size === undefined || size > MAX_METADATA_BYTES) return undefined
  }
  return [event]
}

/**
 * The hand-checked kinds: the events, or undefined to take the Schema path. No envelope
 * check needed: `normalizeEvent` copies fields under the same caps the envelope Schema has
 * (the property test checks that too).
 */
const fastPaths: Partial<Record<EventKind, (body: unknown) => ReadonlyArray<NormalizedEvent> | undefined>> = {
  view: fastView,
  event: (body) => isEventRequest(body) ? [normalizeEvent(body)] : undefined,
  batch: (body) => isBatchRequest(body) ? body.events.map(normalizeEvent) : undefined
}

export const isBatchKind = (kind: EventKind): boolean => kind === "batch" || kind === "interaction"

/** The checks every body passes first: a JSON object, and a batch within `maxBatchEvents`. */
export const checkShape = (kind: EventKind, body: unknown, maxBatchEvents: number): InvalidRequest | undefined => {
  if (!Predicate.isObject(body) || Array.isArray(body)) return invalid([], "request body must be a JSON object")
  if (isBatchKind(kind)) {
    const events = (body as { events?: unknown }).events
    if (Array.isArray(events) && events.length > maxBatchEvents) {
      return invalid(["events"], `a batch holds at most ${maxBatchEvents} events (got ${events.length})`)
    }
  }
  return undefined
}

/**
 * The Schema decode of a body that passed `checkShape`, then the envelope check: what every
 * body the hand checks do not accept goes through (tests hold the hand checks to it).
 */
export const decodeChecked = (kind: EventKind, body: unknown): ReadonlyArray<NormalizedEvent> | InvalidRequest => {
  const events = decoders[kind](body)
  return events instanceof InvalidRequest ? events : checkNormalized(kind, events)
}

/** Validates and normalizes one request body; never throws. */
export const parseRequest = (
  kind: EventKind,
  body: unknown,
  maxBatchEvents: number
): ReadonlyArray<NormalizedEvent> | InvalidRequest =>
  checkShape(kind, body, maxBatchEvents) ?? fastPaths[kind]?.(body) ?? decodeChecked(kind, body)
