/**
 * Primary outage, spool and drain (docs/architecture.md, "Collector") with real processes: our
 * own redis-server instances on free ports, killed with SIGKILL and restarted; the collector
 * under a steady request stream.
 */
import { Redis } from "ioredis"
import { afterEach, describe, expect, it } from "vitest"
import type { AppConfigValues } from "../src/layers/AppConfig.ts"
import { post, primaryEnvelopes, type RunningCollector, spoolEnvelopes, startCollector, uniquePrefix } from "./support/collector.ts"
import { redisProcess } from "./support/redisProcess.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})
const own = async <A extends { cleanup?: () => Promise<void>; close?: () => Promise<void> }>(a: A) => {
  cleanups.push(async () => {
    await a.close?.()
    await a.cleanup?.()
  })
  return a
}
const client = (url: string) => {
  const r = new Redis(url)
  r.on("error", () => {})
  cleanups.push(async () => r.disconnect())
  return r
}
/** Own primary and spool redis-servers and a collector on them (all stopped after the test). */
const pipeline = async (appendonly: boolean, config: Partial<AppConfigValues>) => {
  const primary = await own(await redisProcess({ appendonly }))
  const spool = await own(await redisProcess({ appendonly }))
  const c = await own(await startCollector({ primaryRedisUrl: primary.url, spoolRedisUrl: spool.url, ...config }))
  return { primary, spool, c }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start
    await sleep(20)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Sends events from `concurrency` loops until `stop()`; records every answer. */
const steadyStream = (c: RunningCollector, concurrency: number) => {
  let running = true
  const answers: Array<{ status: number; eventId?: string; at: number }> = []
  let n = 0
  const loop = async () => {
    while (running) {
      const res = await post(c.baseUrl, "/track/event", { eventType: "steady", sessionId: `s${n++}` })
      const body = await res.json() as { eventId?: string }
      answers.push({ status: res.status, ...(body.eventId ? { eventId: body.eventId } : {}), at: Date.now() })
    }
  }
  const loops = Array.from({ length: concurrency }, loop)
  return { answers, stop: async () => { running = false; await Promise.all(loops) } }
}

const PROBE_MS = 1000

describe("primary outage", () => {
  it("SIGKILL the primary under load: no non-2xx while the spool is up; after restart the spool drains within 2 probe intervals and every accepted event is in the primary", async () => {
    const { primary, spool, c } = await pipeline(true, {
      probeIntervalMs: PROBE_MS,
      rateLimitPerMinute: 0,
      // a killed primary fails at once (connection refused), whatever the timeout; the 250 ms
      // default would only add 503s from load spikes of a busy machine on the spool's fsyncs
      redisCommandTimeoutMs: 2_000,
      streamPrefix: uniquePrefix("failover")
    })
    const stream = steadyStream(c, 4)
    await sleep(500)
    await primary.kill("SIGKILL")
    await sleep(1500)
    const spooledWhileDown = (await spoolEnvelopes(client(spool.url), c.prefix)).length
    await primary.start()
    const restartedAt = Date.now()
    const spoolClient = client(spool.url)
    const drainedAfter = await waitFor("spool to drain", async () => (await spoolClient.xlen(`${c.prefix}:spool`)) === 0, 2 * PROBE_MS + 500)
    await sleep(300)
    await stream.stop()

    expect(spooledWhileDown).toBeGreaterThan(0)
    expect(drainedAfter).toBeLessThanOrEqual(2 * PROBE_MS)
    expect(stream.answers.filter((a) => a.status !== 202)).toEqual([])
    const accepted = stream.answers.map((a) => a.eventId!)
    expect(accepted.length).toBeGreaterThan(50)
    const inPrimary = new Set((await primaryEnvelopes(client(primary.url), c.prefix)).map((e) => e.eventId))
    expect(accepted.filter((id) => !inPrimary.has(id))).toEqual([])
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as { primaryHealthy: boolean; spoolDepth: number }
    expect(health).toMatchObject({ primaryHealthy: true, spoolDepth: 0 })
    expect(Date.now() - restartedAt).toBeGreaterThan(0)
  }, 30_000)
})

describe("spool crash", () => {
  it("SIGKILL the spool redis-server after events were spooled, restart it on the same data dir: the events are still there and drain", async () => {
    const { primary, spool, c } = await pipeline(true, {
      probeIntervalMs: PROBE_MS,
      streamPrefix: uniquePrefix("spoolcrash")
    })
    await primary.kill("SIGKILL")
    const ids: Array<string> = []
    for (let i = 0; i < 30; i++) {
      const res = await post(c.baseUrl, "/track/event", { eventType: "spooled", sessionId: `s${i}` })
      expect(res.status).toBe(202)
      ids.push((await res.json() as { eventId: string }).eventId)
    }
    expect(await spoolEnvelopes(client(spool.url), c.prefix)).toHaveLength(30)
    await spool.kill("SIGKILL")
    // both down now: the collector must refuse, not pretend
    const refused = await post(c.baseUrl, "/track/event", { eventType: "refused", sessionId: "x" })
    expect(refused.status).toBe(503)
    await spool.start()
    expect((await spoolEnvelopes(client(spool.url), c.prefix)).map((e) => e.eventId)).toEqual(ids)
    await primary.start()
    const spoolClient = client(spool.url)
    await waitFor("spool to drain", async () => (await spoolClient.xlen(`${c.prefix}:spool`)) === 0, 3 * PROBE_MS)
    const drained = await primaryEnvelopes(client(primary.url), c.prefix)
    expect(drained.map((e) => e.eventId)).toEqual(ids)
    expect(drained.every((e) => e.payload.eventType === "spooled")).toBe(true)
  }, 30_000)
})

describe("spool bound", () => {
  it("a full spool answers 503 + Retry-After and leaves both streams untouched", async () => {
    const { primary, spool, c } = await pipeline(false, {
      probeIntervalMs: 60_000,
      spoolMaxEvents: 5,
      streamPrefix: uniquePrefix("full")
    })
    await primary.kill("SIGKILL")
    const statuses: Array<number> = []
    for (let i = 0; i < 5; i++) statuses.push((await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" })).status)
    expect(statuses).toEqual([202, 202, 202, 202, 202])
    const full = await post(c.baseUrl, "/track/event", { eventType: "over", sessionId: "s" })
    expect(full.status).toBe(503)
    expect(Number(full.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    const batch = await post(c.baseUrl, "/track/batch", { events: [{ eventType: "b1", sessionId: "s" }] })
    expect(batch.status).toBe(503)
    const spooled = await spoolEnvelopes(client(spool.url), c.prefix)
    expect(spooled).toHaveLength(5)
    expect(spooled.some((e) => e.payload.eventType !== "e")).toBe(false)
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as { counters: { rejected: { spool_full: number } } }
    expect(health.counters.rejected.spool_full).toBe(2)
  }, 30_000)
})

describe("primary hangs", () => {
  it("SIGSTOP the primary: a write waits at most REDIS_COMMAND_TIMEOUT_MS, then goes to the spool (202); the route flips", async () => {
    const { primary, spool, c } = await pipeline(false, {
      probeIntervalMs: 60_000,
      redisCommandTimeoutMs: 300,
      rateLimitPerMinute: 0,
      streamPrefix: uniquePrefix("hang")
    })
    const before = await post(c.baseUrl, "/track/event", { eventType: "before", sessionId: "s" })
    expect(before.status).toBe(202)
    process.kill(primary.pid()!, "SIGSTOP")
    cleanups.push(async () => {
      try {
        process.kill(primary.pid()!, "SIGCONT")
      } catch {}
    })
    const started = Date.now()
    const hung = await post(c.baseUrl, "/track/event", { eventType: "hung", sessionId: "s" })
    const waited = Date.now() - started
    expect(hung.status).toBe(202)
    expect(waited).toBeGreaterThanOrEqual(250)
    expect(waited).toBeLessThan(2000)
    const { eventId } = await hung.json() as { eventId: string }
    const spooled = await spoolEnvelopes(client(spool.url), c.prefix)
    expect(spooled.map((e) => e.eventId)).toEqual([eventId])
    // the primary is marked unhealthy: the next event goes to the spool at once
    const next = Date.now()
    expect((await post(c.baseUrl, "/track/event", { eventType: "next", sessionId: "s" })).status).toBe(202)
    expect(Date.now() - next).toBeLessThan(250)
    expect(await spoolEnvelopes(client(spool.url), c.prefix)).toHaveLength(2)
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as { primaryHealthy: boolean }
    expect(health.primaryHealthy).toBe(false)
  }, 30_000)
})
