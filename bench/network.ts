/**
 * Network enrichment cost (issue 15): load time and memory of the ASN tables, and the per-lookup
 * cost the writer pays, uncached and cached.
 *
 *   npm run bench:network            # = node --expose-gc --experimental-strip-types bench/network.ts
 *   flock /tmp/spoolway-bench.lock npm run bench:network    # on the shared machine
 *
 * Options (env): BENCH_LOOKUPS (per round, default 1,000,000), BENCH_ROUNDS (default 5),
 * BENCH_OUT (JSON results file; default bench/results/network-<time>.json).
 *
 * Measures, in one process:
 *  - load: `loadAsnData()` (read both CSVs + build the typed arrays), first thing in the process;
 *    memory = process growth after a forced GC (the file buffers are garbage by then);
 *  - uncached IPv4 / IPv6: `makeNetworkOf(table)` (parse, public check, binary search, shared
 *    per-AS result) on addresses drawn uniformly from the data set's ranges, every AS already
 *    classified once (steady state); "first sighting" = the first pass, which classifies each AS;
 *  - layer, all-unique IPs: `NetworkLookup.lookup` (memoizeString miss + insert + the lookup);
 *  - cached: `NetworkLookup.lookup` over 1,000 addresses seen before (memo hit).
 * Median ns per lookup over the rounds, by the wall clock and by process CPU time (the machine
 * is shared: wall time also counts waiting for a core); a checksum keeps the work observable.
 */
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { makeNetworkOf, type NetworkInfo } from "../src/domain/Network.ts"
import { loadAsnData, NetworkLookup } from "../src/layers/NetworkLookup.ts"

const LOOKUPS = Number(process.env["BENCH_LOOKUPS"] ?? 1_000_000)
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5)
const OUT = process.env["BENCH_OUT"] ?? `bench/results/network-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}.json`

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  console.error("run with --expose-gc (npm run bench:network does)")
  process.exit(1)
}
const mb = (bytes: number) => bytes / 1048576

// --- load and memory -------------------------------------------------------------------------
gc()
const before = process.memoryUsage()
const loadStarted = performance.now()
const loadCpu = process.cpuUsage()
const data = await Effect.runPromise(loadAsnData())
const loadMs = performance.now() - loadStarted
const loadCpuUsed = process.cpuUsage(loadCpu)
const loadCpuMs = (loadCpuUsed.user + loadCpuUsed.system) / 1e3
gc()
gc()
const after = process.memoryUsage()
const { table } = data

// deterministic PRNG (mulberry32)
const rng = (() => {
  let a = 0x2545f491
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()
const dotted = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
const big = (words: Uint32Array, at: number) =>
  (BigInt(words[at]!) << 96n) | (BigInt(words[at + 1]!) << 64n) | (BigInt(words[at + 2]!) << 32n) | BigInt(words[at + 3]!)
const ipv6 = (value: bigint) =>
  Array.from({ length: 8 }, (_, g) => ((value >> BigInt(112 - 16 * g)) & 0xffffn).toString(16)).join(":").replace(/(^|:)0(:0)+(:|$)/, "::")
const random128 = () => Array.from({ length: 4 }, () => BigInt(Math.floor(rng() * 4294967296))).reduce((acc, w) => (acc << 32n) | w, 0n)

/** a random address inside a random range of the table */
const randomV4 = (): string => {
  const i = Math.floor(rng() * table.v4Entries.length)
  const start = table.v4Starts[i]!
  return dotted(start + Math.floor(rng() * (table.v4Ends[i]! - start + 1)))
}
const randomV6 = (): string => {
  const i = Math.floor(rng() * table.v6Entries.length)
  const start = big(table.v6Starts, i * 4)
  return ipv6(start + (random128() % (big(table.v6Ends, i * 4) - start + 1n)))
}

/** `size` addresses as flat strings, like the ones JSON.parse gives the writer (not concatenation ropes) */
const pool = (size: number, make: () => string): ReadonlyArray<string> => JSON.parse(JSON.stringify(Array.from({ length: size }, make)))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

let checksum = 0
const consume = (info: NetworkInfo) => {
  checksum = (checksum + (info.asn ?? 1)) | 0
}

interface Cost {
  /** wall-clock ns per lookup */
  readonly wall: number
  /** process CPU (user + system) ns per lookup: on a shared machine the wall clock also counts time the process waited for a core */
  readonly cpu: number
}

/** cost per call of `f` over `ips`, cycling through them for `lookups` calls; medians of `rounds` */
const measure = (ips: ReadonlyArray<string>, f: (ip: string) => NetworkInfo, rounds = ROUNDS, lookups = LOOKUPS): Cost => {
  const wall: Array<number> = []
  const cpu: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    const cpuStarted = process.cpuUsage()
    const started = performance.now()
    for (let i = 0, j = 0; i < lookups; i++) {
      consume(f(ips[j]!))
      if (++j === ips.length) j = 0
    }
    wall.push(((performance.now() - started) * 1e6) / lookups)
    const used = process.cpuUsage(cpuStarted)
    cpu.push(((used.user + used.system) * 1e3) / lookups)
  }
  return { wall: Math.round(median(wall)), cpu: Math.round(median(cpu)) }
}

// --- uncached --------------------------------------------------------------------------------
const v4 = pool(200_000, randomV4)
const v6 = pool(200_000, randomV6)
const networkOf = makeNetworkOf(table)
const firstStarted = performance.now()
for (const ip of v4) consume(networkOf(ip))
for (const ip of v6) consume(networkOf(ip))
const firstSightingNs = ((performance.now() - firstStarted) * 1e6) / (v4.length + v6.length)
// classify every AS so the steady state below never pays it
for (let i = 0; i < table.v4Entries.length; i++) consume(networkOf(dotted(table.v4Starts[i]!)))
for (let i = 0; i < table.v6Entries.length; i++) consume(networkOf(ipv6(big(table.v6Starts, i * 4))))
const hits = v4.filter((ip) => networkOf(ip).asn !== null).length + v6.filter((ip) => networkOf(ip).asn !== null).length

const uncachedV4 = measure(v4, networkOf)
const uncachedV6 = measure(v6, networkOf)

// --- through the layer (memoizeString, NETWORK_CACHE_SIZE entries) ---------------------------
const layered = await Effect.runPromise(
  Effect.gen(function*() {
    const service = yield* NetworkLookup
    const unique = pool(LOOKUPS, randomV4)
    const layerUnique = measure(unique, service.lookup, 1)
    const working = pool(1_000, randomV4)
    for (const ip of working) service.lookup(ip)
    const cached = measure(working, service.lookup)
    const working6 = pool(1_000, randomV6)
    for (const ip of working6) service.lookup(ip)
    const cached6 = measure(working6, service.lookup)
    return { layerUnique, cached, cached6 }
  }).pipe(Effect.provide(NetworkLookup.layerWith()), Effect.scoped)
)

const results = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? "?", node: process.version, platform: process.platform, loadAverage: loadavg().map((x) => +x.toFixed(2)) },
  dataSet: { version: data.info.version, date: data.info.date, ipv4Ranges: data.info.ipv4Ranges, ipv6Ranges: data.info.ipv6Ranges, autonomousSystems: data.info.autonomousSystems },
  load: {
    ms: Math.round(loadMs),
    cpuMs: Math.round(loadCpuMs),
    tableMB: +mb(data.info.tableBytes).toFixed(1),
    rssGrowthMB: +mb(after.rss - before.rss).toFixed(1),
    heapGrowthMB: +mb(after.heapUsed - before.heapUsed).toFixed(1),
    arrayBuffersGrowthMB: +mb(after.arrayBuffers - before.arrayBuffers).toFixed(1),
    rssAfterMB: +mb(after.rss).toFixed(1)
  },
  /** ns per lookup: { wall, cpu } */
  lookupNs: {
    uncachedV4,
    uncachedV6,
    firstSightingMixed: Math.round(firstSightingNs),
    layerAllUniqueV4: layered.layerUnique,
    cachedV4: layered.cached,
    cachedV6: layered.cached6
  },
  lookups: LOOKUPS,
  rounds: ROUNDS,
  poolHitRate: +(hits / (v4.length + v6.length)).toFixed(3),
  checksum
}

const ns = (cost: Cost) => `${cost.cpu} (${cost.wall})`
const targets = [
  ["uncached IPv4 lookup, ns CPU (wall)", ns(uncachedV4), "≤ 2,000 ns", uncachedV4.cpu <= 2000],
  ["uncached IPv6 lookup, ns CPU (wall)", ns(uncachedV6), "≤ 2,000 ns", uncachedV6.cpu <= 2000],
  ["cached IPv4 lookup, ns CPU (wall)", ns(layered.cached), "≤ 200 ns", layered.cached.cpu <= 200],
  ["cached IPv6 lookup, ns CPU (wall)", ns(layered.cached6), "≤ 200 ns", layered.cached6.cpu <= 200],
  ["RSS growth for the tables (after GC)", `${results.load.rssGrowthMB} MB`, "≤ 80 MB", results.load.rssGrowthMB <= 80],
  ["load time, ms wall (CPU)", `${results.load.ms} (${results.load.cpuMs})`, "≤ 2,000 ms", results.load.ms <= 2000]
] as const

console.log(`data set ${results.dataSet.version} (${results.dataSet.date}): ${results.dataSet.ipv4Ranges} IPv4 + ${results.dataSet.ipv6Ranges} IPv6 ranges, ${results.dataSet.autonomousSystems} ASes`)
console.log(`machine ${results.machine.cpus} × ${results.machine.cpu}, Node ${results.machine.node}, load average ${results.machine.loadAverage.join(" ")}`)
console.log(`load ${results.load.ms} ms (${results.load.cpuMs} ms CPU); tables ${results.load.tableMB} MB; RSS +${results.load.rssGrowthMB} MB, heap +${results.load.heapGrowthMB} MB, array buffers +${results.load.arrayBuffersGrowthMB} MB (RSS now ${results.load.rssAfterMB} MB)`)
console.log(`first sighting (classifies each AS once; mixed v4/v6, wall) ${results.lookupNs.firstSightingMixed} ns; layer with all-unique IPv4 (memo miss) ${ns(layered.layerUnique)} ns; pool hit rate ${results.poolHitRate}`)
for (const [what, value, target, met] of targets) console.log(`${met ? "met " : "MISS"}  ${what.padEnd(38)} ${value.padStart(14)}   target ${target}`)
writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n")
console.log(`results: ${OUT}`)
