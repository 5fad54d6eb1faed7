/**
 * Issue 2 diagnostics: CPU time and V8 heap allocation per request of the collector (and,
 * for comparison, the bare baseline), measured inside the server process, so the figures
 * hardly depend on other load on the machine (unlike req/s).
 *
 * Before/after in one run (issue 13): COST_BASELINE_DIR=<a checkout of the old commit, with
 * node_modules> adds the target `baseline` (its collector, same Redis, same requests), e.g.
 * COST_TARGETS=baseline,collector. COST_MODE=keys checks keys on every request: the bench
 * publishes a site registry of COST_SITES (1000) sites and sends the write key of one of them
 * (X-Write-Key) with an Origin of that site; `baseline` gets the same key as its global
 * COLLECTOR_WRITE_KEYS (the check it had: one key, no origin).
 *
 *   flock /tmp/spoolway-bench.lock npx node --experimental-strip-types --no-warnings=ExperimentalWarning bench/collector-cost.ts
 *
 * Sends COST_REQUESTS (20000) single-event POST /track/event (COST_PATH, body COST_BODY) requests over COST_CONNECTIONS (50)
 * keep-alive connections after COST_WARMUP (20000) warm-up requests; repeats COST_REPEATS (3)
 * times per server. Per request: CPU µs (user+sys, all threads, incl. GC), KB allocated,
 * scavenges. COST_TARGETS=collector,bare (default both); COST_NODE_ARGS adds node flags to
 * the collector (e.g. "--cpu-prof --cpu-prof-dir=/tmp/x").
 */
import { request, Agent } from "node:http"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { formatKey, hashKey, KEY_BYTES, type SiteSnapshot } from "../src/domain/Site.ts"
import { publishSnapshot } from "../src/layers/SitePublisher.ts"
import { BENCH_DIR, log, requireNode24, runBench, sleep, startBareServer, startCollector, startRedis, stopChild, tempDir, type HttpServerProc } from "./lib.ts"

requireNode24()

const REQUESTS = Number(process.env.COST_REQUESTS ?? 20_000)
const WARMUP = Number(process.env.COST_WARMUP ?? 20_000)
const CONNECTIONS = Number(process.env.COST_CONNECTIONS ?? 50)
const REPEATS = Number(process.env.COST_REPEATS ?? 3)
const TARGETS = (process.env.COST_TARGETS ?? "collector,bare").split(",")
const BASELINE_DIR = process.env.COST_BASELINE_DIR
const MODE = process.env.COST_MODE ?? "open"
const SITES = Number(process.env.COST_SITES ?? 1000)
const BODY = process.env.COST_BODY
/** COST_PATH=/track/view with a view body in COST_BODY measures page views */
const PATH = process.env.COST_PATH ?? "/track/event"

interface Probe {
  readonly cpuUs: number
  readonly allocated: number
  readonly scavenge: number
  readonly markCompact: number
  readonly pauseUs: number
  readonly maxPauseUs: number
}

const probe = async (pid: number, file: string): Promise<Probe> => {
  const before = readLines(file).length
  process.kill(pid, "SIGUSR2")
  for (let i = 0; i < 200; i++) {
    await sleep(10)
    const lines = readLines(file)
    if (lines.length > before) return JSON.parse(lines[lines.length - 1]!)
  }
  throw new Error(`no probe answer from pid ${pid}`)
}
const readLines = (file: string) => {
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0)
  } catch {
    return []
  }
}

const load = (url: string, n: number, connections: number, headers: Record<string, string>, halfway?: () => void) =>
  new Promise<{ statuses: Record<number, number>; ms: number }>((resolve, reject) => {
    const agent = new Agent({ keepAlive: true, maxSockets: connections })
    const target = new URL(PATH, url)
    const statuses: Record<number, number> = {}
    let sent = 0
    let done = 0
    const start = performance.now()
    const one = () => {
      if (sent >= n) return
      sent++
      if (sent === n >> 1) halfway?.()
      const body = BODY ?? `{"eventType":"bench","sessionId":"s-${sent % 1000}"}`
      const req = request(target, {
        method: "POST",
        agent,
        headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) }
      }, (res) => {
        res.resume()
        res.on("end", () => {
          statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1
          done++
          if (done === n) {
            agent.destroy()
            resolve({ statuses, ms: performance.now() - start })
          } else one()
        })
      })
      req.on("error", reject)
      req.end(body)
    }
    for (let i = 0; i < connections; i++) one()
  })

const scavengeLines = (proc: HttpServerProc) => proc.output().split("\n").filter((l) => l.includes("gc=s "))

runBench(async () => {
  const redis = await startRedis({ name: "cost-redis" })
  const prefix = `bench-cost-${Date.now()}`
  const dir = process.env.COST_DIR ?? tempDir("cost")
  const probeArg = `--import=${join(BENCH_DIR, "cost-probe.mjs")}`
  const servers: Array<{ proc: HttpServerProc; file: string }> = []
  let headers: Record<string, string> = {}
  let legacyKeys = ""
  if (MODE === "keys") {
    const site = await publishBenchSites(redis.url, prefix, SITES)
    headers = { "x-write-key": site.writeKey, origin: site.origin }
    legacyKeys = site.writeKey
    log(`COST_MODE=keys: ${SITES} sites published; requests carry the write key and origin of ${site.origin}`)
  }
  for (const target of TARGETS) {
    const file = join(dir, `${target}.jsonl`)
    if (target === "collector" || target === "baseline") {
      if (target === "baseline" && BASELINE_DIR === undefined) throw new Error("target baseline needs COST_BASELINE_DIR")
      process.env.BENCH_COLLECTOR_NODE_ARGS = `${probeArg} ${process.env.COST_NODE_ARGS ?? ""}`
      const proc = await startCollector({
        name: target,
        primaryUrl: redis.url,
        spoolUrl: redis.url,
        streamPrefix: prefix,
        logFile: join(dir, `${target}.log`),
        ...(target === "baseline" && BASELINE_DIR !== undefined ? { cwd: BASELINE_DIR } : {}),
        env: {
          COST_PROBE_FILE: file,
          LOG_LEVEL: process.env.COST_LOG_LEVEL ?? "info",
          ...(target === "baseline" ? { COLLECTOR_WRITE_KEYS: legacyKeys } : {})
        }
      })
      servers.push({ proc, file })
    } else {
      process.env.NODE_OPTIONS = probeArg
      process.env.COST_PROBE_FILE = file
      const proc = await startBareServer({ redisUrl: redis.url, streamKey: `${prefix}-bare:events`, logFile: join(dir, "bare.log") })
      delete process.env.NODE_OPTIONS
      delete process.env.COST_PROBE_FILE
      servers.push({ proc, file })
    }
  }
  for (const { proc } of servers) await load(proc.url, WARMUP, CONNECTIONS, headers)
  for (let r = 0; r < REPEATS; r++) {
    for (const { proc, file } of servers) {
      const gcBefore = scavengeLines(proc).length
      const a = await probe(proc.child.pid!, file)
      const { statuses, ms } = await load(proc.url, REQUESTS, CONNECTIONS, headers, () => {
        // e.g. "SIGTTIN" with COST_NODE_ARGS="--heapsnapshot-signal=SIGTTIN": a heap snapshot under load
        if (process.env.COST_MIDRUN_SIGNAL) process.kill(proc.child.pid!, process.env.COST_MIDRUN_SIGNAL as NodeJS.Signals)
      })
      const b = await probe(proc.child.pid!, file)
      // with COST_NODE_ARGS="--trace-gc-nvp": bytes that survived the young generation (slow scavenges)
      const promoted = scavengeLines(proc).slice(gcBefore).reduce((sum, l) => sum + Number(/ promoted=(\d+)/.exec(l)?.[1] ?? 0), 0)
      const cpu = (b.cpuUs - a.cpuUs) / REQUESTS
      const kb = (b.allocated - a.allocated) / REQUESTS / 1024
      log(
        `${proc.name.padEnd(11)} cpu ${cpu.toFixed(1)} µs/req, alloc ${kb.toFixed(2)} KB/req, ` +
          `scavenges ${b.scavenge - a.scavenge} (pause ${((b.pauseUs - a.pauseUs) / 1000).toFixed(0)} ms, max ${(b.maxPauseUs / 1000).toFixed(1)} ms), ` +
          `mark-compacts ${b.markCompact - a.markCompact}, ` +
          (promoted > 0 ? `promoted ${(promoted / REQUESTS / 1024).toFixed(2)} KB/req, ` : "") +
          `${(REQUESTS / ms * 1000).toFixed(0)} req/s, statuses ${JSON.stringify(statuses)}`
      )
    }
  }
  for (const { proc } of servers) await stopChild(proc.child)
  void stopChild(redis.child)
})

/** Publishes `count` sites (default origins) and returns the write key and an origin of one in the middle. */
async function publishBenchSites(redisUrl: string, prefix: string, count: number) {
  const sites: Array<SiteSnapshot["sites"][number]> = []
  let chosen = { writeKey: "", origin: "" }
  for (let i = 0; i < count; i++) {
    const writeKey = formatKey("write", new Uint8Array(KEY_BYTES).map(() => Math.floor(Math.random() * 256)))
    const serverKey = formatKey("server", new Uint8Array(KEY_BYTES).map(() => Math.floor(Math.random() * 256)))
    sites.push({
      id: i + 1,
      hostnames: [`site-${i}.bench`, `www.site-${i}.bench`],
      origins: null,
      keys: [{ kind: "write", hash: hashKey(writeKey) }, { kind: "server", hash: hashKey(serverKey) }]
    })
    if (i === count >> 1) chosen = { writeKey, origin: `https://www.site-${i}.bench` }
  }
  const client = new Redis(redisUrl)
  try {
    await Effect.runPromise(publishSnapshot(client, prefix, { v: 1, version: 1, sites }))
  } finally {
    client.disconnect()
  }
  return chosen
}
