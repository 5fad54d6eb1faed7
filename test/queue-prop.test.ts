/**
 * Property (docs/architecture.md, "Collector") over random sequences of {submit, primary down/up/hang,
 * spool down/up/hang, time passes}, on in-memory stores and TestClock: after a final
 * recovery and enough time, the primary holds every accepted event (unchanged
 * envelope, at least once), nothing rejected was written anywhere, the spool is
 * empty, and nothing is accepted while both sides fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import { encodeEnvelopeJson, type RawEventEnvelope } from "../src/domain/Envelope.ts"
import { memoryStreamStore, type StoreMode } from "./support/MemoryStreamStore.ts"
import { isolated, makeQueue, testEnvelope } from "./support/queue.ts"

const Mode = Schema.Literals(["up", "down", "hang", "late", "lost"])
const Op = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("submit"), size: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 3 })) }),
  Schema.Struct({ _tag: Schema.Literal("primary"), mode: Mode }),
  Schema.Struct({ _tag: Schema.Literal("spool"), mode: Mode }),
  Schema.Struct({ _tag: Schema.Literal("time"), ms: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 8000 })) })
])
const Ops = Schema.Array(Op).check(Schema.isMaxLength(60))
const SpoolMax = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 40 }))

interface Submission {
  readonly envelopes: ReadonlyArray<RawEventEnvelope>
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly bothDownAtSubmit: boolean
  settledAtOnce: boolean
}

describe("EventQueue under random outages", () => {
  it.effect.prop("every accepted event reaches the primary; nothing rejected is written", { ops: Ops, spoolMax: SpoolMax }, ({ ops, spoolMax }) =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      const queue = yield* makeQueue({
        primary,
        spool,
        probeInterval: "1 second",
        commandTimeoutMs: 250,
        spoolMaxEvents: spoolMax,
        drainBatch: 7,
        drainPoll: "100 millis"
      })
      const submissions: Array<Submission> = []
      const settle = Effect.gen(function*() {
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      })
      for (const op of ops) {
        switch (op._tag) {
          case "submit": {
            const envelopes = Array.from({ length: op.size }, () => testEnvelope())
            const modes: Array<StoreMode> = [primary.mode, spool.mode]
            const fiber = yield* Effect.forkChild(queue.enqueue(envelopes))
            const submission: Submission = {
              envelopes,
              fiber,
              bothDownAtSubmit: modes.every((m) => m === "down"),
              settledAtOnce: false
            }
            yield* settle
            submission.settledAtOnce = fiber.pollUnsafe() !== undefined
            submissions.push(submission)
            break
          }
          case "primary":
            primary.mode = op.mode
            break
          case "spool":
            spool.mode = op.mode
            break
          case "time":
            yield* TestClock.adjust(op.ms)
            yield* settle
        }
      }
      primary.mode = "up"
      spool.mode = "up"
      // enough time for hung calls to time out, a probe to flip the route and the drain to finish
      for (let i = 0; i < 30; i++) {
        yield* TestClock.adjust(1000)
        yield* settle
      }

      const inPrimary = new Map<string, number>()
      for (const payload of primary.appended) inPrimary.set(payload, (inPrimary.get(payload) ?? 0) + 1)
      const everWritten = new Set([...primary.appended, ...spool.appended].map((p) => JSON.parse(p).eventId as string))

      for (const s of submissions) {
        const exit = yield* Fiber.await(s.fiber)
        if (Exit.isSuccess(exit)) {
          for (const e of s.envelopes) expect(inPrimary.get(encodeEnvelopeJson(e)) ?? 0).toBeGreaterThanOrEqual(1)
        } else {
          for (const e of s.envelopes) expect(everWritten.has(e.eventId)).toBe(false)
        }
        if (s.bothDownAtSubmit && s.settledAtOnce) expect(Exit.isSuccess(exit)).toBe(false)
      }
      expect(spool.entries).toHaveLength(0)
    })), { timeout: 120_000, arbitrary: { runs: 200 } })

  it.effect("starts unhealthy: before the first probe, events go to the spool", () =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      primary.mode = "hang"
      const queue = yield* makeQueue({ primary, spool, probeInterval: "5 seconds", commandTimeoutMs: 250, spoolMaxEvents: 10 })
      expect(yield* queue.enqueue([testEnvelope()])).toBe("spool")
      expect((yield* queue.status).primaryHealthy).toBe(false)
      primary.mode = "up"
      // the first probe may have met the hung primary (cut after 250 ms): the next one is 5 s later
      yield* TestClock.adjust(5250)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      expect((yield* queue.status).primaryHealthy).toBe(true)
      yield* TestClock.adjust(200)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      expect(spool.entries).toHaveLength(0)
      expect(primary.entries).toHaveLength(1)
      expect(yield* queue.enqueue([testEnvelope()])).toBe("primary")
    })))

  it.effect("a primary failure fails over at once; a full spool rejects the whole batch", () =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      const queue = yield* makeQueue({ primary, spool, probeInterval: "5 seconds", commandTimeoutMs: 250, spoolMaxEvents: 3 })
      yield* queue.probe
      expect(yield* queue.enqueue([testEnvelope()])).toBe("primary")
      primary.mode = "down"
      expect(yield* queue.enqueue([testEnvelope(), testEnvelope()])).toBe("spool")
      const full = yield* queue.enqueue([testEnvelope(), testEnvelope()]).pipe(Effect.flip)
      expect(full.reason).toBe("spool_full")
      expect(spool.entries).toHaveLength(2)
      const status = yield* queue.status
      expect(status.counters.rejected.spool_full).toBe(2)
      expect(status.counters.spooled).toBe(2)
      spool.mode = "down"
      const down = yield* queue.enqueue([testEnvelope()]).pipe(Effect.flip)
      expect(down.reason).toBe("spool_down")
    })))
})
