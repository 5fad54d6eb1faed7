/**
 * capture: validated body → normalized events → envelopes (eventId, edge receivedAt)
 * → EventQueue. Answers only after the queue acknowledged the write.
 */
import { randomUUID } from "node:crypto"
import { Clock, Effect } from "effect"
import type { EdgeInfo, EventKind, NormalizedEvent, RawEventEnvelope } from "../domain/Envelope.ts"
import { ENVELOPE_VERSION } from "../domain/Envelope.ts"
import type { QueueUnavailable } from "../domain/Errors.ts"
import { InvalidRequest } from "../domain/Validation.ts"
import { EventQueue, type Route } from "../layers/EventQueue.ts"
import { isBatchKind, parseRequest } from "./ParseRequest.ts"

export type CaptureResult =
  | { readonly _tag: "Single"; readonly eventId: string; readonly route: Route }
  | { readonly _tag: "Batch"; readonly count: number; readonly route: Route | "none" }

export const mintEnvelopes = (
  kind: EventKind,
  events: ReadonlyArray<NormalizedEvent>,
  edge: EdgeInfo,
  receivedAtMs: number
): Array<RawEventEnvelope> => {
  const receivedAt = new Date(receivedAtMs).toISOString()
  return events.map((payload) => ({ v: ENVELOPE_VERSION, eventId: randomUUID(), kind, receivedAt, edge, payload }))
}

export const capture = Effect.fnUntraced(function*(
  kind: EventKind,
  body: unknown,
  edge: EdgeInfo,
  maxBatchEvents: number
): Effect.fn.Return<CaptureResult, InvalidRequest | QueueUnavailable, EventQueue> {
  const parsed = parseRequest(kind, body, maxBatchEvents)
  if (parsed instanceof InvalidRequest) return yield* parsed
  const queue = yield* EventQueue
  const now = yield* Clock.currentTimeMillis
  const envelopes = mintEnvelopes(kind, parsed, edge, now)
  if (isBatchKind(kind)) {
    if (envelopes.length === 0) return { _tag: "Batch", count: 0, route: "none" }
    const route = yield* queue.enqueue(envelopes)
    return { _tag: "Batch", count: envelopes.length, route }
  }
  const route = yield* queue.enqueue(envelopes)
  return { _tag: "Single", eventId: envelopes[0]!.eventId, route }
})
