/**
 * Issue 7 — collector memory over a soak: `spoolway serve --role collector` (primary + spool
 * redis-servers of its own, AOF everysec) under a moderate, constant, paced load
 * (bench/wrk/e2e.lua `browser` profile: ≈ 70 % views with realistic UAs, single requests;
 * BENCH_SOAK_RATE req/s, default 2000) for BENCH_SOAK_S seconds (default 300). The collector's
 * RSS (VmRSS from /proc) is sampled every BENCH_SOAK_SAMPLE_S (5) seconds; the primary stream
 * is trimmed by this process at every sample (XTRIM MAXLEN 0 — it stands in for the writer, so
 * Redis does not grow; the collector's work is unchanged). Reports first / after 60 s / last /
 * max RSS and the least-squares slope (MB/min) over the whole soak and after the first minute.
 *
 *   npx node bench/soak.ts
 *   BENCH_SOAK_S=60 npx node bench/soak.ts
 *
 * Results: bench/results/soak-<stamp>.{txt,json} (+ the collector's log); BENCH_RESULT_JSON also
 * writes the JSON there.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { loadavg } from "node:os"
import {
  BENCH_DIR,
  cpuSampler,
  getJson,
  isAlive,
  log,
  machineInfo,
  requireNode24,
  RESULTS_DIR,
  round,
  runBench,
  sleep,
  stamp,
  startCollector,
  startRedis,
  stopChild,
  waitQuiet,
  writeResult
} from "./lib.ts"
import { QUICK, rssMb, startE2EWrk } from "./e2e-lib.ts"

requireNode24()

const envNum = (name: string, full: number, quick: number) => {
  const raw = process.env[name]
  return raw !== undefined && raw !== "" ? Number(raw) : QUICK ? quick : full
}
const SOAK_S = envNum("BENCH_SOAK_S", 300, 20)
const RATE = envNum("BENCH_SOAK_RATE", 2000, 2000)
const SAMPLE_S = envNum("BENCH_SOAK_SAMPLE_S", 5, 2)
const CONNECTIONS = envNum("BENCH_SOAK_CONNECTIONS", 20, 20)
const HEAP = process.env["BENCH_SOAK_HEAP"] !== "0"
const AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]

/** least-squares slope of y over x */
const slope = (pts: ReadonlyArray<readonly [number, number]>) => {
  const n = pts.length
  if (n < 2) return NaN
  const mx = pts.reduce((a, [x]) => a + x, 0) / n
  const my = pts.reduce((a, [, y]) => a + y, 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of pts) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? NaN : num / den
}

runBench(async () => {
  const runStamp = stamp()
  const info = machineInfo()
  const loadStart = loadavg().map((x) => round(x, 2)).join(" ")
  log("machine", info)
  const primary = await startRedis({ name: "soak-primary", persistence: AOF })
  const spool = await startRedis({ name: "soak-spool", persistence: AOF })
  const prefix = `soak${Date.now().toString(36)}`
  // heap probe (BENCH_SOAK_HEAP=0 to disable): process.memoryUsage() of the collector every second
  const heapFile = HEAP ? join(RESULTS_DIR, `soak-${runStamp}-heap.jsonl`) : undefined
  if (heapFile !== undefined) {
    process.env["HEAP_PROBE_FILE"] = heapFile
    process.env["BENCH_COLLECTOR_NODE_ARGS"] = `${process.env["BENCH_COLLECTOR_NODE_ARGS"] ?? ""} --import ${join(BENCH_DIR, "heap-probe.mjs")}`.trim()
  }
  const collector = await startCollector({ primaryUrl: primary.url, spoolUrl: spool.url, streamPrefix: prefix, logFile: `bench/results/soak-${runStamp}-collector.log` })
  log(`collector pid ${collector.child.pid} on ${collector.url}; primary ${primary.url}, spool ${spool.url}`)
  const pc = primary.client()
  const quiet = await waitQuiet("soak", 40, QUICK ? 20 : 120)
  const samples: Array<{ t: number; rssMb: number; trimmed: number }> = []
  let trimmed = 0
  const t0 = Date.now()
  const take = async () => {
    const r = rssMb(collector.child.pid)
    trimmed += Number(await pc.xtrim(`${prefix}:events`, "MAXLEN", 0))
    if (r !== null) samples.push({ t: round((Date.now() - t0) / 1000, 1), rssMb: r, trimmed })
  }
  await take()
  log(`soak: paced ${RATE} req/s (browser profile), ${CONNECTIONS} connections, ${SOAK_S}s; RSS every ${SAMPLE_S}s — first ${samples[0]?.rssMb} MB`)
  const cpu = cpuSampler({ collector: collector.child.pid, primary: primary.child.pid, spool: spool.child.pid })
  const pending = startE2EWrk({ url: collector.url, profile: "browser", mode: "paced", rate: RATE, durationS: SOAK_S, connections: CONNECTIONS, tag: "soak" })
  cpu.add("wrk", pending.child.pid)
  let running = true
  const sampler = (async () => {
    let next = Date.now() + SAMPLE_S * 1000
    while (running) {
      await sleep(Math.max(0, next - Date.now()))
      next += SAMPLE_S * 1000
      if (!running) break
      if (!isAlive(collector.child)) throw new Error(`collector died during the soak (exit ${collector.child.exitCode ?? collector.child.signalCode})`)
      await take()
      const s = samples[samples.length - 1]!
      if (Math.round(s.t) % 30 < SAMPLE_S) log(`soak t=${s.t}s RSS ${s.rssMb} MB`)
    }
  })()
  const wrk = await pending.done
  running = false
  await sampler
  const cpuR = cpu.stop()
  await sleep(1000)
  await take()
  const left = await pc.xlen(`${prefix}:events`)
  const spoolLeft = await spool.client().xlen(`${prefix}:spool`)
  const health = await getJson(`${collector.url}/health`)
  const alive = isAlive(collector.child)
  await stopChild(collector.child, 15_000)

  // heap: the lower envelope (minimum heapUsed per minute ≈ live heap after GC), to tell a leak
  // from RSS that V8/malloc keep but do not use
  let heap: { perMinuteMinMb: Array<number>; slopeMbPerMin: number; firstMb: number | null; lastMb: number | null } | undefined
  if (heapFile !== undefined) {
    try {
      const rows = readFileSync(heapFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { t: number; heapUsed: number })
        .filter((r) => r.t >= t0)
      const perMinute: Array<number> = []
      for (const r of rows) {
        const m = Math.floor((r.t - t0) / 60_000)
        const mb = r.heapUsed / 2 ** 20
        perMinute[m] = Math.min(perMinute[m] ?? Infinity, mb)
      }
      // whole minutes of load only (the last, partial bucket holds a few seconds without a GC)
      const mins = perMinute.slice(0, Math.max(1, Math.floor(SOAK_S / 60))).map((x) => round(x, 1))
      heap = {
        perMinuteMinMb: mins,
        slopeMbPerMin: round(slope(mins.map((y, i) => [i, y] as const).slice(1)), 2),
        firstMb: rows[0] ? round(rows[0].heapUsed / 2 ** 20, 1) : null,
        lastMb: rows.length ? round(rows[rows.length - 1]!.heapUsed / 2 ** 20, 1) : null
      }
    } catch {}
  }
  const rss = samples.map((s) => s.rssMb)
  const afterWarm = samples.filter((s) => s.t >= Math.min(60, SOAK_S / 5))
  const result = {
    stamp: runStamp,
    machine: info,
    quick: QUICK,
    config: { SOAK_S, RATE, SAMPLE_S, CONNECTIONS, profile: "browser" },
    quiet,
    loadavg: { start: loadStart, end: loadavg().map((x) => round(x, 2)).join(" ") },
    wrk: { ...wrk.json, reqPerSec: wrk.reqPerSec, eventsPerSec: wrk.eventsPerSec, non2xx: wrk.non2xx, socketErrors: wrk.socketErrors },
    rss: {
      first: rss[0],
      afterWarmup: afterWarm[0]?.rssMb ?? null,
      afterWarmupAt: afterWarm[0]?.t ?? null,
      last: rss[rss.length - 1],
      max: Math.max(...rss),
      min: Math.min(...rss),
      slopeMbPerMin: round(slope(samples.map((s) => [s.t / 60, s.rssMb] as const)), 2),
      slopeAfterWarmupMbPerMin: round(slope(afterWarm.map((s) => [s.t / 60, s.rssMb] as const)), 2)
    },
    heap: heap ?? null,
    events: { accepted: wrk.json.accepted_events, inStream: trimmed + left, spoolLeft },
    cpu: cpuR,
    collectorAlive: alive,
    health: health.body,
    samples
  }
  const r = result.rss
  const lines = [
    `# bench/soak.ts run ${runStamp}${QUICK ? " — BENCH_QUICK=1 (short)" : ""}`,
    `machine: ${JSON.stringify(info)}`,
    `load average at start ${loadStart}, at end ${result.loadavg.end}; before the soak the machine was ${quiet.busyPct}% of one core busy${quiet.quiet ? "" : " (NOT quiet)"}; others during the soak ${cpuR.used["__other"]?.pctOfOneCore ?? "?"}%`,
    `load: wrk paced ${RATE} req/s (bench/wrk/e2e.lua browser profile), ${CONNECTIONS} connections, ${SOAK_S}s → ${round(wrk.reqPerSec, 0)} req/s, ${round(wrk.eventsPerSec, 0)} events/s, p50 ${round(wrk.json.latency_us.p50 / 1000, 2)} ms, p99 ${round(wrk.json.latency_us.p99 / 1000, 2)} ms, non-2xx ${wrk.non2xx}, socket errors ${wrk.socketErrors}`,
    `events accepted ${wrk.json.accepted_events}, written to the primary stream ${trimmed + left} (in-flight at the end may add a few), spool left ${spoolLeft}; collector alive at end: ${alive}`,
    `collector RSS: first ${r.first} MB, at ${r.afterWarmupAt}s ${r.afterWarmup} MB, last ${r.last} MB, max ${r.max} MB, min ${r.min} MB; slope ${r.slopeMbPerMin} MB/min overall, ${r.slopeAfterWarmupMbPerMin} MB/min after ${r.afterWarmupAt}s`,
    heap ? `collector heapUsed: minimum per minute (≈ live heap) ${heap.perMinuteMinMb.join(", ")} MB → slope ${heap.slopeMbPerMin} MB/min from minute 1 on (probe: bench/heap-probe.mjs, ${heapFile})` : "heap probe off",
    `cpu: ${JSON.stringify(cpuR)}`,
    `samples (t s: RSS MB): ${samples.map((s) => `${s.t}:${s.rssMb}`).join(" ")}`
  ]
  const file = writeResult(`soak-${runStamp}.txt`, lines.join("\n") + "\n")
  const json = JSON.stringify({ ...result, textFile: file }, null, 2)
  writeResult(`soak-${runStamp}.json`, json)
  if (process.env["BENCH_RESULT_JSON"]) writeFileSync(process.env["BENCH_RESULT_JSON"], json)
  console.log(lines.slice(2).join("\n") + `\nwritten: ${file}`)
})
