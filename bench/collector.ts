/**
 * Issue 2 — collector throughput and latency.
 *
 *   npx node --experimental-strip-types --no-warnings=ExperimentalWarning bench/collector.ts
 *
 * Starts its own redis-server (free port, `--save "" --appendonly no`), the bare baseline
 * (bench/bare-server.mjs: read body → XADD → 202) and Spoolway's collector (src/main/cli.ts serve
 * --role collector, PRIMARY_REDIS_URL = SPOOL_REDIS_URL = that redis, RATE_LIMIT_PER_MINUTE=0),
 * one warm-up each, then BENCH_ROUNDS rounds of max-throughput phases and of paced 5K req/s
 * phases, alternating bare/spoolway in ABBA order (the machine is shared: alternation spreads
 * other sessions' load over both). wrk: keep-alive, 50 connections, single-event POST
 * /track/event. After every phase the stream growth is compared with the 2xx count.
 * Results: bench/results/collector-<stamp>.{txt,json} (+ the collector's log).
 *
 * Env knobs: BENCH_DURATION_S (20), BENCH_WARMUP_S (5), BENCH_ROUNDS (2), BENCH_CONNECTIONS (50),
 * BENCH_WRK_THREADS (1), BENCH_RATE (5000), BENCH_AOF (unset: no persistence; `always` / `everysec`: the
 * redis-server append-only with that fsync policy, as the embedded servers run); diagnostics: BENCH_SKIP_BARE=1,
 * BENCH_COLLECTOR_NODE_ARGS="--trace-gc" (or "--cpu-prof --cpu-prof-dir=/tmp/x"), see bench/diag.ts. */
import {
  type HttpServerProc,
  collectorNodeArgs,
  cpuSampler,
  getJson,
  log,
  machineInfo,
  median,
  ms,
  type RedisServer,
  requireNode24,
  round,
  runBench,
  runWrk,
  startWrk,
  sleep,
  stamp,
  startBareServer,
  startCollector,
  startRedis,
  stopChild,
  type WrkResult,
  assertAlive,
  waitQuiet,
  writeResult
} from "./lib.ts"
import { loadavg } from "node:os"

requireNode24()

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 20)
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const THREADS = Number(process.env.BENCH_WRK_THREADS ?? 1)
const RATE = Number(process.env.BENCH_RATE ?? 5000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
/** BENCH_AOF: the redis-server's appendfsync policy with the append-only file on (unset: no persistence) */
const AOF = process.env.BENCH_AOF
if (AOF !== undefined && AOF !== "always" && AOF !== "everysec") throw new Error(`BENCH_AOF: always or everysec, not ${AOF}`)

interface PhaseResult {
  readonly name: string
  readonly mode: "max" | "paced"
  readonly wrk: WrkResult
  readonly stored: number
  readonly cpu: ReturnType<ReturnType<typeof cpuSampler>["stop"]>
  readonly check: string
  readonly checkOk: boolean
}

runBench(async () => {
  const runStamp = stamp()
  const info = machineInfo()
  const loadStart = loadavg().map((x) => round(x, 2))
  log("machine", info)
  const redis: RedisServer = await startRedis({ name: "collector-redis", ...(AOF === undefined ? {} : { persistence: ["--appendonly", "yes", "--appendfsync", AOF] }) })
  log(`redis-server pid ${redis.child.pid} on ${redis.url}`)
  const rc = redis.client()
  const prefix = `bench-collector-${Date.now()}`
  const bareKey = `${prefix}-bare:events`
  const spoolwayKey = `${prefix}:events`
  const phases: Array<PhaseResult> = []
  const raw: Array<string> = []
  const quietness: Array<string> = []

  const phase = async (name: string, server: HttpServerProc, key: string, mode: "max" | "paced", warmup: boolean) => {
    if (warmup && WARMUP_S > 0) {
      log(`${name}: warm-up ${WARMUP_S}s`)
      const w = await runWrk({ url: server.url, connections: CONNECTIONS, threads: THREADS, durationS: WARMUP_S, mode, rate: RATE, tag: "warm" })
      raw.push(`### ${name} — warm-up (not counted)\n${w.raw}`)
    }
    await sleep(1000)
    const quiet = await waitQuiet(name)
    assertAlive(server, `before phase ${name}`)
    quietness.push(`${name}: machine busy ${quiet.busyPct}% of one core before the phase${quiet.quiet ? "" : " (NOT quiet)"}`)
    const before = await rc.xlen(key)
    log(`${name}: ${mode === "max" ? "max throughput" : `paced ${RATE} req/s`}, ${CONNECTIONS} connections, ${DURATION_S}s`)
    const sampler = cpuSampler({ server: server.child.pid, redis: redis.child.pid })
    const pending = startWrk({ url: server.url, connections: CONNECTIONS, threads: THREADS, durationS: DURATION_S, mode, rate: RATE, tag: name.replace(/\W+/g, "") })
    sampler.add("wrk", pending.child.pid)
    const wrk = await pending.done.catch((e) => {
      assertAlive(server, `during phase ${name}`)
      throw e
    })
    const cpu = sampler.stop()
    await sleep(1000) // answers still in flight when wrk stopped land now
    const stored = (await rc.xlen(key)) - before
    const inflight = wrk.json.sent - wrk.json.requests
    const checkOk = stored >= wrk.ok2xx && stored <= wrk.ok2xx + inflight
    const check = stored === wrk.ok2xx
      ? `stream grew by ${stored} = 2xx ${wrk.ok2xx} (exact)`
      : `stream grew by ${stored}, 2xx ${wrk.ok2xx}: ${stored - wrk.ok2xx} more, ${inflight} requests were in flight when wrk stopped ` +
        `(sent ${wrk.json.sent}, answered ${wrk.json.requests})${checkOk ? " — consistent" : " — MISMATCH"}`
    log(`${name}: ${round(wrk.reqPerSec, 0)} req/s p50 ${ms(wrk.json.latency_us.p50)} ms p99 ${ms(wrk.json.latency_us.p99)} ms non-2xx ${wrk.non2xx}; ${check}`)
    raw.push(`### ${name}\n${wrk.raw}\ncpu: ${JSON.stringify(cpu)}\ncheck: ${check}\n`)
    const result: PhaseResult = { name, mode, wrk, stored, cpu, check, checkOk }
    phases.push(result)
    return result
  }

  // both servers run side by side (the idle one costs nothing); phases alternate between them,
  // in ABBA order over the rounds, so background load from other sessions hits both alike.
  const skipBare = process.env.BENCH_SKIP_BARE === "1" // diagnostic runs only
  const bare = skipBare
    ? undefined
    : await startBareServer({ redisUrl: redis.url, streamKey: bareKey, logFile: `/tmp/spoolway-bench-bare-${runStamp}.log` })
  if (bare) log(`bare server pid ${bare.child.pid} on ${bare.url}`)
  const collectorLog = `bench/results/collector-${runStamp}.log`
  const collector = await startCollector({
    primaryUrl: redis.url,
    spoolUrl: redis.url,
    streamPrefix: prefix,
    logFile: collectorLog
  })
  log(`collector pid ${collector.child.pid} on ${collector.url}`)

  const targets: Array<{ label: string; server: HttpServerProc; key: string }> = [
    ...(bare ? [{ label: "bare", server: bare, key: bareKey }] : []),
    { label: "spoolway", server: collector, key: spoolwayKey }
  ]
  for (const t of targets) {
    if (WARMUP_S <= 0) break
    log(`${t.label}: warm-up ${WARMUP_S}s`)
    const w = await runWrk({ url: t.server.url, connections: CONNECTIONS, threads: THREADS, durationS: WARMUP_S, mode: "max", tag: "warm" })
    raw.push(`### ${t.label} — warm-up (not counted)\n${w.raw}`)
  }
  for (const mode of ["max", "paced"] as const) {
    for (let r = 1; r <= ROUNDS; r++) {
      const order = r % 2 === 1 ? targets : [...targets].reverse()
      for (const t of order) {
        await phase(`${t.label} ${mode === "max" ? "max" : `paced ${RATE}`} #${r}`, t.server, t.key, mode, false)
      }
    }
  }
  if (bare) await stopChild(bare.child)
  const pick = (label: string, mode: "max" | "paced") => phases.filter((p) => p.name.startsWith(`${label} `) && p.mode === mode)
  const summary = (label: string, mode: "max" | "paced") => {
    const ps = pick(label, mode)
    return {
      reqPerSec: median(ps.map((p) => p.wrk.reqPerSec)),
      p50: median(ps.map((p) => p.wrk.json.latency_us.p50)),
      p99: median(ps.map((p) => p.wrk.json.latency_us.p99)),
      bestP99: Math.min(...ps.map((p) => p.wrk.json.latency_us.p99)),
      non2xx: ps.reduce((a, p) => a + p.wrk.non2xx, 0)
    }
  }
  const spoolMaxS = summary("spoolway", "max")
  const spoolPacedS = summary("spoolway", "paced")
  const bareMaxS = bare ? summary("bare", "max") : undefined
  const barePacedS = bare ? summary("bare", "paced") : undefined
  const roundRatios = bare
    ? pick("spoolway", "max").map((p, i) => round(p.wrk.reqPerSec / (pick("bare", "max")[i]?.wrk.reqPerSec ?? NaN), 2))
    : []
  const health = await getJson(`${collector.url}/health`)
  const spoolLeft = await rc.xlen(`${prefix}:spool`)
  const collectorAlive = collector.child.exitCode === null
  await stopChild(collector.child)

  // report
  const ratio = bareMaxS ? spoolMaxS.reqPerSec / bareMaxS.reqPerSec : NaN
  const row = (p: PhaseResult) =>
    `| ${p.name}${(p.cpu.used["__other"]?.pctOfOneCore ?? 0) > 30 ? " (*)" : ""} | ${round(p.wrk.reqPerSec, 0)} | ${ms(p.wrk.json.latency_us.p50)} | ${ms(p.wrk.json.latency_us.p99)} | ` +
    `${ms(p.wrk.json.latency_us.p999)} | ${ms(p.wrk.json.latency_us.max)} | ${p.wrk.ok2xx} | ${p.wrk.non2xx} | ` +
    `${p.wrk.json.errors.connect + p.wrk.json.errors.read + p.wrk.json.errors.write + p.wrk.json.errors.timeout} | ` +
    `${p.stored} | ${p.cpu.used["server"]?.pctOfOneCore ?? "?"}% / ${p.cpu.used["redis"]?.pctOfOneCore ?? "?"}% / ${p.cpu.used["wrk"]?.pctOfOneCore ?? "?"}% / ${p.cpu.used["__other"]?.pctOfOneCore ?? "?"}% |`
  const table = [
    "| phase | req/s | p50 ms | p99 ms | p99.9 ms | max ms | 2xx | non-2xx | socket errors | stream growth | CPU % of one core: server / redis / wrk / rest of machine |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...phases.map(row)
  ].join("\n")
  const verdicts = [
    `(*) = other processes on the machine used more than 30% of one core during the phase: figures disturbed`,
    `medians over ${ROUNDS} round(s): ` + [
      bareMaxS && `bare max ${round(bareMaxS.reqPerSec, 0)} req/s (p99 ${ms(bareMaxS.p99)} ms)`,
      `spoolway max ${round(spoolMaxS.reqPerSec, 0)} req/s (p99 ${ms(spoolMaxS.p99)} ms)`,
      barePacedS && `bare paced p50 ${ms(barePacedS.p50)} / p99 ${ms(barePacedS.p99)} ms`,
      `spoolway paced p50 ${ms(spoolPacedS.p50)} / p99 ${ms(spoolPacedS.p99)} ms (best round ${ms(spoolPacedS.bestP99)} ms)`
    ].filter(Boolean).join("; "),
    `throughput ratio spoolway/bare (medians) = ${round(ratio, 2)} (per round: ${roundRatios.join(", ")}) (target >= 0.6): ${ratio >= 0.6 ? "MET" : "NOT MET"}`,
    `paced ${RATE}: spoolway median p99 ${ms(spoolPacedS.p99)} ms (target < 5 ms): ${spoolPacedS.p99 < 5000 ? "MET" : "NOT MET"}`,
    `non-2xx: spoolway ${spoolMaxS.non2xx + spoolPacedS.non2xx}, bare ${(bareMaxS?.non2xx ?? 0) + (barePacedS?.non2xx ?? 0)}`,
    ...phases.map((p) => `${p.name}: ${p.check}`),
    `spoolway spool stream left: ${spoolLeft} entries; collector alive at end: ${collectorAlive}`,
    `collector /health at end: ${health.status} ${JSON.stringify(health.body)}`
  ]
  const header = [
    `# bench/collector.ts run ${runStamp}`,
    `machine: ${JSON.stringify(info)}`,
    `load average at start: ${loadStart.join(" ")}, at end: ${loadavg().map((x) => round(x, 2)).join(" ")} (other sessions may share this machine)`,
    ...quietness,
    `collector node flags: ${["--experimental-strip-types", "--no-warnings=ExperimentalWarning", ...collectorNodeArgs()].join(" ")}`,
    `redis-server persistence: ${AOF === undefined ? "none (--appendonly no)" : `--appendonly yes --appendfsync ${AOF} (BENCH_AOF)`}`,
    `wrk: ${THREADS} thread(s), ${CONNECTIONS} connections, ${DURATION_S}s per phase, ${ROUNDS} round(s) alternating bare/spoolway (ABBA), one ${WARMUP_S}s warm-up per server; ` +
    `load generator, server and redis share the ${info.nproc} cores`,
    ""
  ].join("\n")
  const text = `${header}\n${table}\n\n${verdicts.join("\n")}\n\n${raw.join("\n")}\n`
  const file = writeResult(`collector-${runStamp}.txt`, text)
  writeResult(`collector-${runStamp}.json`, JSON.stringify({
    stamp: runStamp,
    machine: info,
    config: { DURATION_S, WARMUP_S, CONNECTIONS, THREADS, RATE, ROUNDS, collectorNodeArgs: collectorNodeArgs() },
    ratio,
    roundRatios,
    medians: { bareMax: bareMaxS, spoolwayMax: spoolMaxS, barePaced: barePacedS, spoolwayPaced: spoolPacedS },
    phases: phases.map((p) => ({ name: p.name, mode: p.mode, reqPerSec: p.wrk.reqPerSec, wrk: p.wrk.json, stored: p.stored, cpu: p.cpu, check: p.check, checkOk: p.checkOk })),
    health: health.body,
    spoolLeft
  }, null, 2))
  console.log(`\n${table}\n\n${verdicts.join("\n")}\n\nwritten: ${file}`)
})
