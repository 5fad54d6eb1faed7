/**
 * Issue 3 — spool drain rate and failover under load.
 *
 *   npx node --experimental-strip-types --no-warnings=ExperimentalWarning bench/spool.ts [drain|failover|all]
 *
 * drain: pre-loads N (200K) valid envelopes into `<prefix>:spool` of a spool redis-server, starts
 *   the collector with a healthy primary, polls XLEN of both streams every 50 ms until the spool
 *   is empty and the primary holds N, and checks the primary holds exactly the N eventIds, in order.
 * failover: primary + spool redis-servers (both `--appendonly yes --appendfsync everysec`), collector
 *   with PROBE_INTERVAL_MS=1000, wrk load for 30 s; the primary redis-server is SIGKILLed at t=10 s
 *   and restarted at t=20 s on the same port with the same --dir (so it is AOF-restored). A probe
 *   client in this process sends 100 req/s on its own connection to get a latency time line. At the
 *   end (spool drained) every eventId answered 2xx must be in the primary stream.
 *   Two load shapes: "paced" (Lua delay(), BENCH_FAILOVER_RATE req/s total) and "max" (closed loop).
 *
 * Results: bench/results/spool-<stamp>.{txt,json} (+ collector logs).
 * Env knobs: BENCH_DRAIN_EVENTS (200000), BENCH_FAILOVER_SHAPES (paced,max), BENCH_FAILOVER_RATE (2000),
 * BENCH_FAILOVER_CONNECTIONS (20), BENCH_FAILOVER_DURATION_S (30), BENCH_KILL_AT_S (10),
 * BENCH_RESTART_AT_S (20), BENCH_WRK_THREADS (1).
 */
import { randomUUID } from "node:crypto"
import { readFileSync, rmSync } from "node:fs"
import { loadavg } from "node:os"
import {
  cpuSampler,
  getJson,
  type HttpServerProc,
  killRedis,
  log,
  machineInfo,
  ms,
  requireNode24,
  restartRedis,
  round,
  runBench,
  scanStream,
  sleep,
  stamp,
  startCollector,
  startRedis,
  startWrk,
  stopChild,
  assertAlive,
  unexpectedExits,
  waitQuiet,
  writeResult
} from "./lib.ts"

requireNode24()

const DRAIN_EVENTS = Number(process.env.BENCH_DRAIN_EVENTS ?? 200_000)
const SHAPES = (process.env.BENCH_FAILOVER_SHAPES ?? "paced,max").split(",").map((s) => s.trim()).filter(Boolean) as Array<"paced" | "max">
const FO_RATE = Number(process.env.BENCH_FAILOVER_RATE ?? 2000)
const FO_CONNECTIONS = Number(process.env.BENCH_FAILOVER_CONNECTIONS ?? 20)
const FO_DURATION_S = Number(process.env.BENCH_FAILOVER_DURATION_S ?? 30)
const KILL_AT_S = Number(process.env.BENCH_KILL_AT_S ?? 10)
const RESTART_AT_S = Number(process.env.BENCH_RESTART_AT_S ?? 20)
const THREADS = Number(process.env.BENCH_WRK_THREADS ?? 1)
/** kill = SIGKILL + restart (the brief); stop = SIGSTOP + SIGCONT (a hung primary: timeouts, not errors) */
const FAULT = (process.env.BENCH_FAILOVER_FAULT ?? "kill") as "kill" | "stop"
const AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]

const what = process.argv[2] ?? "all"
const runStamp = stamp()
const report: Array<string> = []
const jsonOut: Record<string, unknown> = {}

const pct = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/** A valid RawEventEnvelope (src/domain/Envelope.ts) as the collector would mint it. */
const envelope = (i: number) =>
  JSON.stringify({
    v: 1,
    eventId: randomUUID(),
    kind: "event",
    receivedAt: new Date().toISOString(),
    edge: { ip: "127.0.0.1", ua: "spoolway-bench", headers: { host: "127.0.0.1" } },
    payload: { eventType: "bench", sessionId: `s-drain-${i % 1000}`, isView: false }
  })

// ---------------------------------------------------------------------------
// (a) drain rate

const drainBench = async () => {
  const prefix = `bench-drain-${Date.now()}`
  const primary = await startRedis({ name: "drain-primary", persistence: AOF })
  const spool = await startRedis({ name: "drain-spool", persistence: AOF })
  log(`drain: primary pid ${primary.child.pid} ${primary.url}, spool pid ${spool.child.pid} ${spool.url}`)
  const pc = primary.client()
  const sc = spool.client()
  const spoolKey = `${prefix}:spool`
  const primaryKey = `${prefix}:events`

  const quiet = await waitQuiet("drain")
  // pre-load
  const ids: Array<string> = []
  const t0 = Date.now()
  for (let i = 0; i < DRAIN_EVENTS; i += 1000) {
    const pipe = sc.pipeline()
    for (let j = i; j < Math.min(DRAIN_EVENTS, i + 1000); j++) {
      const e = envelope(j)
      ids.push(JSON.parse(e).eventId)
      pipe.xadd(spoolKey, "*", "e", e)
    }
    await pipe.exec()
  }
  const preloadMs = Date.now() - t0
  const spoolLen0 = await sc.xlen(spoolKey)
  const sampleEnvelopeBytes = Buffer.byteLength(envelope(0))
  log(`drain: pre-loaded ${spoolLen0} envelopes (${sampleEnvelopeBytes} B each) in ${preloadMs} ms`)

  // poll from before the collector starts: the drain begins right after its first probe
  const samples: Array<{ t: number; spool: number; primary: number }> = []
  let polling = true
  const spawnAt = Date.now()
  const poller = (async () => {
    while (polling) {
      const [s, p] = await Promise.all([sc.xlen(spoolKey), pc.xlen(primaryKey)])
      samples.push({ t: Date.now(), spool: s, primary: p })
      if (s === 0 && p >= DRAIN_EVENTS) break
      if (Date.now() - spawnAt > 300_000) break
      await sleep(50)
    }
  })()
  const logFile = `bench/results/spool-drain-collector-${runStamp}.log`
  const collector = await startCollector({ primaryUrl: primary.url, spoolUrl: spool.url, streamPrefix: prefix, logFile, waitPrimary: false })
  const sampler = cpuSampler({ collector: collector.child.pid, primary: primary.child.pid, spool: spool.child.pid })
  const collectorUpMs = Date.now() - spawnAt
  log(`drain: collector pid ${collector.child.pid} up after ${collectorUpMs} ms`)
  await poller
  polling = false
  const cpu = sampler.stop()
  const last = samples[samples.length - 1]!
  const done = last.spool === 0 && last.primary >= DRAIN_EVENTS
  const lastUntouched = [...samples].reverse().find((s) => s.primary === 0)
  const firstMoved = samples.find((s) => s.primary > 0)
  const startT = lastUntouched?.t ?? spawnAt
  const durationMs = last.t - startT
  const rate = DRAIN_EVENTS / (durationMs / 1000)
  // per-second time line
  const perSecond: Array<string> = []
  for (let s = startT; s < last.t; s += 1000) {
    const a = samples.filter((x) => x.t <= s).pop() ?? samples[0]!
    const b = samples.filter((x) => x.t <= s + 1000).pop() ?? last
    perSecond.push(`${round((s - startT) / 1000, 0)}s: +${b.primary - a.primary}`)
  }
  const health = await getJson(`${collector.url}/health`)
  await stopChild(collector.child)

  // verify the primary: exactly the pre-loaded ids, once each, in order
  let n = 0
  let inOrder = 0
  const seen = new Map<string, number>()
  await scanStream(pc, primaryKey, (id) => {
    if (ids[n] === id) inOrder++
    n++
    seen.set(id, (seen.get(id) ?? 0) + 1)
  })
  const expected = new Set(ids)
  let missing = 0
  for (const id of expected) if (!seen.has(id)) missing++
  let dups = 0
  for (const c of seen.values()) if (c > 1) dups += c - 1
  const unknown = [...seen.keys()].filter((id) => !expected.has(id)).length
  const spoolLeft = await sc.xlen(spoolKey)

  const lines = [
    `## drain (${DRAIN_EVENTS} envelopes, ${sampleEnvelopeBytes} B each)`,
    `primary and spool redis-server: --appendonly yes --appendfsync everysec; PROBE_INTERVAL_MS default (5000, first probe at start)`,
    `machine busy before the run (others): ${quiet.busyPct}% of one core${quiet.quiet ? "" : " (NOT quiet)"}`,
    `pre-load (pipelined XADD, batches of 1000): ${preloadMs} ms`,
    `collector spawn → /health 200: ${collectorUpMs} ms; first primary growth seen ${firstMoved ? firstMoved.t - spawnAt : "?"} ms after spawn`,
    `drain: ${done ? "complete" : "INCOMPLETE"} — ${DRAIN_EVENTS} events in ${durationMs} ms (from the last 50 ms poll with primary empty to the first with spool 0 and primary >= N) → ${round(rate, 0)} events/s (target >= 50000/s: ${rate >= 50_000 ? "MET" : "NOT MET"})`,
    `from collector spawn (incl. Node start-up): ${last.t - spawnAt} ms → ${round(DRAIN_EVENTS / ((last.t - spawnAt) / 1000), 0)} events/s`,
    `per second: ${perSecond.join(", ")}`,
    `verify primary: ${n} entries, ${seen.size} distinct eventIds, missing ${missing}, duplicates ${dups}, unknown ${unknown}, in pre-load order ${inOrder}/${n}; spool left ${spoolLeft}`,
    `cpu: ${JSON.stringify(cpu)}`,
    `collector /health: ${JSON.stringify(health.body)}`,
    `polls: ${samples.length}`
  ]
  for (const l of lines) log(l)
  report.push(lines.join("\n"))
  jsonOut["drain"] = {
    events: DRAIN_EVENTS, envelopeBytes: sampleEnvelopeBytes, preloadMs, durationMs, rate, fromSpawnMs: last.t - spawnAt,
    complete: done, primaryEntries: n, distinct: seen.size, missing, duplicates: dups, unknown, inOrder, spoolLeft, cpu,
    health: health.body, samples: samples.map((s) => [s.t - spawnAt, s.spool, s.primary])
  }
  pc.disconnect()
  sc.disconnect()
  await stopChild(spool.child)
  await stopChild(primary.child)
}

// ---------------------------------------------------------------------------
// (b) failover under load

interface ProbeSample {
  readonly t: number
  readonly latencyMs: number
  readonly status: number
  readonly eventId?: string | undefined
}

/** One keep-alive request every 10 ms from this process, for a latency time line. */
const startProbe = (collector: HttpServerProc) => {
  const samples: Array<ProbeSample> = []
  let stopped = false
  const body = JSON.stringify({ eventType: "bench-probe", sessionId: "s-probe" })
  const done = (async () => {
    let next = Date.now()
    let i = 0
    while (!stopped) {
      const start = performance.now()
      const t = Date.now()
      let status = 0
      let eventId: string | undefined
      try {
        const res = await fetch(`${collector.url}/track/event`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(5000)
        })
        status = res.status
        const text = await res.text()
        if (status >= 200 && status < 300) eventId = JSON.parse(text).eventId
      } catch {
        status = -1
      }
      samples.push({ t, latencyMs: performance.now() - start, status, eventId })
      i++
      next += 10
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
      else if (wait < -1000) next = Date.now()
    }
  })()
  return {
    samples,
    stop: async () => {
      stopped = true
      await done
    }
  }
}

const failoverBench = async (shape: "paced" | "max") => {
  const prefix = `bench-failover-${shape}-${Date.now()}`
  const primary = await startRedis({ name: `fo-${shape}-primary`, persistence: AOF })
  const spool = await startRedis({ name: `fo-${shape}-spool`, persistence: AOF })
  log(`failover/${shape}: primary pid ${primary.child.pid} ${primary.url}, spool pid ${spool.child.pid} ${spool.url}`)
  const logFile = `bench/results/spool-failover-${FAULT}-${shape}-collector-${runStamp}.log`
  const collector = await startCollector({
    primaryUrl: primary.url,
    spoolUrl: spool.url,
    streamPrefix: prefix,
    probeIntervalMs: 1000,
    logFile
  })
  log(`failover/${shape}: collector pid ${collector.child.pid} on ${collector.url}`)
  const primaryKey = `${prefix}:events`
  const spoolKey = `${prefix}:spool`
  const sc = spool.client()

  // warm-up (not counted in the load figures, but its events are in the stream; measured as base)
  const warm = startWrk({ url: collector.url, connections: FO_CONNECTIONS, threads: THREADS, durationS: 3, mode: "max", tag: "warm" })
  await warm.done
  await sleep(500)
  const pc0 = primary.client()
  const base = await pc0.xlen(primaryKey)
  pc0.disconnect()

  const idsFile = `/tmp/spoolway-bench-ids-${shape}-${runStamp}.txt`
  const health: Array<{ t: number; primaryHealthy?: boolean; spoolDepth?: number | null; status: number; counters?: unknown }> = []
  let healthOn = true
  const healthPoller = (async () => {
    while (healthOn) {
      const t = Date.now()
      try {
        const r = await getJson(`${collector.url}/health`, 1000)
        health.push({ t, status: r.status, primaryHealthy: r.body?.primaryHealthy, spoolDepth: r.body?.spoolDepth, counters: r.body?.counters })
      } catch {
        health.push({ t, status: -1 })
      }
      await sleep(250)
    }
  })()

  const quiet = await waitQuiet(`failover/${shape}`)
  const spoolSamples: Array<{ t: number; len: number }> = []
  let spoolPollOn = true
  const spoolPoller = (async () => {
    while (spoolPollOn) {
      try {
        spoolSamples.push({ t: Date.now(), len: await sc.xlen(spoolKey) })
      } catch {}
      await sleep(50)
    }
  })()
  assertAlive(collector, "before the load started")
  const t0 = Date.now()
  const sampler = cpuSampler({ collector: collector.child.pid, spool: spool.child.pid, primary: primary.child.pid })
  const wrk = startWrk({
    url: collector.url,
    connections: FO_CONNECTIONS,
    threads: THREADS,
    durationS: FO_DURATION_S,
    mode: shape,
    rate: FO_RATE,
    idsFile,
    tag: shape
  })
  sampler.add("wrk", wrk.child.pid)
  const probe = startProbe(collector)
  log(`failover/${shape}: load started (${shape === "paced" ? `${FO_RATE} req/s paced` : "closed loop"}, ${FO_CONNECTIONS} connections, ${FO_DURATION_S}s)`)

  await sleep(t0 + KILL_AT_S * 1000 - Date.now())
  const killPid = primary.child.pid
  if (FAULT === "stop") process.kill(killPid!, "SIGSTOP")
  else await killRedis(primary)
  const killedAt = Date.now()
  log(`failover/${shape}: ${FAULT === "stop" ? "SIGSTOPped" : "SIGKILLed"} primary redis-server pid ${killPid} at t=${round((killedAt - t0) / 1000, 2)}s`)
  await sleep(t0 + RESTART_AT_S * 1000 - Date.now())
  const restartAt = Date.now()
  if (FAULT === "stop") process.kill(killPid!, "SIGCONT")
  else await restartRedis(primary, AOF)
  const restartedAt = Date.now()
  log(`failover/${shape}: ${FAULT === "stop" ? "SIGCONT to" : "restarted"} primary (pid ${primary.child.pid}${FAULT === "stop" ? "" : ", AOF-restored"}) at t=${round((restartAt - t0) / 1000, 2)}s, answering PING after ${restartedAt - restartAt} ms`)
  if (FAULT === "kill") sampler.add("primary2", primary.child.pid)

  const w = await wrk.done.catch((e) => {
    assertAlive(collector, "while wrk ran")
    throw e
  })
  await probe.stop()
  assertAlive(collector, "after the load")
  const cpu = sampler.stop()
  log(`failover/${shape}: wrk done: ${w.json.requests} answers, ${round(w.reqPerSec, 0)} req/s, statuses ${JSON.stringify(w.json.statuses)}`)

  // wait for the spool to drain
  const drainWaitStart = Date.now()
  let spoolLeft = -1
  while (Date.now() - drainWaitStart < 180_000) {
    spoolLeft = await sc.xlen(spoolKey)
    if (spoolLeft === 0) break
    await sleep(100)
  }
  await sleep(1500) // in-flight answers abandoned by wrk land now; one more health sample
  healthOn = false
  await healthPoller
  spoolPollOn = false
  await spoolPoller
  const maxSpool = spoolSamples.reduce((m, s) => Math.max(m, s.len), 0)
  const drainedSample = spoolSamples.find((s) => s.t > restartedAt && s.len === 0)
  const drainedAt = drainedSample?.t ?? Date.now()
  const finalHealth = await getJson(`${collector.url}/health`)
  const collectorAlive = collector.child.exitCode === null
  await stopChild(collector.child)

  // verification: every 2xx eventId must be in the primary
  const pc = primary.client()
  const primaryLen = await pc.xlen(primaryKey)
  const inPrimary = new Map<string, number>()
  await scanStream(pc, primaryKey, (id) => inPrimary.set(id, (inPrimary.get(id) ?? 0) + 1))
  let duplicates = 0
  for (const c of inPrimary.values()) if (c > 1) duplicates += c - 1
  const acked: Array<{ t: number; id: string; src: string }> = []
  for (const line of readFileSync(idsFile, "utf8").split("\n")) {
    if (line === "") continue
    const [t, id] = line.split(" ")
    acked.push({ t: Number(t), id: id!, src: "wrk" })
  }
  rmSync(idsFile, { force: true })
  for (const s of probe.samples) if (s.eventId) acked.push({ t: s.t + s.latencyMs, id: s.eventId, src: "probe" })
  const phaseOf = (t: number) => (t < killedAt ? "before kill" : t < restartedAt ? "outage" : "after restart")
  const missing: Record<string, number> = { "before kill": 0, outage: 0, "after restart": 0 }
  const missingSamples: Array<string> = []
  for (const a of acked) {
    if (!inPrimary.has(a.id)) {
      missing[phaseOf(a.t)]!++
      if (missingSamples.length < 10) missingSamples.push(`${a.src} ${a.id} answered at t=${round((a.t - t0) / 1000, 3)}s`)
    }
  }
  const totalMissing = Object.values(missing).reduce((a, b) => a + b, 0)
  const ok2xx = w.ok2xx + probe.samples.filter((s) => s.status >= 200 && s.status < 300).length
  const n5xx = Object.entries(w.json.statuses).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0) +
    probe.samples.filter((s) => s.status >= 500).length
  const probeErrors = probe.samples.filter((s) => s.status === -1).length
  const grown = primaryLen - base

  // probe latency by phase and per second
  const byPhase: Record<string, Array<number>> = { "before kill": [], outage: [], "after restart": [] }
  for (const s of probe.samples) byPhase[phaseOf(s.t)]!.push(s.latencyMs)
  const probePhaseLines = Object.entries(byPhase).map(([k, v]) => {
    const sorted = [...v].sort((a, b) => a - b)
    return `${k}: n=${v.length} p50 ${round(pct(sorted, 50), 2)} ms p99 ${round(pct(sorted, 99), 2)} ms max ${round(sorted[sorted.length - 1] ?? NaN, 2)} ms`
  })
  const perSecond: Array<string> = []
  for (let s = 0; s < FO_DURATION_S; s++) {
    const v = probe.samples.filter((x) => x.t >= t0 + s * 1000 && x.t < t0 + (s + 1) * 1000)
    const sorted = v.map((x) => x.latencyMs).sort((a, b) => a - b)
    const bad = v.filter((x) => !(x.status >= 200 && x.status < 300)).length
    perSecond.push(`${s}s: n=${v.length} p50 ${round(pct(sorted, 50), 1)} p99 ${round(pct(sorted, 99), 1)} max ${round(sorted[sorted.length - 1] ?? NaN, 1)}${bad ? ` non2xx=${bad}` : ""}`)
  }
  const healthLine = (h: (typeof health)[number]) =>
    `t=${round((h.t - t0) / 1000, 2)}s ${h.status} primaryHealthy=${h.primaryHealthy} spoolDepth=${h.spoolDepth}`
  const transitions: Array<string> = []
  let prev: boolean | undefined
  let maxDepth = 0
  for (const h of health) {
    if (h.primaryHealthy !== prev) transitions.push(healthLine(h))
    prev = h.primaryHealthy
    if (typeof h.spoolDepth === "number") maxDepth = Math.max(maxDepth, h.spoolDepth)
  }
  const logLines = readFileSync(logFile, "utf8").split("\n").filter((l) => /WARN|ERROR|route|spool|drain|primary/i.test(l))

  const lines = [
    `## failover (${FAULT === "stop" ? "SIGSTOP/SIGCONT" : "SIGKILL/restart"}) / ${shape} (${shape === "paced" ? `wrk paced ${FO_RATE} req/s` : "wrk closed loop"}, ${FO_CONNECTIONS} connections, ${FO_DURATION_S}s; + probe 100 req/s)`,
    `machine busy before the run (others): ${quiet.busyPct}% of one core${quiet.quiet ? "" : " (NOT quiet)"}`,
    FAULT === "stop"
      ? `primary: SIGSTOP pid ${killPid} at t=${round((killedAt - t0) / 1000, 2)}s (hung: connections stay open, commands time out); SIGCONT at t=${round((restartAt - t0) / 1000, 2)}s`
      : `primary: SIGKILL pid ${killPid} at t=${round((killedAt - t0) / 1000, 2)}s; restarted at t=${round((restartAt - t0) / 1000, 2)}s (same port, same --dir, AOF everysec → AOF-restored), PING after ${restartedAt - restartAt} ms`,
    `wrk: ${round(w.reqPerSec, 0)} req/s, ${w.json.requests} answers (sent ${w.json.sent}), statuses ${JSON.stringify(w.json.statuses)}, socket errors ${JSON.stringify(w.json.errors)}`,
    `wrk latency: p50 ${ms(w.json.latency_us.p50)} ms, p90 ${ms(w.json.latency_us.p90)} ms, p99 ${ms(w.json.latency_us.p99)} ms, p99.9 ${ms(w.json.latency_us.p999)} ms, max ${ms(w.json.latency_us.max)} ms (target p99 < 100 ms: ${w.json.latency_us.p99 < 100_000 ? "MET" : "NOT MET"})`,
    `probe: ${probe.samples.length} requests, non-2xx ${probe.samples.filter((s) => !(s.status >= 200 && s.status < 300)).length} (transport errors ${probeErrors}); by phase: ${probePhaseLines.join("; ")}`,
    `5xx total (wrk + probe): ${n5xx} (target 0 while the spool is up: ${n5xx === 0 ? "MET" : "NOT MET"})`,
    `health transitions: ${transitions.join(" | ")}; max spool depth seen ${maxDepth}`,
    `spool: max XLEN ${maxSpool} (50 ms polls); ${spoolLeft === 0 ? `empty again ${drainedAt - restartedAt} ms after the restarted primary answered PING (t=${round((drainedAt - t0) / 1000, 2)}s)` : `NOT drained (left ${spoolLeft})`}`,
    `verify: 2xx answers ${ok2xx} (wrk ${w.ok2xx} + probe ${ok2xx - w.ok2xx}); primary XLEN ${primaryLen} (warm-up base ${base}, grown ${grown}); distinct eventIds in primary ${inPrimary.size}, duplicates ${duplicates}`,
    `XLEN check (grown >= 2xx): ${grown >= ok2xx ? `OK (+${grown - ok2xx}: requests in flight when wrk stopped, or duplicates)` : `SHORTFALL ${ok2xx - grown}`}`,
    `eventId check: acknowledged ${acked.length}, missing from primary ${totalMissing} ${JSON.stringify(missing)}${missingSamples.length ? `; e.g. ${missingSamples.join("; ")}` : ""}`,
    `collector alive at end: ${collectorAlive}; /health at end: ${JSON.stringify(finalHealth.body)}`,
    `cpu: ${JSON.stringify(cpu)}`,
    `probe per second: ${perSecond.join(" | ")}`,
    `collector log (filtered):`,
    ...logLines.slice(0, 40).map((l) => `  ${l}`)
  ]
  for (const l of lines.slice(0, 15)) log(l)
  report.push(lines.join("\n") + `\n\nwrk raw:\n${w.raw}`)
  jsonOut[`failover-${FAULT}-${shape}`] = {
    killAtMs: killedAt - t0, restartAtMs: restartAt - t0, restartedPingMs: restartedAt - restartAt,
    wrk: w.json, reqPerSec: w.reqPerSec, ok2xx, n5xx, probeErrors, primaryLen, base, grown, distinct: inPrimary.size, duplicates,
    acked: acked.length, missing, spoolLeft, maxSpool, busyBefore: quiet.busyPct, drainedAfterRestartMs: drainedAt - restartedAt, maxDepth, cpu,
    probePhases: probePhaseLines, transitions, finalHealth: finalHealth.body, collectorAlive
  }
  pc.disconnect()
  sc.disconnect()
  await stopChild(spool.child)
  await stopChild(primary.child)
}

runBench(async () => {
  const info = machineInfo()
  const loadStart = loadavg().map((x) => round(x, 2))
  log("machine", info)
  if (what === "drain" || what === "all") await drainBench()
  if (what === "failover" || what === "all") for (const shape of SHAPES) await failoverBench(shape)
  const ux = unexpectedExits()
  if (ux.length > 0) report.push(`## unexpected exits of started processes\n${ux.join("\n")}`)
  const header = [
    `# bench/spool.ts ${what} run ${runStamp}${what !== "drain" ? ` (failover fault: ${FAULT})` : ""}`,
    `machine: ${JSON.stringify(info)}`,
    `load average at start: ${loadStart.join(" ")}, at end: ${loadavg().map((x) => round(x, 2)).join(" ")} (other sessions may share this machine)`,
    ""
  ].join("\n")
  const tag = what === "drain" ? what : FAULT === "stop" ? `${what}-stop` : what
  const file = writeResult(`spool-${tag}-${runStamp}.txt`, `${header}\n${report.join("\n\n")}\n`)
  writeResult(`spool-${tag}-${runStamp}.json`, JSON.stringify({ stamp: runStamp, machine: info, ...jsonOut }, null, 2))
  log(`written: ${file}`)
})
