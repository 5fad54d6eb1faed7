/**
 * The collector's queue in tests on in-memory stores (test/support/MemoryStreamStore.ts):
 * a scope with its own metric registry, the queue with its probe + drain workflow running, and
 * event envelopes with a new eventId each.
 */
import { Effect, Metric, type Scope } from "effect"
import type { RawEventEnvelope } from "../../src/domain/Envelope.ts"
import { EventQueue, type EventQueueOptions } from "../../src/layers/EventQueue.ts"
import { type ProbeAndDrainOptions, startProbeAndDrain } from "../../src/programs/ProbeAndDrain.ts"

/** scoped, with its own metric registry (the counters a test reads are per queue) */
export const isolated = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(effect).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

/** The queue with its probe + drain workflow running, as in the collector. */
export const makeQueue = (options: EventQueueOptions & ProbeAndDrainOptions) =>
  Effect.gen(function*() {
    const queue = yield* EventQueue.make(options)
    yield* startProbeAndDrain(queue, options)
    return queue
  })

let counter = 0
/** A custom event with a new eventId (and receivedAt); its sessionId is `sessionPrefix` + a number. */
export const testEnvelope = (sessionPrefix = "s"): RawEventEnvelope => ({
  v: 1,
  eventId: `00000000-0000-4000-8000-${String(++counter).padStart(12, "0")}`,
  kind: "event",
  receivedAt: new Date(1_700_000_000_000 + counter).toISOString(),
  edge: { headers: {} },
  payload: { eventType: "e", sessionId: `${sessionPrefix}${counter}`, isView: false }
})

/** The eventIds of stored payloads (envelope JSON). */
export const eventIds = (payloads: ReadonlyArray<string>) => payloads.map((p) => JSON.parse(p).eventId as string)
