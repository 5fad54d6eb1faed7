/**
 * Decodes a tracking request body into normalized events: the endpoint's Schema with
 * every error reported (by path), the batch bound checked before the items are decoded.
 */
import { Exit, Predicate, Schema } from "effect"
import type { EventKind, NormalizedEvent } from "../domain/Envelope.ts"
import {
  normalizeConversion,
  normalizeEngagement,
  normalizeEvent,
  normalizeFunnel,
  normalizeInteraction,
  normalizeRegistrationFunnel,
  normalizeView
} from "../domain/Normalize.ts"
import {
  BatchRequest,
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionRequest,
  RegistrationFunnelRequest,
  ViewRequest
} from "../domain/Requests.ts"
import { invalid, InvalidRequest, issuesOf } from "../domain/Validation.ts"

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

export const isBatchKind = (kind: EventKind): boolean => kind === "batch" || kind === "interaction"

/** Validates and normalizes one request body; never throws. */
export const parseRequest = (
  kind: EventKind,
  body: unknown,
  maxBatchEvents: number
): ReadonlyArray<NormalizedEvent> | InvalidRequest => {
  if (!Predicate.isObject(body) || Array.isArray(body)) return invalid([], "request body must be a JSON object")
  if (isBatchKind(kind)) {
    const events = (body as { events?: unknown }).events
    if (Array.isArray(events) && events.length > maxBatchEvents) {
      return invalid(["events"], `a batch holds at most ${maxBatchEvents} events (got ${events.length})`)
    }
  }
  return decoders[kind](body)
}
