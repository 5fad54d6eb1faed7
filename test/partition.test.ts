/**
 * Partition choice (src/domain/Partition.ts, issue 18): stable, and spread within ±10 % over 16
 * partitions for realistic keys (sites × client session ids as the tracker and server-side
 * callers make them); hash-tagged stream keys.
 */
import { describe, expect, it } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Effect, Schema } from "effect"
import { eventPartition, hash32, partitionKey, partitionOf, payloadPartition } from "../src/domain/Partition.ts"
import { partitionStreamKey, partitionStreamKeys } from "../src/domain/Streams.ts"

const spread = (keys: ReadonlyArray<string>, partitions: number) => {
  const counts = new Array<number>(partitions).fill(0)
  for (const key of keys) counts[partitionOf(key, partitions)]!++
  const expected = keys.length / partitions
  return { counts, worst: Math.max(...counts.map((c) => Math.abs(c - expected) / expected)) }
}

/** a deterministic stream of pseudo-random numbers (xorshift32) */
const rng = (seed: number) => () => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) / 2 ** 32
}

describe("partition choice", () => {
  it.effect.prop(
    "stable: the same site and visit always go to the same partition, within range",
    { site: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 })), sessionId: Schema.String, partitions: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1024 })) },
    ({ partitions, sessionId, site }) =>
      Effect.sync(() => {
        const p = eventPartition({ site, sessionId }, partitions)
        expect(p).toBe(eventPartition({ site, sessionId, ip: "ignored with a session" }, partitions))
        expect(p).toBe(partitionOf(partitionKey({ site, sessionId }), partitions))
        expect(Number.isInteger(p) && p >= 0 && p < partitions).toBe(true)
        // and from the encoded envelope (the spool drain's view)
        const payload = JSON.stringify({ edge: { headers: {}, site }, payload: { sessionId } })
        expect(payloadPartition(payload, partitions)).toBe(p)
      })
  )

  it("spread within ±10 % over 16 partitions: UUID sessions over 50 sites", () => {
    const next = rng(424242)
    const keys = Array.from({ length: 100_000 }, () => partitionKey({ site: 1 + Math.floor(next() * 50), sessionId: randomUUID() }))
    expect(spread(keys, 16).worst).toBeLessThan(0.1)
  })

  it("spread within ±10 % over 16 partitions: short sequential ids, one site (server-side callers)", () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => partitionKey({ site: 7, sessionId: `s${i}` }))
    expect(spread(keys, 16).worst).toBeLessThan(0.1)
  })

  it("spread within ±10 % over 16 partitions: tracker-style base36 ids, no site (open mode)", () => {
    const next = rng(7)
    const keys = Array.from({ length: 100_000 }, () => partitionKey({ sessionId: Math.floor(next() * 2 ** 52).toString(36) + Date.now().toString(36) }))
    expect(spread(keys, 16).worst).toBeLessThan(0.1)
  })

  it("spread within ±10 % over 16 partitions: no sessionId (server-assigned sessions), by IP and User-Agent", () => {
    const next = rng(99)
    const uas = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1", "curl/8.4.0"]
    const keys = Array.from({ length: 100_000 }, () => {
      const ip = [0, 0, 0, 0].map(() => Math.floor(next() * 256)).join(".")
      return partitionKey({ site: 1 + Math.floor(next() * 5), ip, ua: uas[Math.floor(next() * uas.length)] })
    })
    expect(spread(keys, 16).worst).toBeLessThan(0.1)
  })

  it("no sessionId: one visitor (site, IP, User-Agent) keeps one partition, from the envelope too", () => {
    const visitor = { site: 4, ip: "203.0.113.9", ua: "Mozilla/5.0" }
    const p = eventPartition(visitor, 16)
    const payload = JSON.stringify({ edge: { headers: {}, site: 4, ip: visitor.ip, ua: visitor.ua }, payload: { eventType: "e" } })
    expect(payloadPartition(payload, 16)).toBe(p)
  })

  it("one partition: everything in 0; a payload that does not parse goes to 0", () => {
    expect(eventPartition({ site: 3, sessionId: "abc" }, 1)).toBe(0)
    expect(payloadPartition("not json", 16)).toBe(0)
    expect(hash32("")).toBe(hash32(""))
  })

  it("stream keys carry the partition as a Redis hash tag", () => {
    expect(partitionStreamKey("spoolway", 3)).toBe("spoolway:{3}:events")
    expect(partitionStreamKeys("p", 3)).toEqual(["p:{0}:events", "p:{1}:events", "p:{2}:events"])
  })
})
