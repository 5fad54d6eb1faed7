/**
 * The "503 race" (docs/operations.md, "What 503 means"): a Redis write that does not answer
 * within REDIS_COMMAND_TIMEOUT_MS may still land. The collector must never answer 503 for an
 * event that was (or may yet be) stored — the client's retry would store a twin under a new
 * eventId — and every event it answers 2xx must end up stored, under its one eventId.
 *
 * First on in-memory stores whose writes land late (TestClock, deterministic), then end to end
 * on a real redis-server whose writes are held with CLIENT PAUSE WRITE.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe as describeAsync, expect as expectAsync, it as itAsync } from "vitest"
import { primaryStreamKey, spoolStreamKey } from "../src/domain/Streams.ts"
import type { EventQueueOptions } from "../src/layers/EventQueue.ts"
import { fieldValue } from "../src/layers/StreamStore.ts"
import type { ProbeAndDrainOptions } from "../src/programs/ProbeAndDrain.ts"
import { type RunningCollector, startCollector } from "./support/collector.ts"
import { memoryStreamStore } from "./support/MemoryStreamStore.ts"
import { eventIds, isolated, makeQueue as makeRunningQueue, testEnvelope } from "./support/queue.ts"
import { type RedisProcess, redisProcess } from "./support/redisProcess.ts"

/** the queue, once it has probed its stores */
const makeQueue = (options: EventQueueOptions & ProbeAndDrainOptions) => Effect.tap(makeRunningQueue(options), (queue) => queue.probe)

/** lets forked fibers run after a clock step */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 30; i++) yield* Effect.yieldNow
})

const advance = (ms: number, step = 100) =>
  Effect.gen(function*() {
    for (let t = 0; t < ms; t += step) {
      yield* TestClock.adjust(step)
      yield* settle
    }
  })

const options = { probeInterval: "1 second", commandTimeoutMs: 250, answerDeadlineMs: 1000, spoolMaxEvents: 100, drainPoll: "100 millis" } as const

describe("the answer deadline (in-memory stores)", () => {
  it.effect("a primary write that lands after the command timeout is answered as stored, not 503", () =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      const queue = yield* makeQueue({ primary, spool, ...options })
      primary.mode = "late"
      primary.lateMs = 600 // past the 250 ms command timeout, within the answer deadline
      spool.mode = "hang"
      const e = testEnvelope()
      const fiber = yield* Effect.forkChild(queue.enqueue([e]))
      yield* advance(700)
      const exit = fiber.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit) ? exit.value : exit).toBe("primary")
      expect(eventIds(primary.appended)).toEqual([e.eventId])
      expect(spool.appended).toEqual([])
      spool.mode = "up" // (status reads the spool's length)
      expect((yield* queue.status).inDoubt).toBe(0)
    })))

  it.effect("writes that land after the deadline: answered pending, then stored under its one eventId", () =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      const queue = yield* makeQueue({ primary, spool, ...options })
      primary.mode = "late"
      spool.mode = "late"
      primary.lateMs = 3000
      spool.lateMs = 3000
      const e = testEnvelope()
      const fiber = yield* Effect.forkChild(queue.enqueue([e]))
      // 250 ms primary + 250 ms spool + the 1000 ms deadline
      yield* advance(1600)
      const exit = fiber.pollUnsafe()
      expect(exit !== undefined && Exit.isSuccess(exit) ? exit.value : exit).toBe("pending")
      const answered = yield* queue.status.pipe(Effect.forkChild, Effect.tap(() => advance(300)), Effect.flatMap(Fiber.join))
      expect(answered.inDoubt).toBe(1)
      expect(answered.counters.answeredPending).toBe(1)
      // Redis recovers: the late writes land, the probe and the drain run
      primary.mode = "up"
      spool.mode = "up"
      yield* advance(10_000, 250)
      const status = yield* queue.status
      expect(status.inDoubt).toBe(0)
      expect(spool.entries).toEqual([])
      // at least one copy in the primary stream, and every copy anywhere is this event, unchanged
      expect(primary.appended.length).toBeGreaterThanOrEqual(1)
      expect(new Set([...primary.appended, ...spool.appended])).toEqual(new Set([JSON.stringify(e)]))
    })))

  it.effect("503 only when every write is known to have stored nothing", () =>
    isolated(Effect.gen(function*() {
      const primary = memoryStreamStore("primary")
      const spool = memoryStreamStore("spool")
      const queue = yield* makeQueue({ primary, spool, ...options, spoolMaxEvents: 1 })
      yield* queue.enqueue([testEnvelope()]) // on the primary
      // primary refuses (nothing written), spool full: 503 at once, nothing written
      primary.mode = "down"
      yield* queue.enqueue([testEnvelope()]) // fills the spool (1 event)
      const refused = testEnvelope()
      const failure = yield* queue.enqueue([refused]).pipe(Effect.flip)
      expect(failure.reason).toBe("spool_full")
      expect(eventIds([...primary.appended, ...spool.appended])).not.toContain(refused.eventId)

      // the primary write may have landed (connection lost after sending), spool full: no 503
      primary.mode = "up"
      yield* queue.probe
      primary.mode = "lost"
      const doubtful = testEnvelope()
      const fiber = yield* Effect.forkChild(queue.enqueue([doubtful]))
      yield* settle
      primary.mode = "up"
      yield* advance(3000)
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(eventIds(primary.appended)).toContain(doubtful.eventId)
    })))
})

/** Entries (eventIds) of a stream on `client`. */
const streamIds = async (client: Redis, key: string) =>
  (await client.xrange(key, "-", "+")).map(([, fields]) => JSON.parse(fieldValue(fields)).eventId as string)

describeAsync("the answer deadline (collector on a real redis-server held by CLIENT PAUSE)", () => {
  let redis: RedisProcess
  let admin: Redis
  let collector: RunningCollector
  beforeAll(async () => {
    redis = await redisProcess({ appendonly: false })
    admin = new Redis(redis.url)
    collector = await startCollector({
      primaryRedisUrl: redis.url,
      spoolRedisUrl: redis.url,
      redisCommandTimeoutMs: 100,
      answerDeadlineMs: 1000,
      probeIntervalMs: 200
    })
  })
  afterAll(async () => {
    await collector?.close()
    admin?.disconnect()
    await redis?.cleanup()
  })

  const post = (sessionId: string) =>
    fetch(`${collector.baseUrl}/track/event`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ eventType: "signup", sessionId })
    })

  /** the collector's own view (its metrics live in its registry) */
  const health = async () =>
    await (await fetch(`${collector.baseUrl}/health`)).json() as { inDoubt: number; counters: { answeredPending: number } }

  const waitFor = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 400; i++) {
      if (await check()) return
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error("condition not reached in 10 s")
  }

  itAsync("writes held past the deadline: 202, never 503, and every copy carries the answered eventId", async () => {
    // both writes (primary XADD, spool EVAL) are held until the pause ends, well past the deadline
    await admin.call("CLIENT", "PAUSE", "2500", "WRITE")
    const response = await post("paused")
    expectAsync(response.status).toBe(202)
    const { eventId } = await response.json() as { eventId: string }
    // answered at the deadline, while both writes were still held
    expectAsync((await health()).counters.answeredPending).toBe(1)
    const primaryKey = primaryStreamKey(collector.prefix)
    const spoolKey = spoolStreamKey(collector.prefix)
    // the held writes land, the drain empties the spool, the queue settles
    await waitFor(async () => {
      const status = await Effect.runPromise(collector.queue.status)
      return status.inDoubt === 0 && status.primaryHealthy && (await admin.xlen(spoolKey)) === 0 && (await admin.xlen(primaryKey)) > 0
    })
    const stored = await streamIds(admin, primaryKey)
    expectAsync(new Set(stored)).toEqual(new Set([eventId]))
  })

  itAsync("writes held shorter than the deadline: answered once they land", async () => {
    await admin.call("CLIENT", "PAUSE", "200", "WRITE")
    const response = await post("briefly-paused")
    expectAsync(response.status).toBe(202)
    const { eventId } = await response.json() as { eventId: string }
    await waitFor(async () => (await Effect.runPromise(collector.queue.status)).inDoubt === 0)
    // answered once a write landed, not at the deadline (the count is the previous test's)
    expectAsync((await health()).counters.answeredPending).toBe(1)
    const stored = [...await streamIds(admin, primaryStreamKey(collector.prefix)), ...await streamIds(admin, spoolStreamKey(collector.prefix))]
    expectAsync(stored).toContain(eventId)
  })
})
