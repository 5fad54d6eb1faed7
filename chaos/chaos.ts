/**
 * The chaos run (issue 7): a steady mixed load at a pipeline made of real processes this run
 * owns — primary redis-server and spool redis-server (both append-only), a PostgreSQL cluster,
 * `spoolway serve --role collector`, two `spoolway serve --role writer` — while it
 *   1. SIGKILLs the primary redis-server and restarts it on the same port and dir,
 *   2. SIGKILLs a writer mid-batch (its consumer holds pending entries) N times, restarting it,
 *   3. restarts PostgreSQL (fast shutdown, then immediate shutdown = crash recovery),
 *   4. restarts the collector with a small SPOOL_MAX_EVENTS, kills the primary again and fills
 *      the spool to its bound (503 + Retry-After), then brings the primary back;
 * then waits for the spool and the stream to drain and reconciles (reconcile.ts).
 *
 * Used by `chaos/run.ts` (npm run chaos) and `test/chaos.test.ts` (short variant).
 */
import { type ChildProcess, fork } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Cluster, Redis } from "ioredis"
import { partitionStreamKeys } from "../src/domain/Streams.ts"
import { type RedisCluster, startRedisCluster } from "../test/support/redisCluster.ts"
import type { LoadColumns, LoadStats, StartMessage } from "./load.ts"
import {
  type Exited,
  freePort,
  installHandlers,
  isAlive,
  NODE_FLAGS,
  onChildExit,
  PgCluster,
  RedisServer,
  REPO_DIR,
  otherCpuSampler,
  removeDir,
  runSpoolway,
  sleep,
  startSpoolway,
  stopAll,
  type SpoolwayProcess,
  track
} from "./procs.ts"
import { openDb, type PhaseRow, reconcile, type Reconciliation } from "./reconcile.ts"
import { CHAOS_DOMAINS } from "./workload.ts"

export type Scenario = "primary-kill" | "writer-kill" | "pg-restart" | "spool-full" | "master-kill"

/**
 * The event log on a Redis Cluster of 3 masters + 3 replicas (issue 18, docs/scaling.md) instead
 * of one primary redis-server: the collectors get PRIMARY_REDIS_CLUSTER (the primary stays, for
 * the site registry only), the writers run the partitioned writer.
 */
export interface ClusterOptions {
  readonly partitions: number
  /** REDIS_MIN_REPLICAS_ACK of the collectors: 0 = answer after the master's XADD alone */
  readonly minReplicasAck: number
  /** "master-kill": how many times a master is SIGKILLed (each time the master of another partition) */
  readonly masterKills: number
  /** how long a killed master stays down after its replica was promoted, before it comes back as a replica */
  readonly masterDownMs: number
  readonly nodeTimeoutMs: number
  /**
   * A replica that does not answer when its master dies: stopped (SIGSTOP) this long before the
   * master's SIGKILL and continued right after it. It acknowledges nothing meanwhile (with
   * REDIS_MIN_REPLICAS_ACK the writes time out and go to the spools), but on one host it still
   * receives the master's stream (kept in the socket buffers, delivered even after the master's
   * SIGKILL), so it is not promoted without those writes (runs of 2026-12-06, bench/README.md):
   * losing the bytes in flight needs a host or network failure this harness does not simulate.
   * 0 = off.
   */
  readonly replicaLagMs?: number
  /**
   * With `replicaLagMs`: the writers are stopped (SIGSTOP) for the same time, so what the master
   * acknowledged then is not yet read and stored either (a writer that already stored an event
   * makes its loss from the log harmless) — a backlog, as when PostgreSQL is slow.
   */
  readonly writersBehind?: boolean
}

export interface ChaosOptions {
  readonly name: string
  /** target requests/s of the whole load */
  readonly rate: number
  readonly concurrency: number
  readonly warmupMs: number
  readonly cooldownMs: number
  readonly order: ReadonlyArray<Scenario>
  /** 1: how long the primary stays down */
  readonly primaryDownMs: number
  /** 2 */
  readonly writerKills: number
  readonly writerKillGapMs: number
  /** 3 */
  /** fast / immediate = `pg_ctl stop -m …`; sigkill = SIGKILL to the postmaster and all its children */
  readonly pgRestarts: ReadonlyArray<"fast" | "immediate" | "sigkill">
  readonly pgDownMs: number
  readonly pgRunMs: number
  /** 4: SPOOL_MAX_EVENTS of the restarted collector, and how long to keep answering 503 */
  readonly spoolMax: number
  readonly spoolFullHoldMs: number
  readonly writers: number
  /** collector processes (each with its own spool redis-server); the load spreads over them */
  readonly collectors?: number
  /** the event log on a Redis Cluster (the "cluster" scenario of `npm run chaos`) */
  readonly cluster?: ClusterOptions
  readonly writerBatchSize: number
  /** bound on the final wait for spool + stream to drain */
  readonly drainTimeoutMs: number
  /**
   * Passed to the writers as WRITER_CLAIM_IDLE_MS / WRITER_CLAIM_EVERY_MS. Spoolway reads them
   * only if its AppConfig knows them (otherwise the built-in 30 s / 10 s apply and the final
   * drain takes up to ~40 s after the last writer kill).
   */
  readonly claimIdleMs?: number
  readonly claimEveryMs?: number
  readonly seed: number
  /** keep the run directory (logs, data) even when everything passed */
  readonly keep: boolean
  /**
   * Harness self-check: before reconciling, delete one stored accepted event, store one twice
   * and store one event of a rejected request — the run must then FAIL with exactly these.
   */
  readonly sabotage?: boolean
  readonly log: (line: string) => void
}

export const FULL: Omit<ChaosOptions, "log" | "seed" | "keep"> = {
  name: "full",
  rate: 2500,
  concurrency: 64,
  warmupMs: 20_000,
  cooldownMs: 15_000,
  order: ["primary-kill", "writer-kill", "pg-restart", "spool-full"],
  primaryDownMs: 5_000,
  writerKills: 10,
  writerKillGapMs: 3_000,
  pgRestarts: ["fast", "immediate", "sigkill"],
  pgDownMs: 4_000,
  pgRunMs: 10_000,
  spoolMax: 20_000,
  spoolFullHoldMs: 5_000,
  writers: 2,
  writerBatchSize: 500,
  drainTimeoutMs: 150_000
}

export const QUICK: Omit<ChaosOptions, "log" | "seed" | "keep"> = {
  ...FULL,
  name: "quick",
  warmupMs: 4_000,
  cooldownMs: 3_000,
  order: ["writer-kill", "primary-kill", "pg-restart", "spool-full"],
  primaryDownMs: 3_000,
  writerKills: 3,
  writerKillGapMs: 2_000,
  pgRestarts: ["fast", "sigkill"],
  pgDownMs: 2_000,
  pgRunMs: 3_000,
  spoolMax: 8_000,
  spoolFullHoldMs: 2_000,
  drainTimeoutMs: 90_000,
  claimIdleMs: 10_000,
  claimEveryMs: 1_000
}

/**
 * The cluster scenario (issue 18): 2 collectors and 3 writers on a 3 + 3 Redis Cluster; writers
 * SIGKILLed mid-batch and restarted, then masters SIGKILLed (the replica is promoted; the killed
 * node comes back as its replica). `minReplicasAck` 1 must lose nothing; 0 shows what
 * asynchronous replication loses.
 */
export const CLUSTER = (minReplicasAck: number): Omit<ChaosOptions, "log" | "seed" | "keep"> => ({
  ...FULL,
  name: `cluster, REDIS_MIN_REPLICAS_ACK=${minReplicasAck}`,
  rate: 500,
  warmupMs: 15_000,
  cooldownMs: 10_000,
  order: ["writer-kill", "master-kill"],
  writerKills: 3,
  writerKillGapMs: 3_000,
  writers: 3,
  collectors: 2,
  drainTimeoutMs: 150_000,
  claimIdleMs: 5_000,
  claimEveryMs: 1_000,
  cluster: { partitions: 16, minReplicasAck, masterKills: 2, masterDownMs: 4_000, nodeTimeoutMs: 2_000 }
})

const SCENARIO_TITLE: Record<Scenario, string> = {
  "master-kill": "5 cluster master SIGKILL → replica promoted",
  "primary-kill": "1 primary redis SIGKILL + restart",
  "writer-kill": "2 writer SIGKILL mid-batch",
  "pg-restart": "3 PostgreSQL restart",
  "spool-full": "4 spool full (primary down) → 503"
}

export interface ChaosResult {
  readonly ok: boolean
  readonly failures: ReadonlyArray<string>
  readonly notes: ReadonlyArray<string>
  readonly reconciliation: Reconciliation | undefined
  readonly table: string
  readonly runDir: string
}

interface Health {
  primaryHealthy?: boolean
  spoolDepth?: number | null
  counters?: { accepted: number; spooled: number; drained: number; rejected: { spool_down: number; spool_full: number } }
}

const getJson = async <A>(url: string): Promise<A | undefined> => {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return (await res.json()) as A
  } catch {
    return undefined
  }
}

/** Detects whether this Spoolway reads an env var (its AppConfig mentions the name). */
const spoolwayReads = (name: string) => {
  try {
    return readFileSync(join(REPO_DIR, "src", "layers", "AppConfig.ts"), "utf8").includes(`"${name}"`) ||
      readFileSync(join(REPO_DIR, "src", "programs", "Writer.ts"), "utf8").includes(`"${name}"`)
  } catch {
    return false
  }
}

const fmt = (n: number) => n.toLocaleString("en-US")

export const formatTable = (rows: ReadonlyArray<PhaseRow>, total: PhaseRow, othersCpu?: ReadonlyArray<number>): string => {
  const header = [
    "scenario",
    "s",
    "requests",
    "req/s",
    "events",
    "2xx",
    "503",
    "4xx",
    "other 5xx",
    "no answer",
    "lost",
    "duplicated",
    "stored rejected",
    "p50 ms",
    "p99 ms",
    ...(othersCpu === undefined ? [] : ["other processes' CPU, % of a core"])
  ]
  const line = (r: PhaseRow, i: number) => [
    r.phase,
    r.seconds.toFixed(0),
    fmt(r.requests),
    fmt(Math.round(r.requests / Math.max(r.seconds, 0.001))),
    fmt(r.events),
    fmt(r.ok2xx),
    fmt(r.c503),
    fmt(r.c4xx),
    fmt(r.bad5xx),
    `${fmt(r.refused + r.unknown)}${r.unknown > 0 ? ` (${fmt(r.unknown)} unknown)` : ""}`,
    fmt(r.lost),
    fmt(r.duplicated),
    fmt(r.storedRejected),
    r.p50.toFixed(1),
    r.p99.toFixed(1),
    ...(othersCpu === undefined ? [] : [`${(othersCpu[i] ?? 0).toFixed(0)}`])
  ]
  const body = [...rows.map(line), line(total, rows.length).map((c, i) => (i === 0 ? `**${c}**` : c))]
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...body.map((cells) => `| ${cells.join(" | ")} |`)
  ].join("\n")
}

/**
 * WARN / ERROR lines of the pipeline's logs (JSON lines), grouped by role, level and message
 * with numbers masked; for an ERROR also the first line of its cause.
 */
export const summarizeLogs = (runDir: string): Array<string> => {
  const counts = new Map<string, number>()
  for (const file of readdirSync(runDir)) {
    const m = /^(collector|writer)-?\d*\.\d+\.log$/.exec(file)
    if (m === null) continue
    for (const line of readFileSync(join(runDir, file), "utf8").split("\n")) {
      if (!line.startsWith("{")) continue
      try {
        const entry = JSON.parse(line) as { level?: string; message?: unknown; cause?: unknown }
        if (entry.level !== "WARN" && entry.level !== "ERROR" && entry.level !== "FATAL") continue
        const message = String(entry.message).replace(/[0-9]+/g, "N").slice(0, 170)
        const cause = entry.level !== "WARN" && typeof entry.cause === "string"
          ? ` — cause: ${entry.cause.split("\n")[0]!.replace(/[0-9]+/g, "N").slice(0, 120)}`
          : ""
        const key = `${m[1]} ${entry.level}: ${message}${cause}`
        counts.set(key, (counts.get(key) ?? 0) + 1)
      } catch {}
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${String(n).padStart(5)} × ${k}`)
}

export const runChaos = async (options: ChaosOptions): Promise<ChaosResult> => {
  installHandlers()
  const log = options.log
  const t0 = Date.now()
  const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s`
  const say = (line: string) => log(`[${stamp()}] ${line}`)
  const failures: Array<string> = []
  const notes: Array<string> = []
  const runDir = mkdtempSync(join(tmpdir(), "spoolway-chaos-"))
  chmodSync(runDir, 0o755) // PostgreSQL runs as `postgres` when we are root
  const tag = `c${Math.random().toString(36).slice(2, 7)}`
  const prefix = "chaos"
  const streamKey = `${prefix}:events`
  const group = `${prefix}:writers`
  let reconciliation: Reconciliation | undefined
  let table = ""
  let stopping = false
  const crashes: Array<Exited> = []

  const claimSupported = spoolwayReads("WRITER_CLAIM_IDLE_MS")
  say(`chaos run "${options.name}" in ${runDir} (marker tag ${tag}, seed ${options.seed})`)
  say(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, node ${process.version}`
  )
  if (options.claimIdleMs !== undefined) {
    say(
      claimSupported
        ? `writers: WRITER_CLAIM_IDLE_MS=${options.claimIdleMs} WRITER_CLAIM_EVERY_MS=${options.claimEveryMs ?? "-"}`
        : `writers: this Spoolway has no WRITER_CLAIM_IDLE_MS; a killed writer's entries are reclaimed after the built-in 30 s idle`
    )
  }

  const nCollectors = options.collectors ?? 1
  const ports = await Promise.all(Array.from({ length: 2 + 2 * nCollectors + options.writers }, () => freePort()))
  const [pgPort, primaryPort] = ports
  const spoolPorts = ports.slice(2, 2 + nCollectors)
  const collectorPorts = ports.slice(2 + nCollectors, 2 + 2 * nCollectors)
  const writerPorts = ports.slice(2 + 2 * nCollectors)
  const pg = new PgCluster(runDir, pgPort!)
  // with a cluster, the primary holds only the site registry (PRIMARY_REDIS_URL); the log is on the cluster
  const primary = new RedisServer("redis-primary", primaryPort!, join(runDir, "redis-primary"))
  // each collector has its own spool, as in a deployment
  const spools = spoolPorts.map((port, i) => {
    const name = nCollectors === 1 ? "redis-spool" : `redis-spool-${i}`
    return new RedisServer(name, port, join(runDir, name))
  })
  const collectorName = (i: number) => (nCollectors === 1 ? "collector" : `collector-${i}`)
  const clusterOptions = options.cluster
  let redisCluster: RedisCluster | undefined
  const streamKeys = clusterOptions === undefined ? [streamKey] : partitionStreamKeys(prefix, clusterOptions.partitions)
  const dbUrl = pg.url("spoolway_chaos")
  const collectors: Array<SpoolwayProcess | undefined> = Array.from({ length: nCollectors }, () => undefined)
  const writers: Array<SpoolwayProcess | undefined> = Array.from({ length: options.writers }, () => undefined)
  const collectorStarts = collectors.map(() => 0)
  const writerStarts = writers.map(() => 0)
  let loadChild: ChildProcess | undefined
  let probe: Redis | Cluster | undefined
  let monitor: NodeJS.Timeout | undefined

  const baseEnv = (): Record<string, string> => ({
    DATABASE_URL: dbUrl,
    PRIMARY_REDIS_URL: primary.url,
    SPOOL_REDIS_URL: spools[0]!.url,
    STREAM_PREFIX: prefix,
    SPOOLWAY_DATA_DIR: join(runDir, "data"),
    PROBE_INTERVAL_MS: "1000",
    RATE_LIMIT_PER_MINUTE: "0",
    WRITER_BATCH_SIZE: String(options.writerBatchSize),
    WRITER_BLOCK_MS: "500",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    ...(options.claimIdleMs !== undefined ? { WRITER_CLAIM_IDLE_MS: String(options.claimIdleMs) } : {}),
    ...(options.claimEveryMs !== undefined ? { WRITER_CLAIM_EVERY_MS: String(options.claimEveryMs) } : {}),
    ...(clusterOptions === undefined || redisCluster === undefined
      ? {}
      : {
        PRIMARY_REDIS_CLUSTER: redisCluster.seeds.join(","),
        STREAM_PARTITIONS: String(clusterOptions.partitions),
        REDIS_MIN_REPLICAS_ACK: String(clusterOptions.minReplicasAck)
      })
  })

  const startCollector = async (i: number, extra: Record<string, string> = {}) => {
    collectorStarts[i] = collectorStarts[i]! + 1
    const c = await startSpoolway(
      collectorName(i),
      "collector",
      collectorPorts[i]!,
      { ...baseEnv(), SPOOL_REDIS_URL: spools[i]!.url, ...extra },
      join(runDir, `${collectorName(i)}.${collectorStarts[i]}.log`)
    )
    collectors[i] = c
    return c
  }
  const startWriter = async (slot: number) => {
    writerStarts[slot] = writerStarts[slot]! + 1
    const w = await startSpoolway(
      `writer-${slot}`,
      "writer",
      writerPorts[slot]!,
      baseEnv(),
      join(runDir, `writer-${slot}.${writerStarts[slot]}.log`)
    )
    writers[slot] = w
    return w
  }
  const health = (i = 0) => getJson<Health>(`http://127.0.0.1:${collectorPorts[i]}/health`)
  const healths = () => Promise.all(collectorPorts.map((_, i) => health(i)))
  /** counters summed over the collectors (undefined when one does not answer) */
  const counters = async () => {
    const all = await healths()
    if (all.some((h) => h?.counters === undefined)) return undefined
    return all.reduce((n, h) => ({ spooled: n.spooled + h!.counters!.spooled, drained: n.drained + h!.counters!.drained }), { spooled: 0, drained: 0 })
  }

  // an exit we did not ask for: recorded as a crash (a finding) and the process restarted
  const unsubscribe = onChildExit((e) => {
    if (e.expected || stopping) return
    crashes.push(e)
    say(`CRASH: ${e.name} (pid ${e.pid}) exited by itself: code ${e.code} signal ${e.signal}`)
    const c = /^collector(?:-(\d+))?$/.exec(e.name)
    if (c !== null) void startCollector(Number(c[1] ?? 0)).catch((err) => say(`${e.name} restart failed: ${err}`))
    const m = /^writer-(\d+)$/.exec(e.name)
    if (m !== null) void startWriter(Number(m[1])).catch((err) => say(`writer restart failed: ${err}`))
  })

  const redisCall = async (...args: Array<string | number>): Promise<unknown> => {
    if (probe === undefined) return undefined
    try {
      return await probe.call(String(args[0]), ...args.slice(1))
    } catch {
      return undefined
    }
  }
  /** length and pending entries of the log (summed over the partitions on a cluster; undefined if one does not answer) */
  const streamState = async () => {
    let length: number | undefined = 0
    let pending: number | undefined = 0
    for (const key of streamKeys) {
      const len = await redisCall("XLEN", key)
      const p = await redisCall("XPENDING", key, group)
      length = typeof len === "number" && length !== undefined ? length + len : undefined
      // no group yet (no writer read that partition): nothing pending
      pending = pending !== undefined && (Array.isArray(p) || len === 0) ? pending + (Array.isArray(p) ? Number(p[0] ?? 0) : 0) : undefined
    }
    return { length, pending }
  }
  /** the group's consumers (over every partition on a cluster): name, pending entries, idle ms */
  const consumers = async (): Promise<Array<{ name: string; pending: number; idle: number }>> => {
    const byName = new Map<string, { name: string; pending: number; idle: number }>()
    for (const key of streamKeys) {
      const reply = await redisCall("XINFO", "CONSUMERS", key, group)
      if (!Array.isArray(reply)) continue
      for (const raw of reply) {
        if (!Array.isArray(raw)) continue
        const fields = new Map<string, unknown>()
        for (let i = 0; i + 1 < raw.length; i += 2) fields.set(String(raw[i]), raw[i + 1])
        const name = String(fields.get("name"))
        const pending = Number(fields.get("pending") ?? 0)
        const idle = Number(fields.get("idle") ?? 0)
        const seen = byName.get(name)
        byName.set(name, seen === undefined ? { name, pending, idle } : { name, pending: seen.pending + pending, idle: Math.min(seen.idle, idle) })
      }
    }
    return [...byName.values()]
  }
  /** pending entries of the consumer run by `pid` (consumer names are `<host>-<pid>-<random>`) */
  const consumerPending = async (pid: number) => (await consumers()).find((c) => c.name.includes(`-${pid}-`))

  // load generator state
  let stats: LoadStats | undefined
  let loadDone: Promise<number> | undefined
  const loadOut = join(runDir, "requests.json")
  const phases: Array<{ name: string; startedAt: number; endedAt: number }> = []
  /** CPU seconds other processes used during each phase */
  const otherCpu: Array<number> = []
  let sampleOthers: (() => number) | undefined
  const attributeOthers = () => {
    if (sampleOthers === undefined || phases.length === 0) return
    const i = phases.length - 1
    otherCpu[i] = (otherCpu[i] ?? 0) + sampleOthers()
  }
  const beginPhase = (name: string) => {
    attributeOthers()
    const now = Date.now()
    const last = phases[phases.length - 1]
    if (last !== undefined) last.endedAt = now
    phases.push({ name, startedAt: now, endedAt: now })
    loadChild?.send({ type: "phase", phase: phases.length - 1 })
    say(`── phase: ${name}`)
  }

  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 250) => {
    const start = Date.now()
    while (!(await check())) {
      if (Date.now() - start > timeoutMs) {
        say(`timed out after ${timeoutMs} ms waiting for ${what}`)
        return false
      }
      await sleep(everyMs)
    }
    return true
  }
  const spoolDrained = () =>
    waitFor(`the collector${nCollectors > 1 ? "s" : ""} to route to the log with an empty spool`, async () => {
      const all = await healths()
      return all.every((h) => h?.primaryHealthy === true && h.spoolDepth === 0)
    }, 60_000)

  try {
    // ---------------------------------------------------------------- set-up
    say(`starting PostgreSQL (port ${pgPort}), redis primary (${primaryPort}) and spool(s) (${spoolPorts.join(", ")})`)
    await pg.init()
    await Promise.all([pg.start(), primary.start(), ...spools.map((s) => s.start())])
    if (clusterOptions !== undefined) {
      say(`starting a Redis Cluster of 3 masters + 3 replicas (cluster-node-timeout ${clusterOptions.nodeTimeoutMs} ms, append-only)`)
      redisCluster = await startRedisCluster({
        nodeTimeoutMs: clusterOptions.nodeTimeoutMs,
        appendonly: true,
        parentDir: runDir,
        extraArgs: ["--logfile", "redis.log"],
        // tracked: stopped with everything else, also on error / Ctrl-C / exit
        onSpawn: (child) => {
          track(`redis-cluster-${child.pid}`, child).expected = true
        }
      })
      say(`cluster up: ${redisCluster.seeds.join(", ")}; log in ${clusterOptions.partitions} partitions, REDIS_MIN_REPLICAS_ACK=${clusterOptions.minReplicasAck}`)
    }
    {
      const admin = await openDb(pg.url("postgres"), 1)
      await admin.query(`CREATE DATABASE spoolway_chaos`)
      await admin.close()
    }
    probe = redisCluster === undefined
      ? new Redis(primary.url, {
        lazyConnect: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 1500,
        retryStrategy: () => 200
      })
      : new Cluster(redisCluster.seeds.map((seed) => ({ host: "127.0.0.1", port: Number(seed.split(":")[1]) })), {
        clusterRetryStrategy: () => 200,
        redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 1500 }
      })
    probe.on("error", () => {})

    // schema first (the first writer would do it too), then two registered domains so that
    // some views get a tenant (the writers load the domain table at start)
    {
      const migrated = await runSpoolway(["migrate"], baseEnv())
      say(`spoolway migrate: ${migrated.trim().split("\n").pop()}`)
      const db = await openDb(dbUrl, 1)
      const [corp] = await db.query<{ id: number }>(`INSERT INTO corps (name) VALUES ('chaos corp') RETURNING id`)
      for (const host of CHAOS_DOMAINS) await db.query(`INSERT INTO domains (hostname, corp_id) VALUES ($1, $2)`, [host, corp!.id])
      await db.close()
    }
    say(`starting ${nCollectors} collector(s) (ports ${collectorPorts.join(", ")}) and ${options.writers} writer(s) (ports ${writerPorts.join(", ")})`)
    await Promise.all([...collectors.map((_, i) => startCollector(i)), ...writers.map((_, i) => startWriter(i))])

    // ---------------------------------------------------------------- load
    const child = fork(join(import.meta.dirname, "load.ts"), [], {
      execPath: process.execPath,
      execArgv: NODE_FLAGS,
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const loadTracked = track("load", child)
    loadChild = child
    loadDone = new Promise<number>((resolveDone, reject) => {
      child.on("message", (msg: { readonly type: string; readonly requests?: number }) => {
        if (msg.type === "stats") stats = msg as unknown as LoadStats
        if (msg.type === "done") resolveDone(msg.requests ?? 0)
      })
      child.once("exit", (code) => reject(new Error(`load generator exited (${code}) before it was done`)))
    })
    loadDone.catch(() => {})
    sampleOthers = otherCpuSampler(() => {
      const pid = pg.pid()
      return pid === undefined ? [] : [pid]
    })
    beginPhase("steady (warm-up)")
    child.send({
      type: "start",
      ports: collectorPorts,
      rate: options.rate,
      concurrency: options.concurrency,
      tag,
      seed: options.seed,
      out: loadOut
    } satisfies StartMessage)

    let lastSent = 0
    let lastAt = Date.now()
    let monitoring = false
    monitor = setInterval(() => {
      attributeOthers()
      if (monitoring) return
      monitoring = true
      void (async () => {
        const hs = await healths()
        const s = await streamState()
        const now = Date.now()
        const sent = stats?.sent ?? 0
        const rate = ((sent - lastSent) * 1000) / Math.max(1, now - lastAt)
        lastSent = sent
        lastAt = now
        say(
          `load ${rate.toFixed(0)} req/s (sent ${fmt(sent)}, 2xx ${fmt(stats?.s2xx ?? 0)}, 503 ${fmt(stats?.s503 ?? 0)}, ` +
            `other 5xx ${stats?.s5xxBad ?? 0}, no answer ${stats?.netErrors ?? 0}, in flight ${stats?.inflight ?? 0}) · ` +
            hs.map((h, i) => `${collectorName(i)} ${h === undefined ? "down" : `log ${h.primaryHealthy ? "up" : "DOWN"}, spool ${h.spoolDepth}`}`).join(", ") + " · " +
            `stream ${s.length ?? "?"} pending ${s.pending ?? "?"} · writers alive ${writers.filter((w) => w !== undefined && isAlive(w.child)).length}`
        )
      })().finally(() => {
        monitoring = false
      })
    }, 5000)

    await sleep(options.warmupMs)

    // ---------------------------------------------------------------- scenarios
    for (const scenario of options.order) {
      beginPhase(SCENARIO_TITLE[scenario])
      switch (scenario) {
        case "primary-kill": {
          const before = await counters()
          say(`SIGKILL redis primary (pid ${primary.pid()})`)
          await primary.kill("SIGKILL")
          await sleep(options.primaryDownMs)
          await primary.start()
          say(`redis primary restarted on port ${primary.port}, same dir (pid ${primary.pid()})`)
          await spoolDrained()
          const after = await counters()
          say(
            `spooled during the outage: ${(after?.spooled ?? 0) - (before?.spooled ?? 0)}, drained: ${
              (after?.drained ?? 0) - (before?.drained ?? 0)
            }`
          )
          await sleep(3000)
          break
        }
        case "writer-kill": {
          for (let k = 0; k < options.writerKills; k++) {
            const slot = k % options.writers
            const w = writers[slot]
            if (w === undefined || !isAlive(w.child)) {
              say(`writer-${slot} is not running; restarting it`)
              await startWriter(slot)
              continue
            }
            // kill while the writer holds read, uncommitted or unacknowledged entries
            let held: { name: string; pending: number } | undefined
            const deadline = Date.now() + 5000
            while (Date.now() < deadline) {
              held = await consumerPending(w.pid)
              if (held !== undefined && held.pending > 0) break
              await sleep(5)
            }
            await w.stop("SIGKILL")
            const left = held === undefined ? undefined : await consumerPending(w.pid)
            say(
              `kill ${k + 1}/${options.writerKills}: SIGKILL writer-${slot} (pid ${w.pid}, consumer ${held?.name ?? "?"}) holding ` +
                `${held?.pending ?? 0} pending entr${held?.pending === 1 ? "y" : "ies"}; ${left?.pending ?? "?"} left pending to reclaim`
            )
            if ((held?.pending ?? 0) === 0) notes.push(`writer kill ${k + 1}: no pending entries seen within 5 s (not mid-batch)`)
            const restarted = await startWriter(slot)
            say(`writer-${slot} restarted (pid ${restarted.pid}, a new consumer)`)
            await sleep(options.writerKillGapMs)
          }
          break
        }
        case "pg-restart": {
          for (const mode of options.pgRestarts) {
            if (mode === "sigkill") {
              const pid = pg.pid()
              const killed = await pg.crash()
              say(`PostgreSQL SIGKILL: postmaster ${pid} and its ${killed - 1} children`)
            } else {
              say(`PostgreSQL stop -m ${mode} (postmaster pid ${pg.pid()})`)
              await pg.stop(mode)
            }
            await sleep(options.pgDownMs)
            await pg.start()
            say(`PostgreSQL started again (pid ${pg.pid()})`)
            await sleep(options.pgRunMs)
          }
          break
        }
        case "master-kill": {
          const c = redisCluster
          if (c === undefined || clusterOptions === undefined) {
            failures.push(`scenario "master-kill" needs the cluster (options.cluster)`)
            break
          }
          for (let k = 0; k < clusterOptions.masterKills; k++) {
            // each time the master of another partition (the second kill hits another node)
            const key = streamKeys[(k * 7) % streamKeys.length]!
            const master = await c.masterOf(key)
            const replica = await c.replicaOf(master)
            const before = await counters()
            const lagMs = clusterOptions.replicaLagMs ?? 0
            const replicaPid = replica.pid()
            const pausedWriters = lagMs > 0 && clusterOptions.writersBehind === true
              ? writers.flatMap((w) => (w !== undefined && isAlive(w.child) ? [w.pid] : []))
              : []
            if (lagMs > 0 && replicaPid !== undefined) {
              for (const pid of pausedWriters) process.kill(pid, "SIGSTOP")
              say(
                `replica 127.0.0.1:${replica.port} stopped (SIGSTOP) for ${lagMs} ms before its master's kill: it falls behind` +
                  (pausedWriters.length > 0 ? `; the ${pausedWriters.length} writers too (the stream is not consumed meanwhile)` : "")
              )
              process.kill(replicaPid, "SIGSTOP")
              await sleep(lagMs)
            }
            const killedAt = Date.now()
            say(
              `master kill ${k + 1}/${clusterOptions.masterKills}: SIGKILL cluster master 127.0.0.1:${master.port} (pid ${master.pid()}, ` +
                `serves ${key}); its replica is 127.0.0.1:${replica.port}`
            )
            try {
              await master.kill("SIGKILL")
            } finally {
              if (lagMs > 0 && replicaPid !== undefined) process.kill(replicaPid, "SIGCONT")
              for (const pid of pausedWriters) process.kill(pid, "SIGCONT")
            }
            const promoted = await waitFor("the replica to be promoted", async () => {
              try {
                return (await c.masterOf(key)).port === replica.port
              } catch {
                return false
              }
            }, 60_000, 100)
            if (!promoted) {
              failures.push(`the replica of 127.0.0.1:${master.port} was not promoted within 60 s`)
              break
            }
            say(`replica 127.0.0.1:${replica.port} promoted ${Date.now() - killedAt} ms after the kill`)
            // until the killed node is back, the promoted master has no replica: with
            // REDIS_MIN_REPLICAS_ACK=1 its partitions' writes go to the spools (docs/scaling.md)
            await sleep(clusterOptions.masterDownMs)
            await master.start()
            await c.awaitHealthy()
            say(
              `killed node restarted (pid ${master.pid()}, same port and dir): back as the replica of 127.0.0.1:${replica.port}, ` +
                `cluster healthy ${Date.now() - killedAt} ms after the kill`
            )
            await spoolDrained()
            const after = await counters()
            say(
              `spools empty ${Date.now() - killedAt} ms after the kill; spooled meanwhile: ${(after?.spooled ?? 0) - (before?.spooled ?? 0)}, ` +
                `drained: ${(after?.drained ?? 0) - (before?.drained ?? 0)}`
            )
            await sleep(3000)
          }
          break
        }
        case "spool-full": {
          const old = collectors[0]!
          const stopped = await old.stop("SIGTERM")
          say(`collector stopped by SIGTERM under load: exit ${stopped.code ?? stopped.signal} after ${stopped.ms} ms`)
          if (stopped.code !== 0) failures.push(`collector SIGTERM under load exited ${stopped.code ?? stopped.signal}, not 0`)
          const restarted = await startCollector(0, { SPOOL_MAX_EVENTS: String(options.spoolMax) })
          say(`collector restarted with SPOOL_MAX_EVENTS=${options.spoolMax} (pid ${restarted.pid})`)
          await sleep(2000)
          say(`SIGKILL redis primary (pid ${primary.pid()})`)
          await primary.kill("SIGKILL")
          const full = await waitFor("the spool to fill (503)", async () => {
            const h = await health()
            return (h?.counters?.rejected.spool_full ?? 0) > 0
          }, 60_000, 100)
          const h1 = await health()
          say(`spool full: depth ${h1?.spoolDepth}, rejected spool_full ${h1?.counters?.rejected.spool_full}`)
          if (!full) failures.push(`the spool never reported full (SPOOL_MAX_EVENTS=${options.spoolMax})`)
          await sleep(options.spoolFullHoldMs)
          await primary.start()
          say(`redis primary restarted (pid ${primary.pid()})`)
          await spoolDrained()
          const h2 = await health()
          say(`spool drained: rejected spool_full ${h2?.counters?.rejected.spool_full}, drained ${h2?.counters?.drained}`)
          await sleep(2000)
          break
        }
      }
    }
    beginPhase("steady (cool-down)")
    await sleep(options.cooldownMs)

    // ---------------------------------------------------------------- stop the load, drain
    loadTracked.expected = true // it exits by itself once it wrote its results
    child.send({ type: "stop" })
    const requests = await loadDone
    attributeOthers()
    sampleOthers = undefined
    const lastPhase = phases[phases.length - 1]!
    lastPhase.endedAt = Date.now()
    say(`load stopped: ${fmt(requests)} requests`)
    clearInterval(monitor)
    monitor = undefined

    const drainStart = Date.now()
    let lastDrainLog = drainStart
    let stable = 0
    const drained = await waitFor("the spool and the stream to drain", async () => {
      const hs = await healths()
      const s = await streamState()
      const done = hs.every((h) => h?.primaryHealthy === true && h.spoolDepth === 0) && s.length === 0 && s.pending === 0
      stable = done ? stable + 1 : 0
      if (!done && Date.now() - lastDrainLog >= 5000) {
        lastDrainLog = Date.now()
        const holders = (await consumers()).filter((c) => c.pending > 0)
        say(
          `draining: spool ${hs.map((h) => h?.spoolDepth).join(" + ")}, stream ${s.length}, pending ${s.pending}` +
            (holders.length === 0 ? "" : ` (held by ${holders.map((c) => `${c.name}: ${c.pending}, idle ${(c.idle / 1000).toFixed(0)} s`).join("; ")})`)
        )
      }
      return stable >= 3
    }, options.drainTimeoutMs, 500)
    say(drained ? `drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s` : `NOT drained`)
    if (!drained) {
      const s = await streamState()
      failures.push(`not drained within ${options.drainTimeoutMs} ms: stream ${s.length}, pending ${s.pending}`)
    }

    // what the last writer processes saw (the counters of SIGKILLed ones died with them)
    for (const [i, w] of writers.entries()) {
      if (w === undefined) continue
      const h = await getJson<{ writer?: { written: number; duplicates: number; poison: number; retries: number; batches: number } }>(
        `http://127.0.0.1:${w.port}/health`
      )
      if (h?.writer !== undefined) {
        say(
          `writer-${i} (last process) counters: batches ${fmt(h.writer.batches)}, written ${fmt(h.writer.written)}, ` +
            `duplicates skipped ${fmt(h.writer.duplicates)}, poison ${h.writer.poison}, retried attempts ${h.writer.retries}`
        )
      }
    }

    // graceful stop of the pipeline processes
    stopping = true
    const stops = await Promise.all([
      ...collectors.map((c, i) => (c === undefined ? Promise.resolve(undefined) : c.stop("SIGTERM").then((r) => ({ name: collectorName(i), ...r })))),
      ...writers.map((w, i) => (w === undefined ? Promise.resolve(undefined) : w.stop("SIGTERM").then((r) => ({ name: `writer-${i}`, ...r }))))
    ])
    for (const s of stops) {
      if (s === undefined) continue
      say(`${s.name} SIGTERM: exit ${s.code ?? s.signal} after ${s.ms} ms`)
      if (s.code !== 0) failures.push(`${s.name} SIGTERM exited ${s.code ?? s.signal}, not 0`)
    }

    // ---------------------------------------------------------------- reconcile
    if (!existsSync(loadOut)) throw new Error("the load generator wrote no results")
    const cols = JSON.parse(readFileSync(loadOut, "utf8")) as LoadColumns
    const phaseInfo = phases.map((p) => ({ name: p.name, seconds: (p.endedAt - p.startedAt) / 1000 }))
    const db = await openDb(dbUrl, 2)
    try {
      if (options.sabotage === true) {
        const t = `${tag}.`
        const victim = cols.status.findIndex((st, i) => st === 202 && cols.events[i] === 1)
        const twice = cols.status.findIndex((st, i) => st === 202 && i > victim && cols.events[i] === 1)
        const rejected = cols.status.findIndex((st) => st === 503 || st === 400)
        await db.query(`DELETE FROM raw_events WHERE session_id = $1`, [`${t}${victim}.0`])
        await db.query(
          `INSERT INTO raw_events SELECT id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot, metadata,
                  "timestamp", received_at + interval '1 millisecond', visitor_id_daily, corp_id, domain_id
             FROM raw_events WHERE session_id = $1`,
          [`${t}${twice}.0`]
        )
        await db.query(
          `INSERT INTO raw_events (id, kind, event_type, session_id, "timestamp", received_at)
           VALUES (gen_random_uuid(), 'event', 'sabotage', $1, now(), now())`,
          [`${t}${rejected}.0`]
        )
        say(`SABOTAGE (harness self-check): deleted request ${victim}, stored request ${twice} twice, stored rejected request ${rejected}`)
      }
      say(`reconciling ${fmt(cols.status.length)} requests against raw_events …`)
      reconciliation = await reconcile(db, cols, phaseInfo)
    } finally {
      await db.close()
    }
    const r = reconciliation
    const others = phases.map((p, i) => (100 * (otherCpu[i] ?? 0)) / Math.max(0.001, (p.endedAt - p.startedAt) / 1000))
    const othersTotal = (100 * otherCpu.reduce((a, b) => a + b, 0)) / Math.max(0.001, (lastPhase.endedAt - phases[0]!.startedAt) / 1000)
    table = formatTable(r.rows, r.total, [...others, othersTotal])
    if (r.total.lost > 0) {
      // without REDIS_MIN_REPLICAS_ACK a master's SIGKILL may lose what its replica had not received
      // yet: what the setting exists for — reported, not a failure of this run
      if (clusterOptions !== undefined && clusterOptions.minReplicasAck === 0) {
        notes.push(`${r.total.lost} accepted event(s) LOST without REDIS_MIN_REPLICAS_ACK (asynchronous replication: acknowledged by a master that died before its replica had them)`)
      } else failures.push(`${r.total.lost} accepted event(s) LOST`)
    }
    if (r.total.duplicated > 0) failures.push(`${r.total.duplicated} DUPLICATED row(s)`)
    if (r.duplicateIds > 0) failures.push(`${r.duplicateIds} eventId(s) stored more than once`)
    if (r.total.storedRejected > 0) failures.push(`${r.total.storedRejected} event(s) stored although their request was rejected`)
    if (r.total.partialUnknown > 0) failures.push(`${r.total.partialUnknown} unanswered request(s) stored in part`)
    if (r.total.bad5xx > 0) failures.push(`${r.total.bad5xx} 5xx answer(s) other than 503 with Retry-After`)
    if (r.total.wrongStatus > 0) failures.push(`${r.total.wrongStatus} answer(s) with the wrong status (valid → 4xx or invalid → 2xx)`)
    if (r.total.badBody > 0) failures.push(`${r.total.badBody} 2xx answer(s) whose body is not as the contract says`)
    if (r.total.idMismatch > 0) failures.push(`${r.total.idMismatch} stored row(s) whose id is not the eventId the 202 returned`)
    if (r.unexpectedRows > 0) failures.push(`${r.unexpectedRows} stored row(s) no request of this run could have produced`)
    if (r.ingestFailures > 0) failures.push(`${r.ingestFailures} envelope(s) in ingest_failures (poison) instead of raw_events`)
    if (r.rollupMismatches.length > 0) failures.push(`${r.rollupMismatches.length} rollup bucket(s) disagree with the stored rows`)
    if (crashes.length > 0) {
      failures.push(`${crashes.length} process(es) exited by themselves: ${crashes.map((c) => `${c.name} (${c.code ?? c.signal})`).join(", ")}`)
    }
    const spoolScenario = r.rows.find((row) => row.phase === SCENARIO_TITLE["spool-full"])
    if (spoolScenario !== undefined && spoolScenario.c503 === 0) failures.push(`no 503 + Retry-After observed while the spool was full`)

    const groupConsumers = await consumers()
    say(
      `consumer group at the end: ${groupConsumers.length} consumers (${
        groupConsumers.filter((c) => c.pending === 0).length
      } without pending entries; consumers of SIGKILLed writers stay until the hourly maintenance removes the idle, empty ones)`
    )
    const logLines = summarizeLogs(runDir)
    say(`pipeline log WARN/ERROR summary (${logLines.length} distinct):`)
    for (const l of logLines.slice(0, 30)) log(`    ${l}`)
    // every fault the chaos injects has a handled path (retry, spool, reclaim): an ERROR means
    // one was not handled (e.g. a writer loop restart after a defect)
    const errorLines = logLines.filter((l) => / (ERROR|FATAL): /.test(l))
    if (errorLines.length > 0) failures.push(`ERROR/FATAL lines in the pipeline's logs: ${errorLines.slice(0, 5).join(" | ")}`)
    say(`raw_events rows: ${fmt(r.rawEvents)} · ingest_failures: ${r.ingestFailures} · rollup buckets checked: ${r.rollupBuckets}`)
    for (const m of r.rollupMismatches.slice(0, 20)) say(`rollup mismatch: ${m}`)
    for (const e of r.examples) say(`evidence: ${e}`)
  } catch (error) {
    failures.push(`harness error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    say(`harness error: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    stopping = true
    if (monitor !== undefined) clearInterval(monitor)
    unsubscribe()
    probe?.disconnect()
    await stopAll()
    pg.forget()
    const keep = options.keep || failures.length > 0
    if (keep) say(`run directory kept (logs, data): ${runDir}`)
    else removeDir(runDir)
  }
  say(`load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  return { ok: failures.length === 0, failures, notes, reconciliation, table, runDir }
}
