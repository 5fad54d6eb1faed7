/**
 * The writer loop against its Sink seam: the same workload (duplicates, a bot session, a
 * header-less event, conversions, an undecodable entry; then everything redelivered) through
 * the in-memory sink — with no database at all: in-memory salts and tenants — and through the
 * PostgreSQL sink gives the same counters and the same rollups. The in-memory sink's injected
 * failures drive the loop's retry and split.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Domains } from "../src/layers/Domains.ts"
import * as MemorySink from "../src/layers/MemorySink.ts"
import { makeWriter } from "../src/programs/Writer.ts"
import {
  cleanupKeys,
  eventEnvelope,
  GOOGLEBOT,
  metricsOf,
  onMemory,
  redis,
  registerDomain,
  streamKeys,
  viewEnvelope,
  writerTestLayer,
  xadd
} from "./writerSupport.ts"

const HOST = "sink.example"
const ORIGIN = `https://${HOST}`

const at = (second: number) => new Date(Date.parse("2026-05-01T10:00:00.000Z") + second * 1000).toISOString()

/**
 * 13 events: sessions s1 (3 views, 2 conversions worth 15 EUR), s2 (2 views, a header-less
 * event) and s3 (1 view, an event sent with curl's User-Agent: a bot event) — s1 and s2 from one
 * visitor, s3 from another — and a bot session (2 Googlebot views, then a header-less event with
 * a browser's User-Agent: a bot event by its session, found in a batch in flight or stored when
 * batches are small); each sent twice. Plus one undecodable entry.
 */
const workload = (tag: string) => {
  const view = (session: string, second: number, edge: Record<string, unknown> = {}) =>
    viewEnvelope({
      receivedAt: at(second),
      edge: { headers: { origin: ORIGIN }, ...edge },
      payload: { sessionId: `${tag}-${session}`, pageUrl: `${ORIGIN}/p${second % 3}` }
    })
  const events = [
    view("s1", 1),
    view("s1", 2),
    view("s1", 3),
    view("s2", 4),
    view("s2", 5),
    view("s3", 6, { ip: "89.160.20.112" }),
    view("bot", 7, { ua: GOOGLEBOT }),
    view("bot", 8, { ua: GOOGLEBOT }),
    ...[10, 5].map((value, i) =>
      eventEnvelope({
        kind: "conversion",
        receivedAt: at(9 + i),
        edge: { headers: { origin: ORIGIN } },
        payload: { eventType: "conversion", sessionId: `${tag}-s1`, metadata: { conversionType: "purchase", value, currency: "EUR" } }
      })
    ),
    eventEnvelope({ receivedAt: at(11), edge: { headers: {} }, payload: { eventType: "server-side", sessionId: `${tag}-s2` } }),
    eventEnvelope({ receivedAt: at(12), edge: { headers: {} }, payload: { eventType: "server-side", sessionId: `${tag}-bot` } }),
    eventEnvelope({
      receivedAt: at(13),
      edge: { ua: "curl/8.5.0", headers: { origin: ORIGIN } },
      payload: { eventType: "click", sessionId: `${tag}-s3` }
    })
  ]
  return { events, stream: [...events, "{not json", ...events] }
}

const EXPECTED_METRICS = {
  "pageviews|day|total|∅": 6,
  "sessions|day|total|∅": 3,
  "unique_visitors|day|total|∅": 2,
  "events|day|total|∅": 9,
  "conversions|day|total|∅": 2,
  "conversion_value|day|total|∅": 15,
  "bot_events|day|total|∅": 4
}

const pick = (metrics: Record<string, number> | ReadonlyMap<string, number>) => {
  const get = (key: string) => (metrics instanceof Map ? metrics.get(key) : (metrics as Record<string, number>)[key]) ?? 0
  return Object.fromEntries(Object.keys(EXPECTED_METRICS).map((key) => [key, get(key)]))
}

const pendingOf = (streamKey: string, group: string) =>
  redis(async (client) => Number(((await client.xpending(streamKey, group)) as Array<unknown>)[0] ?? 0))

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("writer loop on its Sink", (it) => {
  it.effect("the same workload through the in-memory and the PostgreSQL sink: same counters, same rollups", () =>
    Effect.gen(function*() {
      const memoryKeys = streamKeys("sink-mem")
      const pgKeys = streamKeys("sink-pg")
      yield* cleanupKeys(memoryKeys.streamKey, pgKeys.streamKey)

      const store = new MemorySink.MemoryStore()
      const memory = workload("mem")
      yield* xadd(memoryKeys.streamKey, memory.stream)
      const memoryWriter = yield* makeWriter({ ...memoryKeys, consumer: "mem-a", batchSize: 4 }).pipe(Effect.provide(yield* onMemory(store, HOST)))
      yield* memoryWriter.drain
      const memoryStats = yield* memoryWriter.snapshot

      const site = yield* registerDomain(HOST)
      yield* Effect.flatMap(Domains, (d) => d.refresh).pipe(Effect.orDie)
      const pg = workload("pg")
      yield* xadd(pgKeys.streamKey, pg.stream)
      const pgWriter = yield* makeWriter({ ...pgKeys, consumer: "pg-a", batchSize: 4 })
      yield* pgWriter.drain
      const pgStats = yield* pgWriter.snapshot

      for (const stats of [memoryStats, pgStats]) {
        assert.strictEqual(stats.written, 13)
        assert.strictEqual(stats.duplicates, 13)
        assert.strictEqual(stats.poison, 1)
        assert.strictEqual(stats.sessions, 3)
        assert.strictEqual(stats.retries, 0)
      }
      assert.strictEqual(store.events.size, 13)
      assert.strictEqual(store.poison.size, 1)
      assert.deepStrictEqual(pick(store.metrics), EXPECTED_METRICS)
      const pgMetrics = yield* metricsOf(site.domainId)
      assert.deepStrictEqual(pick(pgMetrics), EXPECTED_METRICS)
      // every rollup row (each dimension and bucket), not only the totals
      assert.deepStrictEqual(Object.fromEntries(store.metrics), pgMetrics)
      assert.deepStrictEqual(store.daily, {
        pageviews: 6,
        uniqueVisitors: 2,
        sessions: 3,
        events: 9,
        conversions: 2,
        conversionValue: 15,
        botEvents: 4
      })
      for (const keys of [memoryKeys, pgKeys]) {
        assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
        assert.strictEqual(yield* redis((c) => c.xlen(keys.streamKey)), 0)
      }

      // everything redelivered (a drain forwarding the spool twice, a replay): nothing changes
      yield* xadd(memoryKeys.streamKey, memory.events)
      yield* memoryWriter.drain
      yield* xadd(pgKeys.streamKey, pg.events)
      yield* pgWriter.drain
      assert.strictEqual((yield* memoryWriter.snapshot).written, 13)
      assert.strictEqual((yield* memoryWriter.snapshot).duplicates, 26)
      assert.strictEqual((yield* pgWriter.snapshot).written, 13)
      assert.strictEqual((yield* pgWriter.snapshot).duplicates, 26)
      assert.deepStrictEqual(Object.fromEntries(store.metrics), yield* metricsOf(site.domainId))
      assert.deepStrictEqual(pick(store.metrics), EXPECTED_METRICS)
    }))

  it.effect("an earlier view arriving after its session was counted moves the count — the same in both sinks", () =>
    Effect.gen(function*() {
      const host = "move.example"
      const view = (tag: string, second: number, path: string, attribution: Record<string, string>) =>
        viewEnvelope({
          receivedAt: at(second),
          edge: { headers: { origin: `https://${host}` } },
          payload: { sessionId: `move-${tag}`, pageUrl: `https://${host}${path}`, attribution }
        })
      // the later view first (counted with /b, cpc), then the earlier one (a late spool drain)
      const run = (tag: string, keys: ReturnType<typeof streamKeys>, consumer: string) =>
        Effect.gen(function*() {
          yield* cleanupKeys(keys.streamKey)
          yield* xadd(keys.streamKey, [view(tag, 7200, "/b", { utmSource: "google", utmMedium: "cpc" })])
          const writer = yield* makeWriter({ ...keys, consumer })
          yield* writer.drain
          yield* xadd(keys.streamKey, [view(tag, 0, "/a", { utmSource: "newsletter", utmMedium: "email" })])
          yield* writer.drain
        })
      const store = new MemorySink.MemoryStore()
      yield* run("mem", streamKeys("move-mem"), "move-mem-a").pipe(Effect.provide(yield* onMemory(store, host)))
      const site = yield* registerDomain(host)
      yield* Effect.flatMap(Domains, (d) => d.refresh).pipe(Effect.orDie)
      yield* run("pg", streamKeys("move-pg"), "move-pg-a")
      const pgMetrics = yield* metricsOf(site.domainId)
      for (const metrics of [Object.fromEntries(store.metrics), pgMetrics]) {
        assert.strictEqual(metrics["sessions|day|page_path|/a"], 1)
        assert.strictEqual(metrics["sessions|day|page_path|/b"] ?? 0, 0)
        assert.strictEqual(metrics["sessions|hour|source|email"], 1)
        assert.strictEqual(metrics["sessions|hour|source|paid"] ?? 0, 0)
        assert.strictEqual(metrics["sessions|day|total|∅"], 1)
      }
      assert.deepStrictEqual(Object.fromEntries(store.metrics), pgMetrics)
      assert.strictEqual(store.daily.sessions, 1)
    }))

  it.effect("transient sink failures are retried in place; the batch is stored once and acknowledged", () =>
    Effect.gen(function*() {
      const keys = streamKeys("sink-transient")
      yield* cleanupKeys(keys.streamKey)
      const store = new MemorySink.MemoryStore()
      store.failNext(2, true, "connection reset")
      const { events } = workload("tr")
      yield* xadd(keys.streamKey, events)
      const writer = yield* makeWriter({ ...keys, consumer: "tr-a", retryBaseMs: 5, sessionLanes: false }).pipe(Effect.provide(yield* onMemory(store, HOST)))
      yield* writer.drain
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.retries, 2)
      assert.strictEqual(stats.lastError, "connection reset")
      assert.strictEqual(stats.written, 13)
      assert.strictEqual(store.writes, 1)
      assert.deepStrictEqual(pick(store.metrics), EXPECTED_METRICS)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))

  it.effect("an entry the sink keeps refusing is isolated by splitting and kept as poison; the rest is stored", () =>
    Effect.gen(function*() {
      const keys = streamKeys("sink-refuse")
      yield* cleanupKeys(keys.streamKey)
      const store = new MemorySink.MemoryStore()
      const { events } = workload("rf")
      const ids = yield* xadd(keys.streamKey, events)
      const bad = ids[4]!
      // any write holding the event of entry `bad` is refused (its poison record is not)
      store.refuse((batch) => (batch.events.some((e) => e.entryId === bad) ? "value out of range" : undefined))
      const writer = yield* makeWriter({ ...keys, consumer: "rf-a", retryBaseMs: 5, permanentAttempts: 2 }).pipe(
        Effect.provide(yield* onMemory(store, HOST))
      )
      yield* writer.drain
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.written, 12)
      assert.strictEqual(stats.poison, 1)
      assert.strictEqual(store.events.size, 12)
      const poison = store.poison.get(`${keys.streamKey}|${bad}`)
      assert.isDefined(poison)
      assert.strictEqual(poison!.error, "write failed: value out of range")
      assert.strictEqual(poison!.eventId, events[4]!.eventId)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))
})
