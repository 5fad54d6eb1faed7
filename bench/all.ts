/**
 * Issue 7 — `npm run bench`: every benchmark in one command, in sequence, each in its own
 * process (so a crash or a leak in one cannot distort the next; every bench stops the
 * processes it started), then one summary table:
 *
 *   1. collector  bench/collector.ts        single-event POST /track/event: Spoolway collector vs a
 *                                           bare node:http → XADD server (max + paced 5K req/s)
 *   2. spool      bench/spool.ts all|drain  spool → primary drain rate (+ failover under load)
 *   3. enrich     bench/enrich.ts           views/s through the writer's enrichment
 *   4. writer     bench/writer.ts           stream → PostgreSQL events/s vs COPY of the same rows
 *   5. e2e        bench/e2e.ts              Spoolway vs the seed's design (bench/seed-baseline.ts),
 *                                           same run, same load: collector stage (mixed and batch of 50),
 *                                           writer stage, end to end HTTP → PostgreSQL (max, paced at
 *                                           10K events/s, capacity ladder), ratios per stage
 *   6. soak       bench/soak.ts             collector RSS over 5 minutes at 2K req/s
 *
 *   npm run bench                                  # everything, full durations (≈ 35–45 min)
 *   BENCH_QUICK=1 npm run bench                    # short variant, smoke test (≈ 4–6 min on a quiet machine)
 *   BENCH_ONLY=e2e,soak npm run bench              # a subset (names above); BENCH_SKIP=spool,enrich
 *   npx node bench/all.ts                          # the same without npm
 *
 * Writes bench/results/all-<stamp>.txt (summary + the e2e tables) and .json; every step's own
 * output goes to bench/results/all-<stamp>-<step>.log and its usual result files.
 * Other knobs are passed through to the steps (see each script's header).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream, readdirSync, readFileSync, statSync } from "node:fs"
import { loadavg } from "node:os"
import { join } from "node:path"
import { BENCH_DIR, log, machineInfo, REPO_DIR, RESULTS_DIR, requireNode24, round, stamp, writeResult } from "./lib.ts"
import { fmt, pgVersion, phaseTable, QUICK } from "./e2e-lib.ts"

requireNode24()

interface Step {
  readonly name: string
  readonly script: string
  readonly args: ReadonlyArray<string>
  readonly env: Record<string, string>
  readonly timeoutMin: number
  /** result file name prefixes this step writes in bench/results */
  readonly results: ReadonlyArray<string>
}

const runStamp = stamp()
const soakS = Number(process.env["BENCH_SOAK_S"] ?? (QUICK ? 20 : 300))
const spoolMode = process.env["BENCH_ALL_SPOOL"] ?? (QUICK ? "drain" : "all")
const resultJson = (name: string) => join(RESULTS_DIR, `all-${runStamp}-${name}.json`)

const STEPS: ReadonlyArray<Step> = [
  {
    name: "collector",
    script: "collector.ts",
    args: [],
    env: QUICK ? { BENCH_DURATION_S: "3", BENCH_WARMUP_S: "1", BENCH_ROUNDS: "1" } : {},
    timeoutMin: QUICK ? 10 : 30,
    results: ["collector-"]
  },
  {
    name: "spool",
    script: "spool.ts",
    args: [spoolMode],
    env: QUICK ? { BENCH_DRAIN_EVENTS: "20000" } : {},
    timeoutMin: QUICK ? 10 : 30,
    results: ["spool-"]
  },
  {
    name: "enrich",
    script: "enrich.ts",
    args: [],
    env: QUICK ? { BENCH_VIEWS: "20000", BENCH_ROUNDS: "1", BENCH_GEO: "0" } : {},
    timeoutMin: QUICK ? 5 : 15,
    results: []
  },
  {
    name: "writer",
    script: "writer.ts",
    args: [],
    env: QUICK ? { BENCH_EVENTS: "20000" } : {},
    timeoutMin: QUICK ? 5 : 20,
    results: ["writer-"]
  },
  {
    name: "e2e",
    script: "e2e.ts",
    args: ["both"],
    env: {
      BENCH_RESULT_JSON: resultJson("e2e"),
      ...(QUICK ? { BENCH_E2E_COLLECTOR_S: "3", BENCH_E2E_DURATION_S: "6", BENCH_E2E_PACED_S: "5", BENCH_E2E_WARMUP_S: "1", BENCH_E2E_DRAIN_MAX_S: "20", BENCH_E2E_WRITER_MAX_S: "15", BENCH_QUIET_WAIT_S: "10" } : {})
    },
    timeoutMin: QUICK ? 15 : 90,
    results: ["e2e-"]
  },
  {
    name: "soak",
    script: "soak.ts",
    args: [],
    env: { BENCH_RESULT_JSON: resultJson("soak"), BENCH_SOAK_S: String(soakS) },
    timeoutMin: Math.ceil(soakS / 60) + 10,
    results: ["soak-"]
  }
]

const only = (process.env["BENCH_ONLY"] ?? "").split(",").map((s) => s.trim()).filter(Boolean)
const skip = (process.env["BENCH_SKIP"] ?? "").split(",").map((s) => s.trim()).filter(Boolean)
const steps = STEPS.filter((s) => (only.length === 0 || only.includes(s.name)) && !skip.includes(s.name))

interface StepOutcome {
  readonly step: Step
  readonly code: number | null
  readonly signal: string | null
  readonly timedOut: boolean
  readonly seconds: number
  readonly stdout: string
  readonly logFile: string
  readonly newFiles: Array<string>
  readonly loadBefore: string
}

let current: ChildProcess | undefined
let interrupted = false
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    interrupted = true
    log(`received ${sig}: stopping the running step`)
    if (current?.pid !== undefined) {
      try {
        process.kill(current.pid, "SIGTERM")
      } catch {}
    }
    setTimeout(() => process.exit(130), 30_000).unref()
  })
}

const listResults = () => {
  try {
    return new Map(readdirSync(RESULTS_DIR).map((f) => [f, statSync(join(RESULTS_DIR, f)).mtimeMs] as const))
  } catch {
    return new Map<string, number>()
  }
}

const runStep = (step: Step): Promise<StepOutcome> =>
  new Promise((resolveStep) => {
    const before = listResults()
    const loadBefore = loadavg().map((x) => round(x, 2)).join(" ")
    const logFile = join(RESULTS_DIR, `all-${runStamp}-${step.name}.log`)
    const out = createWriteStream(logFile)
    const args = ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", join(BENCH_DIR, step.script), ...step.args]
    log(`── step ${step.name}: ${Object.entries(step.env).map(([k, v]) => `${k}=${v} `).join("")}node bench/${step.script} ${step.args.join(" ")} (load average ${loadBefore}; timeout ${step.timeoutMin} min)`)
    const t0 = Date.now()
    const child = spawn(process.execPath, args, { cwd: REPO_DIR, env: { ...process.env, ...step.env }, stdio: ["ignore", "pipe", "pipe"] })
    current = child
    let stdout = ""
    const onData = (d: Buffer) => {
      out.write(d)
      stdout += d.toString()
      process.stdout.write(d)
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      log(`step ${step.name}: timeout after ${step.timeoutMin} min — SIGTERM to pid ${child.pid}`)
      try {
        process.kill(child.pid!, "SIGTERM")
      } catch {}
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          try {
            process.kill(child.pid!, "SIGKILL")
          } catch {}
        }
      }, 30_000).unref()
    }, step.timeoutMin * 60_000)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      current = undefined
      out.end()
      const after = listResults()
      const newFiles = [...after.keys()].filter((f) => !f.startsWith(`all-${runStamp}`) && (before.get(f) === undefined || before.get(f)! < after.get(f)!))
        .filter((f) => step.results.some((p) => f.startsWith(p)))
        .sort()
      resolveStep({ step, code, signal, timedOut, seconds: round((Date.now() - t0) / 1000, 0), stdout, logFile, newFiles, loadBefore })
    })
  })

const readJson = (file: string): any => {
  try {
    return JSON.parse(readFileSync(file, "utf8"))
  } catch {
    return undefined
  }
}
const newest = (o: StepOutcome, prefix: string, ext: string) => {
  const f = o.newFiles.filter((n) => n.startsWith(prefix) && n.endsWith(ext)).pop()
  return f === undefined ? undefined : join(RESULTS_DIR, f)
}
const msOf = (us: number | undefined) => (us === undefined ? "—" : String(round(us / 1000, 2)))
const x = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? `${round(a / b, 2)}×` : "—")

interface Row {
  readonly bench: string
  readonly spoolway: string
  readonly baseline: string
  readonly ratio: string
  readonly note: string
}

const main = async () => {
  const info = { ...machineInfo(), postgres: await pgVersion().catch(() => "unknown") }
  log(`bench/all.ts ${runStamp}${QUICK ? " (BENCH_QUICK=1)" : ""}: steps ${steps.map((s) => s.name).join(", ")}`)
  log("machine", info)
  const outcomes: Array<StepOutcome> = []
  for (const step of steps) {
    if (interrupted) break
    const o = await runStep(step)
    outcomes.push(o)
    log(`── step ${step.name}: ${o.timedOut ? "TIMED OUT" : o.code === 0 ? "ok" : `FAILED (exit ${o.code ?? o.signal})`} in ${o.seconds}s; results: ${o.newFiles.join(", ") || "—"}`)
  }

  // ------------------------------------------------------------------ summary
  const rows: Array<Row> = []
  const notes: Array<string> = []
  let e2eTables = ""
  for (const o of outcomes) {
    const status = o.timedOut ? "TIMED OUT" : o.code === 0 ? "ok" : `FAILED (exit ${o.code ?? o.signal})`
    notes.push(`step ${o.step.name}: ${status}, ${o.seconds}s, load average before ${o.loadBefore}; log ${o.logFile.slice(REPO_DIR.length + 1)}; results ${o.newFiles.join(", ") || "—"}`)
    switch (o.step.name) {
      case "collector": {
        const j = readJson(newest(o, "collector-", ".json") ?? "")
        if (!j) break
        const m = j.medians
        rows.push({
          bench: "collector, single event /track/event, max (req/s = events/s)",
          spoolway: `${fmt(m.spoolwayMax?.reqPerSec)} (p50 ${msOf(m.spoolwayMax?.p50)} / p99 ${msOf(m.spoolwayMax?.p99)} ms)`,
          baseline: m.bareMax ? `bare XADD server ${fmt(m.bareMax.reqPerSec)} (p99 ${msOf(m.bareMax.p99)} ms)` : "—",
          ratio: x(m.spoolwayMax?.reqPerSec, m.bareMax?.reqPerSec),
          note: "bench/collector.ts; baseline = node:http → XADD, no validation (not the seed)"
        })
        rows.push({
          bench: `collector, single event, paced ${j.config?.RATE ?? 5000} req/s (p50 / p99 ms)`,
          spoolway: `${msOf(m.spoolwayPaced?.p50)} / ${msOf(m.spoolwayPaced?.p99)}`,
          baseline: m.barePaced ? `${msOf(m.barePaced.p50)} / ${msOf(m.barePaced.p99)}` : "—",
          ratio: "",
          note: "bench/collector.ts"
        })
        break
      }
      case "spool": {
        const j = readJson(newest(o, "spool-", ".json") ?? "")
        if (!j) break
        if (j.drain) {
          rows.push({
            bench: `spool → primary drain (${j.drain.events} envelopes)`,
            spoolway: `${fmt(j.drain.rate)} events/s`,
            baseline: "—",
            ratio: "",
            note: `complete ${j.drain.complete}, missing ${j.drain.missing}, duplicates ${j.drain.duplicates} (the seed had no spool)`
          })
        }
        for (const [k, v] of Object.entries(j as Record<string, any>)) {
          if (!k.startsWith("failover")) continue
          rows.push({
            bench: `primary SIGKILL + restart under load (${k.replace("failover-", "")})`,
            spoolway: `${fmt(v.reqPerSec)} req/s, 2xx ${v.ok2xx}, 5xx ${v.n5xx}`,
            baseline: "—",
            ratio: "",
            note: `acked but missing ${typeof v.missing === "object" && v.missing !== null ? Object.values(v.missing as Record<string, number>).reduce((a, b) => a + b, 0) : v.missing}, duplicates ${v.duplicates}`
          })
        }
        break
      }
      case "enrich": {
        const lines = o.stdout.split("\n").map((l) => /^(\S.*?)\s{2,}([\d,]+) views\/s/.exec(l)).filter((m): m is RegExpExecArray => m !== null)
        const get = (name: string) => {
          const m = lines.find((l) => l[1]!.trim() === name)
          return m ? Number(m[2]!.replace(/,/g, "")) : undefined
        }
        const cached = get("repeat-heavy, cached (enrichView)")
        const uncached = get("repeat-heavy, uncached baseline")
        rows.push({ bench: "enrichment, repeat-heavy UAs (views/s, one core)", spoolway: fmt(cached), baseline: `uncached parser ${fmt(uncached)}`, ratio: x(cached, uncached), note: "bench/enrich.ts" })
        const geo = get("repeat-heavy, cached + geoip-lite lookup")
        if (geo !== undefined) rows.push({ bench: "enrichment + geoip-lite lookup (views/s)", spoolway: fmt(geo), baseline: "—", ratio: "", note: "" })
        const uniq = get("all-unique UAs, cached (enrichView)")
        const uniqU = get("all-unique UAs, uncached baseline")
        rows.push({ bench: "enrichment, all-unique UAs (views/s)", spoolway: fmt(uniq), baseline: `uncached ${fmt(uniqU)}`, ratio: x(uniq, uniqU), note: "" })
        break
      }
      case "writer": {
        const j = readJson(newest(o, "writer-", ".json") ?? "")
        const r = j?.rounds?.[0]
        if (!r) break
        rows.push({
          bench: `writer: stream → PostgreSQL (${r.events} pre-loaded envelopes, batch ${j.command?.match(/BENCH_BATCH=(\d+)/)?.[1] ?? "500"})`,
          spoolway: `${fmt(r.writerEps)} events/s`,
          baseline: `COPY of the same rows ${fmt(r.copyEps)} rows/s`,
          ratio: x(r.writerEps, r.copyEps),
          note: "bench/writer.ts"
        })
        break
      }
      case "e2e": {
        const j = readJson(o.step.env["BENCH_RESULT_JSON"]!)
        if (!j) break
        for (const r of j.ratios as Array<{ stage: string; spoolway: string; seed: string; ratio: number; note: string }>) {
          rows.push({ bench: r.stage, spoolway: r.spoolway, baseline: `seed ${r.seed}`, ratio: Number.isFinite(r.ratio) ? `${round(r.ratio, 2)}×` : "—", note: r.note })
        }
        notes.push(...(j.verdicts as Array<string>))
        e2eTables = phaseTable(j.phases)
        break
      }
      case "soak": {
        const j = readJson(o.step.env["BENCH_RESULT_JSON"]!)
        if (!j) break
        const r = j.rss
        rows.push({
          bench: `collector RSS over a ${j.config.SOAK_S}s soak at ${j.config.RATE} req/s (MB)`,
          spoolway: `first ${r.first}, last ${r.last}, max ${r.max}`,
          baseline: "—",
          ratio: "",
          note: `slope ${r.slopeMbPerMin} MB/min (after ${r.afterWarmupAt}s: ${r.slopeAfterWarmupMbPerMin} MB/min)` +
            `${j.heap ? `; heapUsed minimum per minute ${j.heap.perMinuteMinMb.join(" → ")} MB` : ""}; p99 ${msOf(j.wrk.latency_us.p99)} ms; non-2xx ${j.wrk.non2xx}`
        })
        if (!j.quiet.quiet || (j.cpu.used?.__other?.pctOfOneCore ?? 0) > 30) notes.push(`soak: disturbed — machine ${j.quiet.busyPct}% busy before, others ${j.cpu.used?.__other?.pctOfOneCore}% during`)
        break
      }
    }
  }
  const table = [
    "| benchmark / stage | Spoolway | baseline | Spoolway / baseline | note |",
    "| --- | ---: | ---: | ---: | --- |",
    ...rows.map((r) => `| ${r.bench} | ${r.spoolway} | ${r.baseline} | ${r.ratio} | ${r.note} |`)
  ].join("\n")
  const text = [
    `# npm run bench — bench/all.ts ${runStamp}${QUICK ? " — BENCH_QUICK=1 (short phases: a smoke test, not figures of record)" : ""}`,
    `machine: ${JSON.stringify(info)}`,
    `load average at the end: ${loadavg().map((v) => round(v, 2)).join(" ")}`,
    "",
    table,
    "",
    ...notes,
    "",
    e2eTables ? `## end-to-end phases (bench/e2e.ts)\n\n${e2eTables}` : ""
  ].join("\n")
  const file = writeResult(`all-${runStamp}.txt`, text + "\n")
  writeResult(`all-${runStamp}.json`, JSON.stringify({ stamp: runStamp, quick: QUICK, machine: info, rows, notes, steps: outcomes.map((o) => ({ name: o.step.name, code: o.code, timedOut: o.timedOut, seconds: o.seconds, results: o.newFiles })) }, null, 2))
  console.log(`\n${table}\n\n${notes.join("\n")}\n\nwritten: ${file}`)
  const failed = outcomes.filter((o) => o.code !== 0 || o.timedOut)
  process.exit(failed.length > 0 || interrupted ? 1 : 0)
}

main().catch((err) => {
  console.error("bench/all.ts failed:", err)
  if (current?.pid !== undefined) {
    try {
      process.kill(current.pid, "SIGTERM")
    } catch {}
  }
  process.exit(1)
})
