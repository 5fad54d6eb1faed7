/**
 * capture: validated body → normalized events → envelopes (eventId, edge receivedAt)
 * → EventQueue. Answers only after the queue acknowledged the write.
 *
 * This runs once per tracking request (the collector's hot path), so it is written with
 * plain `Effect` combinators around synchronous validation rather than a generator: no
 * service lookups per call (the queue is passed in), one step per Redis round trip.
 */
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import type { EdgeInfo, EventKind, NormalizedEvent, RawEventEnvelope } from "../domain/Envelope.ts"
import { ENVELOPE_VERSION } from "../domain/Envelope.ts"
import { InvalidRequest } from "../domain/Validation.ts"
import { isBatchKind, parseRequest } from "../domain/ParseRequest.ts"
import type { EventQueue, QueueUnavailable, Route } from "../layers/EventQueue.ts"

export type CaptureResult =
  | { readonly _tag: "Single"; readonly eventId: string; readonly route: Route }
  | { readonly _tag: "Batch"; readonly count: number; readonly route: Route | "none" }

// under load many requests share a millisecond: format each one once
let lastMs = Number.NaN
let lastIso = ""
const isoAt = (ms: number): string => {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString()
    lastMs = ms
  }
  return lastIso
}

export const mintEnvelopes = (
  kind: EventKind,
  events: ReadonlyArray<NormalizedEvent>,
  edge: EdgeInfo,
  receivedAtMs: number
): Array<RawEventEnvelope> => {
  const receivedAt = isoAt(receivedAtMs)
  if (events.length === 1) return [{ v: ENVELOPE_VERSION, eventId: randomUUID(), kind, receivedAt, edge, payload: events[0]! }]
  return events.map((payload) => ({ v: ENVELOPE_VERSION, eventId: randomUUID(), kind, receivedAt, edge, payload }))
}

const emptyBatch = Effect.succeed<CaptureResult>({ _tag: "Batch", count: 0, route: "none" })

/** Validates `body` as a `kind` request and stores its events (all or none) at `receivedAtMs`. */
export const capture = (
  queue: EventQueue["Service"],
  kind: EventKind,
  body: unknown,
  edge: EdgeInfo,
  maxBatchEvents: number,
  receivedAtMs: number
): Effect.Effect<CaptureResult, InvalidRequest | QueueUnavailable> => {
  const parsed = parseRequest(kind, body, maxBatchEvents)
  if (parsed instanceof InvalidRequest) return Effect.fail(parsed)
  const envelopes = mintEnvelopes(kind, parsed, edge, receivedAtMs)
  if (isBatchKind(kind)) {
    if (envelopes.length === 0) return emptyBatch
    return Effect.map(queue.enqueue(envelopes), (route): CaptureResult => ({ _tag: "Batch", count: envelopes.length, route }))
  }
  return Effect.map(queue.enqueue(envelopes), (route): CaptureResult => ({ _tag: "Single", eventId: envelopes[0]!.eventId, route }))
}
