/**
 * The daemon as operators run it: a child process, SIGTERM under load, restart, roles,
 * and the maintenance commands (docs/operations.md).
 */
import { randomUUID } from "node:crypto"
import { Agent, request } from "node:http"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { post, SHARED_REDIS } from "./support/collector.ts"
import { runCliInProcess } from "./support/cliInProcess.ts"
import { runCli, startDaemon } from "./support/daemon.ts"
import { redisProcess } from "./support/redisProcess.ts"
import { testDatabase } from "./writerSupport.ts"

const redis = new Redis(SHARED_REDIS)
/** a browser's: the events count as human ones (fetch's own User-Agent, `node`, is a bot's) */
const BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
let scope: Scope.Closeable
let dbUrl: string
let sqlScope: Scope.Closeable
let sql: SqlClient.SqlClient

const query = <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.runPromise(sql.unsafe<A>(text, params as Array<unknown>))

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  dbUrl = (await Effect.runPromise(Scope.provide(testDatabase("spoolway_daemon"), scope))).url
  sqlScope = await Effect.runPromise(Scope.make())
  const ctx = await Effect.runPromise(
    Scope.provide(Layer.build(PgClient.layer({ url: Redacted.make(dbUrl), maxConnections: 2 })), sqlScope)
  )
  sql = Context.get(ctx, SqlClient.SqlClient)
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(sqlScope, Exit.void))
  await Effect.runPromise(Scope.close(scope, Exit.void))
  redis.disconnect()
})

/** (called inside tests: dbUrl is set in beforeAll) */
const envFor = (prefix: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: dbUrl,
  PRIMARY_REDIS_URL: SHARED_REDIS,
  SPOOL_REDIS_URL: SHARED_REDIS,
  STREAM_PREFIX: prefix,
  RATE_LIMIT_PER_MINUTE: "0",
  WRITER_BLOCK_MS: "100",
  PROBE_INTERVAL_MS: "1000",
  ...extra
})

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("graceful shutdown", () => {
  it("SIGTERM under a steady request stream: every 2xx is in raw_events exactly once after a restart; no 5xx while up", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const env = envFor(prefix)
    const first = await startDaemon(["serve"], env)
    const accepted: Array<string> = []
    const failures: Array<string> = []
    let running = true
    let n = 0
    const loop = async () => {
      while (running) {
        try {
          const res = await post(first.baseUrl, "/track/event", { eventType: "steady", sessionId: `s${n++}` }, {
            headers: { "user-agent": BROWSER_UA }
          })
          const body = await res.json() as { eventId?: string }
          if (res.status === 202) accepted.push(body.eventId!)
          else failures.push(`status ${res.status}`)
        } catch {
          // refused once the server stopped accepting: the client would retry elsewhere
          await new Promise((r) => setTimeout(r, 20))
        }
      }
    }
    const loops = Array.from({ length: 4 }, loop)
    await new Promise((r) => setTimeout(r, 1500))
    const stoppedAt = Date.now()
    const code = await first.stop("SIGTERM")
    const stopMs = Date.now() - stoppedAt
    running = false
    await Promise.all(loops)
    expect(code, first.output()).toBe(0)
    expect(failures.filter((f) => f.startsWith("status 5"))).toEqual([])
    expect(accepted.length).toBeGreaterThan(50)
    expect(stopMs).toBeLessThan(15_000)

    // a restart writes whatever the first run left in the stream
    const second = await startDaemon(["serve"], env)
    await waitFor("the stream to be written", async () => {
      const rows = await query<{ n: number }>(
        `SELECT count(*)::int AS n FROM raw_events WHERE id = ANY($1::uuid[])`,
        [accepted]
      )
      return rows[0]!.n === accepted.length
    })
    const rows = await query<{ id: string; n: number }>(
      `SELECT id::text AS id, count(*)::int AS n FROM raw_events WHERE id = ANY($1::uuid[]) GROUP BY id HAVING count(*) <> 1`,
      [accepted]
    )
    expect(rows).toEqual([])
    const events = await query<{ n: number }>(
      `SELECT coalesce(sum(value), 0)::int AS n FROM aggregated_metrics WHERE metric = 'events' AND dimension = 'event_type' AND dimension_value = 'steady' AND granularity = 'day'`
    )
    expect(events[0]!.n).toBe(accepted.length)
    expect(await second.stop("SIGINT")).toBe(0)
    await redis.del(`${prefix}:events`, `${prefix}:spool`)
  }, 90_000)
})

describe("lame duck", () => {
  /** one POST over a keep-alive agent; resolves with the status or the socket error's code */
  const send = (agent: Agent, baseUrl: string) =>
    new Promise<string>((resolve) => {
      const req = request(`${baseUrl}/track/event`, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
        res.resume()
        res.on("end", () => resolve(`${res.statusCode}${res.headers.connection === "close" ? " close" : ""}`))
      })
      req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
      req.end(JSON.stringify({ eventType: "lame-duck", sessionId: "s" }))
    })

  it("SIGTERM under keep-alive load: no request is reset — each is answered (Connection: close once draining) or its connection refused", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const daemon = await startDaemon(["serve", "--role", "collector"], envFor(prefix, { SHUTDOWN_GRACE_MS: "2000" }))
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    const tally = new Map<string, number>()
    let running = true
    // 32 connections, each with its own short pause, so some are idle whenever the signal comes
    const loops = Array.from({ length: 32 }, async (_, i) => {
      while (running) {
        const outcome = await send(agent, daemon.baseUrl)
        tally.set(outcome, (tally.get(outcome) ?? 0) + 1)
        await new Promise((r) => setTimeout(r, (i % 8) * 3))
      }
    })
    await new Promise((r) => setTimeout(r, 1500))
    const code = await daemon.stop("SIGTERM")
    running = false
    await Promise.all(loops)
    agent.destroy()
    const counts = Object.fromEntries(tally)
    expect(code, daemon.output()).toBe(0)
    expect(counts["ECONNRESET"], JSON.stringify(counts)).toBeUndefined()
    expect(Object.keys(counts).sort(), JSON.stringify(counts)).toEqual(["202", "202 close", "ECONNREFUSED"])
    expect(counts["202"]).toBeGreaterThan(100)
    await redis.del(`${prefix}:events`, `${prefix}:spool`)
  }, 60_000)

  it("a request still in flight when the grace ends (its body arriving slowly) is answered before the process exits", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const daemon = await startDaemon(["serve", "--role", "collector"], envFor(prefix, { SHUTDOWN_GRACE_MS: "300" }))
    const body = JSON.stringify({ eventType: "slow-body", sessionId: "s" })
    const answer = new Promise<{ status: number; connection: string | undefined; eventId: string }>((resolve, reject) => {
      const req = request(`${daemon.baseUrl}/track/event`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }
      }, (res) => {
        let text = ""
        res.on("data", (d) => (text += d))
        res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection, eventId: JSON.parse(text).eventId }))
      })
      req.on("error", reject)
      req.write(body.slice(0, 10))
      // the rest well after the signal and the grace
      setTimeout(() => req.end(body.slice(10)), 1200)
    })
    await new Promise((r) => setTimeout(r, 300))
    const exited = daemon.stop("SIGTERM")
    const result = await answer
    expect(result.status).toBe(202)
    expect(result.connection).toBe("close")
    expect(await exited, daemon.output()).toBe(0)
    // accepted means stored in the stream
    const entries = await redis.xrange(`${prefix}:events`, "-", "+")
    expect(entries.some(([, fields]) => fields.join(" ").includes(result.eventId))).toBe(true)
    await redis.del(`${prefix}:events`, `${prefix}:spool`)
  }, 60_000)
})

describe("roles", () => {
  it("the collector role starts and serves with no database reachable", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const d = await startDaemon(["serve", "--role", "collector"], envFor(prefix, { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" }))
    const res = await post(d.baseUrl, "/track/view", { sessionId: "s" })
    expect(res.status).toBe(202)
    expect(await redis.xlen(`${prefix}:events`)).toBe(1)
    expect(await d.stop()).toBe(0)
    await redis.del(`${prefix}:events`)
  }, 60_000)

  it("the writer role serves health and metrics but not the tracking API", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const d = await startDaemon(["serve", "--role", "writer"], envFor(prefix))
    expect((await fetch(`${d.baseUrl}/health`)).status).toBe(200)
    expect((await fetch(`${d.baseUrl}/metrics`)).status).toBe(200)
    expect((await post(d.baseUrl, "/track/view", { sessionId: "s" })).status).toBe(404)
    expect(await d.stop()).toBe(0)
    // the writer created its consumer group, and with it the stream
    await redis.del(`${prefix}:events`, `${prefix}:spool`)
  }, 60_000)
})

describe("role all: where the writer runs", () => {
  for (const thread of [true, false]) {
    it(`WRITER_THREAD=${thread}: events land once, /health and /metrics carry the writer's counters, SIGTERM exits 0`, async () => {
      const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
      const d = await startDaemon(["serve"], envFor(prefix, { WRITER_THREAD: String(thread) }))
      const ids: Array<string> = []
      for (let i = 0; i < 20; i++) {
        const res = await post(d.baseUrl, "/track/event", { eventType: "thread-check", sessionId: `t${i}` })
        expect(res.status).toBe(202)
        ids.push(((await res.json()) as { eventId: string }).eventId)
      }
      await waitFor("the rows", async () => {
        const rows = await query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_events WHERE id = ANY($1::uuid[])`, [ids])
        return rows[0]!.n === ids.length
      })
      // counters reach the main thread within ~100 ms of the commit
      await waitFor("the counters", async () => {
        const health = (await (await fetch(`${d.baseUrl}/health`)).json()) as { writer?: { written: number } }
        const metrics = await (await fetch(`${d.baseUrl}/metrics`)).text()
        return health.writer?.written === ids.length && /^spoolway_written_events_total 20$/m.test(metrics)
      }, 5_000)
      expect(d.output().includes("writer running in a worker thread"), d.output()).toBe(thread)
      expect(await d.stop("SIGTERM"), d.output()).toBe(0)
      await redis.del(`${prefix}:events`, `${prefix}:spool`)
    }, 60_000)
  }
})

describe("role all: readiness", () => {
  it("stays ready while the primary Redis is down and the spool takes the events (the writer's state is reported, not required)", async () => {
    const prefix = `test:daemon:${randomUUID().slice(0, 8)}`
    const primary = await redisProcess({ appendonly: false })
    try {
      const d = await startDaemon(["serve"], envFor(prefix, { PRIMARY_REDIS_URL: primary.url, WRITER_THREAD: "false" }))
      expect((await fetch(`${d.baseUrl}/health/ready`)).status).toBe(200)
      await primary.kill("SIGKILL")
      // the probe (every second here) marks the primary down; the spool keeps taking events
      await waitFor("the primary to be seen down", async () => {
        const health = (await (await fetch(`${d.baseUrl}/health`)).json()) as { primaryHealthy?: boolean }
        return health.primaryHealthy === false
      })
      const ready = await fetch(`${d.baseUrl}/health/ready`)
      const health = (await (await fetch(`${d.baseUrl}/health`)).json()) as { status: string; stream: unknown }
      expect(ready.status, JSON.stringify(health)).toBe(200)
      expect(health.status).toBe("degraded")
      expect(health.stream).toBeNull() // the writer cannot reach the stream, and says so
      const res = await post(d.baseUrl, "/track/event", { eventType: "while-primary-down", sessionId: "r1" })
      expect(res.status).toBe(202)
      expect(await redis.xlen(`${prefix}:spool`)).toBe(1)
      expect(await d.stop(), d.output()).toBe(0)
    } finally {
      await primary.cleanup()
      await redis.del(`${prefix}:events`, `${prefix}:spool`)
    }
  }, 60_000)
})

describe("maintenance commands", () => {
  const prefix = `test:cli:${randomUUID().slice(0, 8)}`
  let env: Record<string, string>
  beforeAll(() => {
    env = envFor(prefix)
  })
  // `migrate` runs as the real binary here; the other commands run the CLI's program in this process
  // (test/support/cliInProcess.ts), which saves a Node start per call

  it("migrate applies the schema once, then reports it up to date", async () => {
    const fresh = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* testDatabase("spoolway_migrate")
      const a = yield* Effect.promise(() => runCli(["migrate"], { ...env, DATABASE_URL: db.url }))
      const b = yield* Effect.promise(() => runCli(["migrate"], { ...env, DATABASE_URL: db.url }))
      return [a, b]
    })))
    expect(fresh[0]!.code, fresh[0]!.out).toBe(0)
    expect(fresh[0]!.out).toContain("applied: 1_initial")
    expect(fresh[1]!.out).toContain("schema is up to date")
  }, 60_000)

  it("status reports primary health, stream length and spool depth", async () => {
    await redis.xadd(`${prefix}:spool`, "*", "e", JSON.stringify({ receivedAt: new Date(Date.now() - 5000).toISOString() }))
    const { code, out } = await runCliInProcess(["status", "--json"], { ...env, PORT: "1" })
    expect(code, out).toBe(0)
    const report = JSON.parse(out.slice(out.indexOf("{")))
    expect(report.primary.healthy).toBe(true)
    expect(report.spool.depth).toBe(1)
    expect(report.spool.oldestAgeMs).toBeGreaterThanOrEqual(5000)
    expect(report.daemon.reachable).toBe(false)
    await redis.del(`${prefix}:spool`)
  }, 60_000)

  it("retention creates the coming partitions and drops expired ones, idempotently", async () => {
    const old = new Date(Date.now() - 200 * 86_400_000).toISOString().slice(0, 10)
    await runCliInProcess(["migrate"], env)
    await query(`SELECT spoolway_ensure_raw_event_partitions($1::date, 1)`, [old])
    const oldName = `raw_events_p${old.replaceAll("-", "")}`
    const before = await query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname = $1`, [oldName])
    expect(before[0]!.n).toBe(1)
    const first = await runCliInProcess(["retention"], env)
    expect(first.code, first.out).toBe(0)
    expect(first.out).toContain(oldName)
    const after = await query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname = $1`, [oldName])
    expect(after[0]!.n).toBe(0)
    const ahead = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10).replaceAll("-", "")
    const future = await query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname = $1`, [`raw_events_p${ahead}`])
    expect(future[0]!.n).toBe(1)
    const second = await runCliInProcess(["retention"], env)
    expect(second.code).toBe(0)
    expect(second.out).toContain("dropped: none")
  }, 60_000)

  it("salts rotate creates today's salt and deletes salts older than the horizon", async () => {
    await runCliInProcess(["migrate"], env)
    const oldDay = new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10)
    await query(`INSERT INTO visitor_salts (day, salt) VALUES ($1::date, decode(repeat('00', 32), 'hex')) ON CONFLICT DO NOTHING`, [oldDay])
    const { code, out } = await runCliInProcess(["salts", "rotate"], env)
    expect(code, out).toBe(0)
    const today = new Date().toISOString().slice(0, 10)
    const days = (await query<{ day: string }>(`SELECT to_char(day, 'YYYY-MM-DD') AS day FROM visitor_salts`)).map((r) => r.day)
    expect(days).toContain(today)
    expect(days).not.toContain(oldDay)
  }, 60_000)

  it("replay-failures re-enqueues a row that now decodes, once; a still-bad row stays", async () => {
    await runCliInProcess(["migrate"], env)
    const good = JSON.stringify({
      v: 1,
      eventId: randomUUID(),
      kind: "event",
      receivedAt: new Date().toISOString(),
      edge: { headers: {} },
      payload: { eventType: "replayed", sessionId: "s", isView: false }
    })
    await query(`INSERT INTO ingest_failures (stream_key, entry_id, payload, error, attempts) VALUES ($2, '1-1', $1, 'was broken', 6), ($2, '1-2', '{not json', 'undecodable', 1)`, [good, `${prefix}:events`])
    const dry = await runCliInProcess(["replay-failures", "--dry-run"], env)
    expect(dry.out).toContain("would replay 1")
    expect(await redis.xlen(`${prefix}:events`)).toBe(0)
    const first = await runCliInProcess(["replay-failures"], env)
    expect(first.code, first.out).toBe(0)
    expect(first.out).toContain("replayed 1")
    expect(first.out).toContain("1 still undecodable")
    const again = await runCliInProcess(["replay-failures"], env)
    expect(again.out).toContain("replayed 0")
    const entries = await redis.xrange(`${prefix}:events`, "-", "+")
    expect(entries.map(([, f]) => f[1])).toEqual([good])
    await redis.del(`${prefix}:events`)
  }, 60_000)
})
