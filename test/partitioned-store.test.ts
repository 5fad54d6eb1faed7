/**
 * The partitioned log as one store (src/layers/PartitionedStreamStore.ts) on in-memory parts:
 * a write is stored only when every part stored its share; a part failing after others stored
 * is a failure that proves nothing (→ the queue spools the whole batch, the parts stored twice
 * are the same envelopes); only when every part refused is nothing written (→ 503 possible).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { EventQueue } from "../src/layers/EventQueue.ts"
import { partitionedStreamStore } from "../src/layers/PartitionedStreamStore.ts"
import { WritePending } from "../src/layers/StreamStore.ts"
import { memoryStreamStore } from "./support/MemoryStreamStore.ts"
import { eventIds, isolated, testEnvelope } from "./support/queue.ts"

/** an envelope whose sessionId names its partition: `p<n>-…` */
const envelope = (partition: number) => testEnvelope(`p${partition}-`)

const setup = () => {
  const parts = [0, 1, 2, 3].map((p) => memoryStreamStore(`part ${p}`))
  const log = partitionedStreamStore({
    name: "primary",
    parts,
    partitionOf: (payload) => Number(/"sessionId":"p(\d+)-/.exec(payload)?.[1] ?? 0)
  })
  return { parts, log }
}

const ids = (payloads: ReadonlyArray<string>) => payloads.map((p) => JSON.parse(p).eventId as string)

describe("partitioned store", () => {
  it.effect("each payload goes to its part; one call per part", () =>
    Effect.gen(function*() {
      const { log, parts } = setup()
      const batch = [envelope(0), envelope(2), envelope(2), envelope(3)]
      yield* log.append(batch.map((e) => JSON.stringify(e)))
      expect(eventIds(parts[0]!.appended)).toEqual([batch[0]!.eventId])
      expect(parts[1]!.appended).toEqual([])
      expect(eventIds(parts[2]!.appended)).toEqual([batch[1]!.eventId, batch[2]!.eventId])
      expect(yield* log.length).toBe(4)
    }))

  it.effect("a part that fails after others stored: a failure that does not prove nothing was written", () =>
    Effect.gen(function*() {
      const { log, parts } = setup()
      parts[1]!.mode = "down"
      const failure = yield* log.appendWithin([envelope(0), envelope(1)].map((e) => JSON.stringify(e)), 250).pipe(Effect.flip)
      expect(failure.notWritten).toBeUndefined()
      expect(parts[0]!.appended).toHaveLength(1)
      // every part refused: nothing written, and it says so
      parts[0]!.mode = "down"
      const refused = yield* log.appendWithin([envelope(0), envelope(1)].map((e) => JSON.stringify(e)), 250).pipe(Effect.flip)
      expect(refused.notWritten).toBe(true)
    }))

  it.effect("a late part: pending until it lands, then stored", () =>
    Effect.gen(function*() {
      const { log, parts } = setup()
      parts[3]!.mode = "late"
      parts[3]!.lateMs = 1000
      const call = yield* Effect.forkChild(log.appendWithin([envelope(0), envelope(3)].map((e) => JSON.stringify(e)), 250))
      yield* TestClock.adjust(250)
      const result = yield* Fiber.join(call)
      expect(result).toBeInstanceOf(WritePending)
      expect(parts[0]!.appended).toHaveLength(1)
      expect(parts[3]!.appended).toHaveLength(0)
      const outcome = yield* Effect.forkChild((result as WritePending<void>).outcome)
      yield* TestClock.adjust(1000)
      expect(Exit.isSuccess(yield* Fiber.await(outcome))).toBe(true)
      expect(parts[3]!.appended).toHaveLength(1)
    }))

  it.effect("the queue on it: a partial failure spools the whole batch (202); all parts refusing + a full spool → 503", () =>
    isolated(Effect.gen(function*() {
      const { log, parts } = setup()
      const spool = memoryStreamStore("spool")
      const queue = yield* EventQueue.make({ primary: log, spool, commandTimeoutMs: 250, spoolMaxEvents: 4 })
      yield* queue.probe
      parts[2]!.mode = "down"
      const batch = [envelope(0), envelope(1), envelope(2), envelope(3)]
      expect(yield* queue.enqueue(batch)).toBe("spool")
      expect(eventIds(spool.appended)).toEqual(batch.map((e) => e.eventId))
      // the spool is full now; every part refuses: nothing can have been written → 503
      for (const part of parts) part.mode = "down"
      const failure = yield* queue.enqueue([envelope(0), envelope(1)]).pipe(Effect.flip)
      expect(failure.reason).toBe("spool_full")
    })))
})
