/**
 * Writers owning partitions of the event log on a real 3 + 3 Redis Cluster (issue 18,
 * src/programs/PartitionedWriter.ts): events written by the collector into 16 partitions are
 * stored in PostgreSQL exactly once by two writers that split the partitions; when one stops,
 * the other takes its partitions over; a writer that dies (stops its heartbeat) loses its
 * partitions to the others after the live TTL.
 *
 * Skipped loudly when redis-cli --cluster is missing; a failure under CI (.ci/run installs it).
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Cluster } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { Domains } from "../src/layers/Domains.ts"
import { GeoLookup } from "../src/layers/GeoLookup.ts"
import { NetworkLookup } from "../src/layers/NetworkLookup.ts"
import * as PgSink from "../src/layers/PgSink.ts"
import { eventPartition } from "../src/domain/Partition.ts"
import { partitionStreamKeys } from "../src/domain/Streams.ts"
import { PrimaryCluster } from "../src/layers/PrimaryCluster.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import { Salts } from "../src/layers/Salts.ts"
import * as Sql from "../src/layers/Sql.ts"
import { StreamConsumer } from "../src/layers/StreamConsumer.ts"
import { layerPartitioned, liveWritersKey, startPartitionedWriter } from "../src/programs/PartitionedWriter.ts"
import { replayFailures } from "../src/programs/ReplayFailures.ts"
import { Writer } from "../src/programs/Writer.ts"
import { type RunningCollector, startCollector, uniquePrefix } from "./support/collector.ts"
import { clusterUnavailable, type RedisCluster, startRedisCluster } from "./support/redisCluster.ts"
import { GEO_TABLE, NETWORK_TEST_RANGES, REDIS_URL, testDatabase, viewEnvelope } from "./writerSupport.ts"

const unavailable = clusterUnavailable()
if (unavailable !== undefined) {
  if (process.env["CI"]) throw new Error(`Redis Cluster tests under CI: ${unavailable} (.ci/run installs redis-tools)`)
  const line = "!".repeat(100)
  console.warn(`\n${line}\n!! SKIPPED the Redis Cluster writer tests (test/cluster-writers.test.ts): ${unavailable}\n${line}\n`)
}

const PARTITIONS = 16

/** Everything a partitioned writer needs, on the cluster and a database of its own. */
const writerLayer = (dbUrl: string, seeds: ReadonlyArray<string>, prefix: string) => {
  const base = Layer.mergeAll(
    Sql.layerUrl(dbUrl),
    PrimaryCluster.layerSeeds(seeds),
    AppConfig.layerWith({ streamPrefix: prefix, writerBlockMs: 100, writerBatchSize: 100, writerClaimIdleMs: 500, writerClaimEveryMs: 200 }),
    GeoLookup.layerTest(GEO_TABLE),
    NetworkLookup.layerTest(NETWORK_TEST_RANGES)
  )
  return Layer.mergeAll(Salts.layer, Domains.layer, StreamConsumer.layerCluster, PgSink.layer).pipe(Layer.provideMerge(base))
}

describe.skipIf(unavailable !== undefined)("writers owning partitions on a 3 + 3 Redis Cluster", () => {
  let cluster: RedisCluster
  let client: Cluster
  let collector: RunningCollector
  let dbScope: Scope.Closeable
  let layer: ReturnType<typeof writerLayer>
  /** for the test's own queries */
  let sqlContext: Context.Context<SqlClient.SqlClient>
  const prefix = uniquePrefix("cluster-writers")

  beforeAll(async () => {
    cluster = await startRedisCluster({ nodeTimeoutMs: 5000 })
    client = new Cluster(cluster.seeds.map((s) => ({ host: "127.0.0.1", port: Number(s.split(":")[1]) })))
    dbScope = await Effect.runPromise(Scope.make())
    const db = await Effect.runPromise(testDatabase("spoolway_cluster").pipe(Scope.provide(dbScope)))
    layer = writerLayer(db.url, cluster.seeds, prefix)
    sqlContext = await Effect.runPromise(Layer.buildWithScope(Sql.layerUrl(db.url), dbScope))
    collector = await startCollector({
      streamPrefix: prefix,
      primaryRedisCluster: [...cluster.seeds],
      streamPartitions: PARTITIONS,
      rateLimitPerMinute: 0,
      probeIntervalMs: 200
    })
  }, 120_000)

  afterAll(async () => {
    await collector?.close()
    client?.disconnect()
    if (dbScope !== undefined) await Effect.runPromise(Scope.close(dbScope, Exit.void))
    await cluster?.cleanup()
  })

  /** A partitioned writer in a scope of its own (closing it = a clean stop). */
  const startWriter = async (consumer: string) => {
    const scope = await Effect.runPromise(Scope.make())
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const writer = await Effect.runPromise(
      startPartitionedWriter({ prefix, partitions: PARTITIONS, consumer, heartbeatMs: 200, liveTtlMs: 1000 }).pipe(
        Scope.provide(scope),
        Effect.provideContext(context)
      )
    )
    return { writer, context, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
  }

  const post = (tag: string, count: number) =>
    fetch(`${collector.baseUrl}/track/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ events: Array.from({ length: count }, (_, i) => ({ eventType: "e", sessionId: `${tag}-${i}` })) })
    }).then((r) => r.status)

  const waitFor = async (check: () => Promise<boolean>, what: string) => {
    for (let i = 0; i < 600; i++) {
      if (await check()) return
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`${what}: not reached in 30 s`)
  }

  it("two writers split the partitions, store every event once, and hand over on stop and on death", async () => {
    const a = await startWriter("writer-a")
    const b = await startWriter("writer-b")
    const owned = async () => [await Effect.runPromise(a.writer.owned), await Effect.runPromise(b.writer.owned)]
    const rows = (tag: string) =>
      Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const r = yield* sql<{ n: number; ids: number }>`
          SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM raw_events WHERE session_id LIKE ${`${tag}-%`}`
        return r[0]!
      }).pipe(Effect.provideContext(sqlContext)))

    // both see each other: disjoint, together all 16
    await waitFor(async () => {
      const [oa, ob] = await owned()
      return oa!.length > 0 && ob!.length > 0 && oa!.length + ob!.length === PARTITIONS
    }, "partitions split")
    const [oa, ob] = await owned()
    expect([...oa!, ...ob!].sort((x, y) => x - y)).toEqual(Array.from({ length: PARTITIONS }, (_, p) => p))

    expect(await post("first", 200)).toBe(202)
    await waitFor(async () => (await rows("first")).n === 200, "first 200 stored")
    expect(await rows("first")).toEqual({ n: 200, ids: 200 })

    // a clean stop: b takes every partition
    await a.stop()
    await waitFor(async () => (await Effect.runPromise(b.writer.owned)).length === PARTITIONS, "b owns all")
    expect(await post("second", 100)).toBe(202)
    await waitFor(async () => (await rows("second")).n === 100, "second 100 stored")

    // a writer that dies: "ghost" heartbeats once and never again; its partitions wait for the TTL
    await client.zadd(liveWritersKey(prefix), Date.now(), "ghost")
    await waitFor(async () => (await Effect.runPromise(b.writer.owned)).length < PARTITIONS, "ghost counted")
    expect(await post("third", 100)).toBe(202)
    await waitFor(async () => (await Effect.runPromise(b.writer.owned)).length === PARTITIONS, "ghost's partitions taken over")
    await waitFor(async () => (await rows("third")).n === 100, "third 100 stored")
    expect(await rows("third")).toEqual({ n: 100, ids: 100 })
    await b.stop()
    // the live set is empty again: both left it
    expect(await client.zrange(liveWritersKey(prefix), 0, -1)).toEqual([])
  }, 90_000)

  it("the writer service: counters over its loops, every partition's lag and pending, which it owns", async () => {
    const scope = await Effect.runPromise(Scope.make())
    try {
      const context = await Effect.runPromise(Layer.buildWithScope(layerPartitioned().pipe(Layer.provideMerge(layer)), scope))
      const writer = Context.get(context, Writer)
      expect(await post("service", 50)).toBe(202)
      await waitFor(async () => (await Effect.runPromise(writer.snapshot)).written >= 50, "50 written")
      const states = await Effect.runPromise(writer.partitions!)
      expect(states.map((s) => s.partition)).toEqual(Array.from({ length: PARTITIONS }, (_, p) => p))
      for (const state of states) {
        expect(state.owned).toBe(true)
        expect(state.stream).not.toBeNull()
        expect(state.stream!.group).toBe(true)
      }
      await waitFor(async () => (await Effect.runPromise(writer.partitions!)).every((s) => s.stream!.pending === 0 && s.stream!.lag === 0), "caught up")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 60_000)

  it("replay-failures puts a poison row back into its event's partition", async () => {
    const envelope = JSON.stringify(viewEnvelope({ payload: { sessionId: "replayed-1" } }))
    const config = { streamPrefix: prefix, primaryRedisCluster: [...cluster.seeds], streamPartitions: PARTITIONS }
    const result = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO ingest_failures (stream_key, entry_id, payload, error, attempts) VALUES ('k', 'replay-1', ${envelope}, 'boom', 6)`
      return yield* replayFailures()
    }).pipe(
      Effect.provide(Layer.mergeAll(PrimaryRedis.layerUrl(REDIS_URL), AppConfig.layerWith(config))),
      Effect.provideContext(sqlContext)
    ))
    expect(result.replayed).toBe(1)
    const partition = eventPartition({ sessionId: "replayed-1" }, PARTITIONS)
    const entries = await client.xrange(partitionStreamKeys(prefix, PARTITIONS)[partition]!, "-", "+")
    expect(entries.map(([, fields]) => fields[1])).toContain(envelope)
  }, 60_000)
})
