/**
 * Issue 7 — HTTP fuzz of the collector's tracking API.
 *
 *   npx node fuzz/http.ts [--requests 100000] [--concurrency 16] [--seed S] [--out FILE]
 *   npx node fuzz/http.ts --seed S --only 123,456      # replay single cases (prints their bytes)
 *   npx node fuzz/http.ts --seed S --dump 123          # print one case's request bytes, send nothing
 *
 * Starts its own redis-server (free port, --save "" --appendonly no) and Spoolway's collector
 * as a child process (`src/main/cli.ts serve --role collector`, the Node 24 running this script)
 * with COLLECTOR_WRITE_KEYS=fuzz-key, RATE_LIMIT_PER_MINUTE=0, TRUSTED_PROXIES=10.0.0.0/8
 * (so loopback is untrusted and forwarded headers must be ignored), STREAM_PREFIX=fuzz.
 * Sends the generated cases (fuzz/generators.ts) over raw sockets (fuzz/client.ts), then
 * checks the stream (fuzz/run.ts). Samples the collector's RSS (/proc) and heap (a
 * preloaded probe, bench/heap-probe.mjs) every 2 s and checks /health/live.
 *
 * Exit code 1 on any 5xx, any answer outside the contract, any stored envelope not
 * backed by a 202 (or a 202 not backed by envelopes), any undecodable envelope, a crash
 * or a failed liveness check, or RSS growth over --mem-threshold-mb (50) after warm-up.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { cpus, loadavg, tmpdir, totalmem } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { defaultConfig, makeCase, makePools, printable } from "./generators.ts"
import { connErrorSummary, formatExamples, formatTable, formatViolations, runCases, verifyStreams } from "./run.ts"

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, "..")

// ---------------------------------------------------------------------------
// arguments

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const REQUESTS = Number(flag("requests") ?? 100_000)
const CONCURRENCY = Number(flag("concurrency") ?? 16)
const SEED = Number(flag("seed") ?? (Date.now() % 2_147_483_647))
const MEM_THRESHOLD_MB = Number(flag("mem-threshold-mb") ?? 50)
const OUT = flag("out")
const ONLY = flag("only")?.split(",").map(Number)
const DUMP = flag("dump")
const PREFIX = "fuzz"
const WRITE_KEY = "fuzz-key"

const major = Number(process.versions.node.split(".")[0])
if (major < 22) {
  console.error(`Node ${process.versions.node} is too old: run with the project's Node 24 (npx node fuzz/http.ts)`)
  process.exit(2)
}

const out: Array<string> = []
const say = (line = "") => {
  console.log(line)
  out.push(line)
}
const log = (...parts: Array<unknown>) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...parts)
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// ---------------------------------------------------------------------------
// children: started here, stopped here by pid

const children = new Set<ChildProcess>()
const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null
const stopChild = async (c: ChildProcess, graceMs = 5000) => {
  if (alive(c) && c.pid !== undefined) {
    const exited = new Promise<void>((r) => c.once("exit", () => r()))
    try {
      process.kill(c.pid, "SIGTERM")
    } catch {}
    const ok = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])
    if (!ok && alive(c)) {
      try {
        process.kill(c.pid, "SIGKILL")
      } catch {}
      await Promise.race([exited, sleep(2000)])
    }
  }
  children.delete(c)
}
const tempDirs: Array<string> = []
const cleanup = async () => {
  for (const c of [...children].reverse()) await stopChild(c)
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
}
process.on("exit", () => {
  for (const c of children) if (alive(c) && c.pid !== undefined) try {
    process.kill(c.pid, "SIGKILL")
  } catch {}
})
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping children`)
    cleanup().finally(() => process.exit(130))
  })
}

const freePort = () =>
  new Promise<number>((res, rej) => {
    const srv = createServer()
    srv.on("error", rej)
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address()
      const port = typeof a === "object" && a !== null ? a.port : 0
      srv.close(() => res(port))
    })
  })

const startRedis = async () => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "spoolway-fuzz-redis-"))
  tempDirs.push(dir)
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", join(dir, "redis.log")], { stdio: "ignore" })
  children.add(child)
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    if (!alive(child)) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode})`)
    const c = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    c.on("error", () => {})
    try {
      await c.connect()
      if ((await c.ping()) === "PONG") {
        c.disconnect()
        return { port, url, child }
      }
    } catch {}
    c.disconnect()
    await sleep(50)
  }
  throw new Error(`redis-server on ${port} did not answer`)
}

/** `serve --role collector` when the command tree (src/main/cli.ts, or SpoolwayCommand.ts it imports) has the role flag, else plain `serve`. */
const serveArgs = (): Array<string> => {
  const cli = ["src/main/cli.ts", "src/main/SpoolwayCommand.ts"]
    .map((file) => existsSync(join(REPO, file)) ? readFileSync(join(REPO, file), "utf8") : "")
    .join("\n")
  return /"collector"/.test(cli) && /role/.test(cli) ? ["serve", "--role", "collector"] : ["serve"]
}

const getJson = async (url: string, timeoutMs = 2000) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, body }
}

const startCollector = async (redisUrl: string, logFile: string, heapFile: string) => {
  const port = await freePort()
  const cmd = [
    "--experimental-strip-types",
    "--no-warnings=ExperimentalWarning",
    "--import",
    join(REPO, "bench", "heap-probe.mjs"),
    "src/main/cli.ts",
    ...serveArgs()
  ]
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    PRIMARY_REDIS_URL: redisUrl,
    SPOOL_REDIS_URL: redisUrl,
    STREAM_PREFIX: PREFIX,
    RATE_LIMIT_PER_MINUTE: "0",
    COLLECTOR_WRITE_KEYS: WRITE_KEY,
    TRUSTED_PROXIES: "10.0.0.0/8",
    LOG_LEVEL: "warn",
    HEAP_PROBE_FILE: heapFile
  }
  const fd = openSync(logFile, "w")
  const child = spawn(process.execPath, cmd, { cwd: REPO, env, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  children.add(child)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  let last = ""
  while (Date.now() < deadline) {
    if (!alive(child)) throw new Error(`collector exited (${child.exitCode ?? child.signalCode}):\n${readFileSync(logFile, "utf8").slice(-2000)}`)
    try {
      const r = await getJson(`${url}/health`, 1000)
      last = `${r.status} ${JSON.stringify(r.body)}`
      if (r.status === 200 && r.body?.primaryHealthy === true) return { port, url, child, cmd: `${process.execPath} ${cmd.join(" ")}` }
    } catch (e) {
      last = String(e)
    }
    await sleep(200)
  }
  throw new Error(`collector not healthy within 60 s (last: ${last})`)
}

// ---------------------------------------------------------------------------
// memory

interface MemSample {
  readonly t: number
  readonly done: number
  readonly rss: number | undefined
  readonly heapUsed: number | undefined
}

const rssOf = (pid: number): number | undefined => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

const lastHeap = (file: string): number | undefined => {
  try {
    const lines = readFileSync(file, "utf8").trim().split("\n")
    return JSON.parse(lines[lines.length - 1]!).heapUsed
  } catch {
    return undefined
  }
}

const mb = (bytes: number | undefined) => (bytes === undefined ? "?" : (bytes / 1024 / 1024).toFixed(1))

// ---------------------------------------------------------------------------

const main = async (): Promise<number> => {
  if (DUMP !== undefined) {
    const port = flag("port") ?? "0"
    const cfg = defaultConfig(SEED, `127.0.0.1:${port}`)
    const pools = await makePools(SEED)
    for (const id of DUMP.split(",").map(Number)) {
      const fc = makeCase(cfg, pools, id)
      console.log(`case ${id} [${fc.category}] ${fc.label}\nexpect ${JSON.stringify(fc.expect)} fresh=${fc.fresh} responses=${fc.responses}\n${fc.bytes.length} bytes:\n${printable(fc.bytes, 1_000_000)}\n`)
    }
    return 0
  }

  const started = Date.now()
  say(`# fuzz/http.ts — seed ${SEED}, ${ONLY ? `cases ${ONLY.join(",")}` : `${REQUESTS} cases`}, concurrency ${CONCURRENCY}`)
  say(`# reproduce: npx node fuzz/http.ts --seed ${SEED} --requests ${REQUESTS} --concurrency ${CONCURRENCY}`)
  say(`# machine: ${cpus().length}× ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}; load ${loadavg().map((x) => x.toFixed(2)).join(" ")}`)

  const runDir = mkdtempSync(join(tmpdir(), "spoolway-fuzz-"))
  tempDirs.push(runDir)
  const logFile = join(runDir, "collector.log")
  const heapFile = join(runDir, "heap.jsonl")
  const redisServer = await startRedis()
  log(`redis-server pid ${redisServer.child.pid} on ${redisServer.url}`)
  const collector = await startCollector(redisServer.url, logFile, heapFile)
  const pid = collector.child.pid!
  say(`# collector: pid ${pid} on ${collector.url}: ${collector.cmd}`)
  say(`#   env PORT=${collector.port} HOST=127.0.0.1 PRIMARY_REDIS_URL=SPOOL_REDIS_URL=${redisServer.url} STREAM_PREFIX=${PREFIX} RATE_LIMIT_PER_MINUTE=0 COLLECTOR_WRITE_KEYS=${WRITE_KEY} TRUSTED_PROXIES=10.0.0.0/8 LOG_LEVEL=warn`)

  const cfg = defaultConfig(SEED, `127.0.0.1:${collector.port}`)
  const t0 = Date.now()
  const pools = await makePools(SEED)
  log(`pools sampled in ${Date.now() - t0} ms: ${Object.entries(pools.valid).map(([k, v]) => `${k} ${v.length}`).join(", ")}; items ${pools.eventItems.length}/${pools.interactionItems.length}; json ${pools.json.length}`)

  // memory + liveness sampler
  const samples: Array<MemSample> = []
  const liveFailures: Array<string> = []
  let done = 0
  let sampling = true
  const sampleOnce = async () => {
    samples.push({ t: Date.now(), done, rss: rssOf(pid), heapUsed: lastHeap(heapFile) })
    if (!alive(collector.child)) {
      liveFailures.push(`collector exited (${collector.child.exitCode ?? collector.child.signalCode}) after ${done} cases`)
      return
    }
    try {
      const r = await getJson(`${collector.url}/health/live`, 3000)
      if (r.status !== 200) liveFailures.push(`/health/live → ${r.status} after ${done} cases`)
    } catch (e) {
      liveFailures.push(`/health/live failed after ${done} cases: ${(e as Error).message}`)
    }
  }
  await sampleOnce()
  const sampler = (async () => {
    while (sampling) {
      await sleep(2000)
      if (sampling) await sampleOnce()
    }
  })()

  const run = await runCases({
    port: collector.port,
    cfg,
    pools,
    requests: REQUESTS,
    concurrency: CONCURRENCY,
    ...(ONLY ? {
      only: ONLY,
      onCase: (fc, ex, reasons) => {
        console.log(`\n--- case ${fc.id} [${fc.category}] ${fc.label}\nexpect ${JSON.stringify(fc.expect)} fresh=${fc.fresh} responses=${fc.responses}`)
        console.log(`request (${fc.bytes.length} bytes):\n${printable(fc.bytes, 3000)}`)
        for (const r of ex.responses) console.log(`answer: ${r.status} ${JSON.stringify(r.headers)} ${r.body.toString("utf8").slice(0, 500)}`)
        console.log(`exchange: ${ex.responses.length} answer(s), closed=${ex.closed}, error=${ex.error ?? "-"}, ${ex.ms} ms; violations: ${reasons.length ? reasons.join(" | ") : "none"}`)
      }
    } : {}),
    onProgress: (n, total) => {
      done = n
      const last = samples[samples.length - 1]
      log(`${n}/${total} cases, ${((n / (Date.now() - t0)) * 1000).toFixed(0)}/s, collector rss ${mb(last?.rss)} MB heap ${mb(last?.heapUsed)} MB`)
    }
  })
  done = run.cases
  sampling = false
  await sampler
  await sleep(2500) // let the probe write one more line
  await sampleOnce()
  const health = await getJson(`${collector.url}/health`).catch((e) => ({ status: 0, body: String(e) }))
  const collectorAlive = alive(collector.child)

  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 })
  const stream = await verifyStreams(redis, PREFIX, run)
  redis.disconnect()

  // memory verdict: RSS at the first sample past 20 % of the cases (warm-up) vs the last
  const withRss = samples.filter((s) => s.rss !== undefined)
  const warm = withRss.find((s) => s.done >= run.cases * 0.2) ?? withRss[0]
  const last = withRss[withRss.length - 1]
  const maxRss = Math.max(...withRss.map((s) => s.rss!))
  const growth = warm && last ? last.rss! - warm.rss! : 0
  const heaps = samples.filter((s) => s.heapUsed !== undefined)
  const warmHeap = heaps.find((s) => s.done >= run.cases * 0.2) ?? heaps[0]
  const lastHeapS = heaps[heaps.length - 1]
  const memOk = growth <= MEM_THRESHOLD_MB * 1024 * 1024

  const collectorLog = existsSync(logFile) ? readFileSync(logFile, "utf8") : ""
  const logLines = collectorLog.split("\n").filter((l) => l.trim() !== "")

  say("")
  say(`## Answers (${run.cases} cases = ${run.requests} HTTP requests in ${(run.ms / 1000).toFixed(1)} s, ${((run.requests / run.ms) * 1000).toFixed(0)} req/s)`)
  say("")
  say(formatTable(run))
  say("")
  say("non-JSON = answers without a JSON body (Node's HTTP parser rejecting malformed requests, router 404s); " +
    "allowed only for HTTP-level malformed cases (header-injection, content-length, malformed chunking, routing, …), a violation anywhere else.")
  say("conn err = cases that ended in timeout / reset / early close before all answers (expected for malformed framing):")
  say(connErrorSummary(run))
  say("")
  say("One example per category and status (case label → answer):")
  say(formatExamples(run))
  say("")
  say("## Stream")
  const lost = stream.answerLost.length
  say(`primary stream ${PREFIX}:events: ${stream.primary} envelopes; spool ${PREFIX}:spool: ${stream.spool}; accepted by 202 answers: ${run.acceptedEvents} ` +
    `(${stream.primary + stream.spool === run.acceptedEvents ? "exact match" : `differs by ${stream.primary + stream.spool - run.acceptedEvents}`})`)
  say(`stored without a 202 reaching the client (valid request + malformed bytes pipelined behind it on one connection): ${lost} case(s)` +
    (lost ? ` — e.g. case ${stream.answerLost[0]!.id} (${stream.answerLost[0]!.label}); replay: --seed ${SEED} --only ${stream.answerLost.slice(0, 5).map((v) => v.id).join(",")}` : ""))
  say(`decoded with the shared Schema: ${stream.decoded}; undecodable: ${stream.undecodable}`)
  for (const [reason, n] of stream.undecodableReasons) say(`  ${n}× ${reason}`)
  say(`stored envelopes per category (every one checked: decodes, attributable to its request, edge.ip = 127.0.0.1): ` +
    [...stream.byCategory].map(([k, n]) => `${k} ${n}`).join(", "))
  const forged = (stream.byCategory.get("forged-xff") ?? 0) + (stream.byCategory.get("header-injection") ?? 0)
  const badIp = stream.violations.filter((v) => v.check === "edge-ip").length
  say(`forged X-Forwarded-For / X-Real-IP / Forwarded from the untrusted loopback peer: ${forged} stored envelopes from forged-xff + header-injection cases; edge.ip ≠ 127.0.0.1: ${badIp}`)
  say("")
  say("## Collector process")
  say(`alive at the end: ${collectorAlive}; /health/live failures: ${liveFailures.length}${liveFailures.length ? ` (${liveFailures.slice(0, 5).join("; ")})` : ""}`)
  say(`/health at the end: ${health.status} ${JSON.stringify(health.body)}`)
  say(`log lines at LOG_LEVEL=warn: ${logLines.length}${logLines.length ? `; first: ${logLines.slice(0, 3).map((l) => l.slice(0, 300)).join(" | ")}` : ""}`)
  say(`RSS samples every 2 s (MB): ${withRss.map((s) => mb(s.rss)).join(" ")}`)
  say(`heapUsed samples (MB):      ${heaps.map((s) => mb(s.heapUsed)).join(" ")}`)
  say(`RSS first ${mb(withRss[0]?.rss)} MB, after warm-up (${warm?.done ?? 0} cases) ${mb(warm?.rss)} MB, last ${mb(last?.rss)} MB, max ${mb(maxRss)} MB; ` +
    `growth after warm-up ${mb(growth)} MB (threshold ${MEM_THRESHOLD_MB} MB): ${memOk ? "flat" : "GROWING"}`)
  say(`heapUsed first ${mb(heaps[0]?.heapUsed)} MB, after warm-up ${mb(warmHeap?.heapUsed)} MB, last ${mb(lastHeapS?.heapUsed)} MB, max ${mb(Math.max(...heaps.map((s) => s.heapUsed!)))} MB`)
  say("")
  const violations = [...run.violations, ...stream.violations]
  say("## Violations")
  say(formatViolations(violations, cfg, pools))
  const failures: Array<string> = []
  const fivexx = [...run.tally.values()].reduce((n, t) => n + t.s5xx, 0)
  if (fivexx > 0) failures.push(`${fivexx} × 5xx`)
  if (run.violations.length > 0) failures.push(`${run.violations.length} answer violation(s)`)
  if (stream.violations.length > 0) failures.push(`${stream.violations.length} stream violation(s) (${stream.undecodable} undecodable)`)
  if (!collectorAlive || liveFailures.length > 0) failures.push("collector crashed or failed /health/live")
  if (!memOk) failures.push(`RSS grew ${mb(growth)} MB after warm-up`)
  say("")
  say(`## Verdict: ${failures.length === 0 ? "PASS" : `FAIL — ${failures.join("; ")}`} (total ${((Date.now() - started) / 1000).toFixed(0)} s, seed ${SEED})`)

  if (OUT) {
    writeFileSync(OUT, out.join("\n") + "\n")
    log(`written: ${OUT}`)
  }
  await stopChild(collector.child)
  return failures.length === 0 ? 0 : 1
}

main().then(
  async (code) => {
    await cleanup()
    process.exit(code)
  },
  async (err) => {
    console.error("fuzz failed:", err)
    await cleanup()
    process.exit(1)
  }
)
