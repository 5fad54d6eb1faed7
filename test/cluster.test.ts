/**
 * The partitioned event log on a real Redis Cluster (issue 18, docs/scaling.md): 3 masters + 3
 * replicas started here (test/support/redisCluster.ts). The collector (PRIMARY_REDIS_CLUSTER)
 * writes every event to the stream of its partition, `<prefix>:{p}:events`, and answers 2xx only
 * when every part of a batch is stored; a batch one of whose parts fails goes to the spool whole.
 *
 * Skipped loudly when redis-cli --cluster is missing; a failure under CI (.ci/run installs it).
 */
import { Cluster, Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventPartition } from "../src/domain/Partition.ts"
import { partitionStreamKeys, spoolStreamKey } from "../src/domain/Streams.ts"
import { fieldValue } from "../src/layers/StreamStore.ts"
import { cleanupKeys, type RunningCollector, SHARED_REDIS, startCollector } from "./support/collector.ts"
import { clusterUnavailable, type RedisCluster, startRedisCluster } from "./support/redisCluster.ts"

const unavailable = clusterUnavailable()
if (unavailable !== undefined) {
  if (process.env["CI"]) throw new Error(`Redis Cluster tests under CI: ${unavailable} (.ci/run installs redis-tools)`)
  const line = "!".repeat(100)
  console.warn(`\n${line}\n!! SKIPPED the Redis Cluster tests (test/cluster.test.ts): ${unavailable}\n${line}\n`)
}

const PARTITIONS = 16

interface Stored {
  readonly eventId: string
  readonly sessionId: string
  readonly partition: number
}

describe.skipIf(unavailable !== undefined)("partitioned event log on a 3 + 3 Redis Cluster", () => {
  let cluster: RedisCluster
  let client: Cluster
  let spool: Redis
  let collector: RunningCollector
  /** the same cluster and spool, REDIS_MIN_REPLICAS_ACK=1 */
  let replicated: RunningCollector

  beforeAll(async () => {
    cluster = await startRedisCluster({ nodeTimeoutMs: 5000 })
    client = new Cluster(cluster.seeds.map((s) => ({ host: "127.0.0.1", port: Number(s.split(":")[1]) })))
    spool = new Redis(SHARED_REDIS)
    collector = await startCollector({
      primaryRedisCluster: [...cluster.seeds],
      streamPartitions: PARTITIONS,
      rateLimitPerMinute: 0,
      redisCommandTimeoutMs: 250,
      answerDeadlineMs: 1000,
      probeIntervalMs: 200
    })
    replicated = await startCollector({
      primaryRedisCluster: [...cluster.seeds],
      streamPartitions: PARTITIONS,
      rateLimitPerMinute: 0,
      redisCommandTimeoutMs: 1000,
      redisMinReplicasAck: 1,
      redisReplicasAckTimeoutMs: 300,
      answerDeadlineMs: 1000,
      probeIntervalMs: 200
    })
  }, 120_000)

  afterAll(async () => {
    await collector?.close()
    await replicated?.close()
    if (spool !== undefined) {
      await cleanupKeys(spool, collector?.prefix ?? "none")
      await cleanupKeys(spool, replicated?.prefix ?? "none")
      spool.disconnect()
    }
    client?.disconnect()
    await cluster?.cleanup()
  })

  /** Every entry of every partition stream: its eventId, session and the partition it sits in. */
  const storedEntries = async (on: RunningCollector = collector): Promise<Array<Stored>> => {
    const stored: Array<Stored> = []
    const keys = partitionStreamKeys(on.prefix, PARTITIONS)
    for (const [partition, key] of keys.entries()) {
      for (const [, fields] of await client.xrange(key, "-", "+")) {
        const envelope = JSON.parse(fieldValue(fields)) as { eventId: string; payload: { sessionId: string } }
        stored.push({ eventId: envelope.eventId, sessionId: envelope.payload.sessionId, partition })
      }
    }
    return stored
  }

  const postBatch = (tag: string, count: number, to: RunningCollector = collector) =>
    fetch(`${to.baseUrl}/track/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ events: Array.from({ length: count }, (_, i) => ({ eventType: "e", sessionId: `${tag}-${i}` })) })
    })

  const waitFor = async (check: () => Promise<boolean>, what: string) => {
    for (let i = 0; i < 600; i++) {
      if (await check()) return
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`${what}: not reached in 30 s`)
  }

  it("a batch over many partitions: 202, and every event in the stream of its site and visit, once", async () => {
    const response = await postBatch("spread", 64)
    expect(response.status).toBe(202)
    const stored = (await storedEntries()).filter((e) => e.sessionId.startsWith("spread-"))
    expect(stored).toHaveLength(64)
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(64)
    for (const e of stored) expect(e.partition).toBe(eventPartition({ sessionId: e.sessionId }, PARTITIONS))
    // the batch really spans partitions on all three masters
    expect(new Set(stored.map((e) => e.partition)).size).toBeGreaterThan(8)
  })

  it("one master stalls: the batch goes to the spool whole (202), then drains; every event once by id", async () => {
    // the master that owns partition 0's slot stops answering (SIGSTOP, shorter than the failover timeout)
    const keys = partitionStreamKeys(collector.prefix, PARTITIONS)
    const stalled = await cluster.masterOf(keys[0]!)
    const pid = stalled.pid()!
    process.kill(pid, "SIGSTOP")
    let response: Response
    try {
      response = await postBatch("stall", 64)
    } finally {
      process.kill(pid, "SIGCONT")
    }
    expect(response.status).toBe(202)
    // the spool took the whole batch (the parts on the other masters are stored twice: same ids)
    const spooled = (await spool.xrange(spoolStreamKey(collector.prefix), "-", "+"))
      .map(([, fields]) => JSON.parse(fieldValue(fields)) as { payload: { sessionId: string } })
      .filter((e) => e.payload.sessionId.startsWith("stall-"))
    expect(spooled).toHaveLength(64)
    // the master answers again, the probe flips the route, the drain forwards the spool
    await waitFor(async () => (await spool.xlen(spoolStreamKey(collector.prefix))) === 0, "spool drained")
    const stored = (await storedEntries()).filter((e) => e.sessionId.startsWith("stall-"))
    const ids = new Set(stored.map((e) => e.eventId))
    expect(ids.size).toBe(64)
    expect(new Set(stored.map((e) => e.sessionId)).size).toBe(64)
    for (const e of stored) expect(e.partition).toBe(eventPartition({ sessionId: e.sessionId }, PARTITIONS))
  })

  const spooledSessions = async (on: RunningCollector, tag: string) =>
    (await spool.xrange(spoolStreamKey(on.prefix), "-", "+"))
      .map(([, fields]) => (JSON.parse(fieldValue(fields)) as { payload: { sessionId: string } }).payload.sessionId)
      .filter((s) => s.startsWith(`${tag}-`))

  it("REDIS_MIN_REPLICAS_ACK=1: written once the replicas acknowledged (not spooled)", async () => {
    const response = await postBatch("acked", 32, replicated)
    expect(response.status).toBe(202)
    expect(await spooledSessions(replicated, "acked")).toEqual([])
    const stored = (await storedEntries(replicated)).filter((e) => e.sessionId.startsWith("acked-"))
    expect(new Set(stored.map((e) => e.sessionId)).size).toBe(32)
  })

  it("REDIS_MIN_REPLICAS_ACK=1 and a replica that does not answer: WAIT times out → the batch goes to the spool whole (202)", async () => {
    const keys = partitionStreamKeys(replicated.prefix, PARTITIONS)
    const replica = await cluster.replicaOf(await cluster.masterOf(keys[0]!))
    const pid = replica.pid()!
    process.kill(pid, "SIGSTOP")
    let response: Response
    try {
      response = await postBatch("unacked", 32, replicated)
    } finally {
      process.kill(pid, "SIGCONT")
    }
    expect(response.status).toBe(202)
    expect(new Set(await spooledSessions(replicated, "unacked")).size).toBe(32)
    // the spool drains into the partitions: every event there, once by id
    await waitFor(async () => (await spool.xlen(spoolStreamKey(replicated.prefix))) === 0, "spool drained")
    const stored = (await storedEntries(replicated)).filter((e) => e.sessionId.startsWith("unacked-"))
    expect(new Set(stored.map((e) => e.sessionId)).size).toBe(32)
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(32)
  })
})
