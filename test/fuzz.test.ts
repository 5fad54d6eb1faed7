/**
 * Issue 7 — the HTTP fuzz (fuzz/http.ts) in short: 3,000 generated cases (fixed seed)
 * against an in-process collector on the suite's Redis, with a write key, loopback
 * untrusted (TRUSTED_PROXIES=10.0.0.0/8) and no rate limit. The same generators, client
 * and checks as the 100K run; see fuzz/generators.ts for the case catalogue.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { defaultConfig, makePools, type Pools } from "../fuzz/generators.ts"
import { formatTable, formatViolations, type RunResult, runCases, type StreamReport, verifyStreams, type Violation } from "../fuzz/run.ts"
import { type RunningCollector, testCollectors } from "./support/collector.ts"

const SEED = 20_260_707
const CASES = 3000
const CONCURRENCY = 16

const { redis, start } = testCollectors()
let c: RunningCollector
let run: RunResult
let stream: StreamReport
let pools: Pools
let cfg: ReturnType<typeof defaultConfig>
let liveAfter: number
/** heapUsed after a full GC, every 5 % of the cases: [cases done, bytes] */
const heap: Array<readonly [number, number]> = []

// a full GC before each heap sample, so the samples compare live data, not GC timing
setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void
const heapAfterGc = () => {
  gc()
  return process.memoryUsage().heapUsed
}

beforeAll(async () => {
  c = await start({
    writeKeys: ["fuzz-key"],
    trustedProxies: ["10.0.0.0/8"],
    rateLimitPerMinute: 0,
    // not a failover test: on a loaded machine the 250 ms default fires, and a batch whose
    // XADD timed out but was applied is stored again through the spool — a duplicate the
    // writer absorbs (same eventId), but one more envelope than this test's count expects
    redisCommandTimeoutMs: 5_000
  })
  const port = Number(new URL(c.baseUrl).port)
  cfg = defaultConfig(SEED, `127.0.0.1:${port}`)
  pools = await makePools(SEED, 100)
  heap.push([0, heapAfterGc()])
  run = await runCases({ port, cfg, pools, requests: CASES, concurrency: CONCURRENCY, onProgress: (done) => heap.push([done, heapAfterGc()]) })
  heap.push([CASES, heapAfterGc()])
  liveAfter = (await fetch(`${c.baseUrl}/health/live`)).status
  stream = await verifyStreams(redis, c.prefix, run)
}, 60_000)

const show = (vs: ReadonlyArray<Violation>) => (vs.length === 0 ? "" : `\n${formatTable(run)}\n${formatViolations(vs, cfg, pools, 4)}`)

describe(`HTTP fuzz: ${CASES} cases, seed ${SEED}`, () => {
  it("covers every category and mixes in valid requests", () => {
    for (const [name, t] of run.tally) expect(t.cases, name).toBeGreaterThan(0)
    expect(run.acceptedEvents).toBeGreaterThan(1000)
  })

  it("never answers 5xx", () => {
    const fivexx = [...run.tally.values()].reduce((n, t) => n + t.s5xx, 0)
    expect(fivexx, show(run.violations.filter((v) => v.reason.startsWith("5xx")))).toBe(0)
  })

  it("answers every well-formed request with 202/400/401/413/415/429 and a JSON body, as the case expects", () => {
    expect(run.violations.length, show(run.violations)).toBe(0)
  })

  it("stores exactly the events the 202 answers accepted, nothing from rejected requests", () => {
    const count = stream.violations.filter((v) => v.check === "count")
    expect(count.length, show(count)).toBe(0)
    const lost = stream.answerLost.reduce((n, v) => n + Number(/^(\d+)/.exec(v.reason)?.[1] ?? 0), 0)
    expect(stream.primary + stream.spool).toBeGreaterThanOrEqual(run.acceptedEvents)
    expect(stream.primary + stream.spool - run.acceptedEvents).toBeLessThanOrEqual(lost)
  })

  it("stores only envelopes that decode with the shared Schema", () => {
    const bad = stream.violations.filter((v) => v.check === "undecodable")
    expect(bad.length, show(bad)).toBe(0)
  })

  it("ignores forwarded headers from an untrusted peer: edge.ip is the socket peer", () => {
    const bad = stream.violations.filter((v) => v.check === "edge-ip" || v.check === "kind")
    expect(bad.length, show(bad)).toBe(0)
  })

  it("keeps answering /health/live", () => {
    expect(liveAfter).toBe(200)
  })

  it("keeps memory flat (heap after a full GC: the end within 50 MB of the sample after 20 % of the cases)", () => {
    // the collector runs in this process, so this heap is the collector's plus the fuzzer's
    const warm = heap.find(([done]) => done >= CASES * 0.2)![1]
    const last = heap[heap.length - 1]![1]
    expect(last - warm, `heapUsed after GC, MB: ${heap.map(([d, h]) => `${d}:${(h / 2 ** 20).toFixed(1)}`).join(" ")}`).toBeLessThan(50 * 2 ** 20)
  })
})
