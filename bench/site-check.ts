/**
 * Issue 13: the cost of the key and origin check of one tracking request, in isolation — what
 * `Tracking.ts` runs per request: `admit` (key digest lookup, origin parse/memo, site rule) and
 * the CORS header choice — next to the check the collector had before (one global key,
 * `makeWriteKeyCheck`, SHA-256 + timingSafeEqual). The target is ≤ 2 µs per request.
 *
 *   npx node --experimental-strip-types --no-warnings=ExperimentalWarning bench/site-check.ts
 *
 * SITE_CHECK_SITES (1000) sites with default origins; SITE_CHECK_N (500000) calls per round,
 * SITE_CHECK_ROUNDS (5) rounds; prints the median and the best round, ns per call.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import v8 from "node:v8"
import { formatKey, hashKey, KEY_BYTES, indexSnapshot, admit, type SiteSnapshot } from "../src/domain/Site.ts"
import { makeCors } from "../src/http/Cors.ts"
import { makeWriteKeyCheck } from "../src/http/WriteKeys.ts"

const SITES = Number(process.env.SITE_CHECK_SITES ?? 1000)
const N = Number(process.env.SITE_CHECK_N ?? 500_000)
const ROUNDS = Number(process.env.SITE_CHECK_ROUNDS ?? 5)

const random = () => new Uint8Array(KEY_BYTES).map(() => Math.floor(Math.random() * 256))
const sites: Array<SiteSnapshot["sites"][number]> = []
const writeKeys: Array<string> = []
const serverKeys: Array<string> = []
for (let i = 0; i < SITES; i++) {
  const w = formatKey("write", random())
  const s = formatKey("server", random())
  writeKeys.push(w)
  serverKeys.push(s)
  sites.push({
    id: i + 1,
    hostnames: [`site-${i}.bench`, `www.site-${i}.bench`],
    origins: null,
    keys: [{ kind: "write", hash: hashKey(w) }, { kind: "server", hash: hashKey(s) }]
  })
}
const index = indexSnapshot({ v: 1, version: 1, sites })
const open = indexSnapshot({ v: 1, version: 1, sites: [] })
const noLegacy = makeWriteKeyCheck([])
const mid = SITES >> 1
const writeKey = writeKeys[mid]!
const origin = `https://www.site-${mid}.bench`
const legacy = makeWriteKeyCheck([writeKey])
const cors = makeCors(["*"])

/** The global key check as it was before issue 13 (WriteKeys.ts at 21974d4), for comparison. */
const oldDigest = (value: string) => createHash("sha256").update(value).digest()
const oldKeys = [oldDigest(writeKey)]
const oldAccepts = (candidate: string) => {
  const d = oldDigest(candidate)
  let ok = false
  for (const key of oldKeys) ok = timingSafeEqual(key, d) || ok
  return ok
}

let sink = 0
const cases: Array<[string, () => void]> = [
  ["before (21974d4): global key, createHash sha256 + timingSafeEqual", () => {
    sink += oldAccepts(writeKey) ? 1 : 0
  }],
  ["after: legacy global key (COLLECTOR_WRITE_KEYS), no site", () => {
    sink += admit(open, legacy, { key: writeKey, origin, referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }],
  ["after: open mode (no site)", () => {
    sink += admit(open, noLegacy, { key: undefined, origin, referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }],
  [`after: write key + its Origin, ${SITES} sites`, () => {
    sink += admit(index, noLegacy, { key: writeKey, origin, referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }],
  [`after: write key + its Origin + CORS headers, ${SITES} sites`, () => {
    sink += admit(index, noLegacy, { key: writeKey, origin, referer: undefined, nowMs: 0 }).ok ? 1 : 0
    sink += cors.headers(index, origin) === undefined ? 0 : 1
  }],
  [`after: server key, ${SITES} sites`, () => {
    sink += admit(index, noLegacy, { key: serverKeys[mid], origin: undefined, referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }],
  [`after: wrong key (401), ${SITES} sites`, () => {
    sink += admit(index, noLegacy, { key: "sw_pub_not-a-key-of-anyone-here", origin, referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }],
  [`after: write key + another site's Origin (403), ${SITES} sites`, () => {
    sink += admit(index, noLegacy, { key: writeKey, origin: "https://site-3.bench", referer: undefined, nowMs: 0 }).ok ? 1 : 0
  }]
]

/** Bytes allocated on the V8 heap by `n` calls (what GC freed + growth), like bench/cost-probe.mjs. */
const allocatedBy = (f: () => void, n: number) => {
  const profiler = new v8.GCProfiler()
  profiler.start()
  const before = v8.getHeapStatistics().used_heap_size
  for (let i = 0; i < n; i++) f()
  const after = v8.getHeapStatistics().used_heap_size
  const { statistics } = profiler.stop()
  let freed = 0
  for (const s of statistics) freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize
  return (after - before + freed) / n
}

console.log(`node ${process.version}; ${N} calls × ${ROUNDS} rounds per case; ns per call (median, best); bytes allocated per call`)
for (const [name, f] of cases) {
  for (let i = 0; i < 50_000; i++) f() // warm up
  const rounds: Array<number> = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < N; i++) f()
    rounds.push(Number(process.hrtime.bigint() - start) / N)
  }
  rounds.sort((a, b) => a - b)
  const bytes = allocatedBy(f, N)
  console.log(
    `${name.padEnd(72)} ${rounds[rounds.length >> 1]!.toFixed(0).padStart(5)} ns  (best ${rounds[0]!.toFixed(0).padStart(4)})  ${
      bytes.toFixed(0).padStart(4)
    } B`
  )
}
if (sink < 0) console.log(sink)
