/**
 * End to end through the real daemon: POST /track/view with UTM + UA + client device →
 * the raw_events row, the session fingerprint and the rollups hold the enriched values.
 */
import { randomUUID } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, beforeAll, expect, it } from "vitest"
import { post, SHARED_REDIS } from "./support/collector.ts"
import { type Daemon, startDaemon } from "./support/daemon.ts"
import { testDatabase } from "./writerSupport.ts"

const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
const redis = new Redis(SHARED_REDIS)
const prefix = `test:e2e:${randomUUID().slice(0, 8)}`
let scope: Scope.Closeable
let sql: SqlClient.SqlClient
let daemon: Daemon

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  const db = await Effect.runPromise(Scope.provide(testDatabase("spoolway_e2e"), scope))
  const ctx = await Effect.runPromise(Scope.provide(Layer.build(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 2 })), scope))
  sql = Context.get(ctx, SqlClient.SqlClient)
  daemon = await startDaemon(["serve"], {
    DATABASE_URL: db.url,
    PRIMARY_REDIS_URL: SHARED_REDIS,
    SPOOL_REDIS_URL: SHARED_REDIS,
    STREAM_PREFIX: prefix,
    WRITER_BLOCK_MS: "100",
    // the test client is the trusted loopback proxy; X-Forwarded-For names the visitor
    TRUSTED_PROXIES: "127.0.0.0/8"
  })
}, 120_000)
afterAll(async () => {
  await daemon?.stop()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await redis.del(`${prefix}:events`, `${prefix}:spool`)
  redis.disconnect()
})

const q = <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.runPromise(sql.unsafe<A>(text, params as Array<unknown>))

it("a tracked view is stored enriched, fingerprinted and rolled up", async () => {
  const res = await post(daemon.baseUrl, "/track/view", {
    sessionId: "e2e-session",
    pageUrl: "https://shop.example/products/42?ref=x",
    referrer: "https://www.google.de/",
    attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "black-friday" },
    clientDevice: { screenWidth: 390, screenHeight: 844, viewportWidth: 390, touchPoints: 5, language: "de-DE", timezone: "Europe/Berlin" }
  }, {
    headers: {
      "user-agent": IPHONE,
      "accept-language": "de-DE,de;q=0.9",
      origin: "https://shop.example",
      // 8.8.8.8 is in geoip-lite's bundled data (US)
      "x-forwarded-for": "8.8.8.8"
    }
  })
  expect(res.status).toBe(202)
  const { eventId } = await res.json() as { eventId: string }

  let row: Record<string, unknown> | undefined
  for (let i = 0; i < 100 && row === undefined; i++) {
    row = (await q<Record<string, unknown>>(`SELECT * FROM raw_events WHERE id = $1::uuid`, [eventId]))[0]
    if (row === undefined) await new Promise((r) => setTimeout(r, 100))
  }
  expect(row).toBeDefined()
  expect(row).toMatchObject({ event_type: "pageview", session_id: "e2e-session", device_type: "mobile", is_bot: false })
  expect(row!["page_url"]).toBe("https://shop.example/products/42?ref=x")
  expect((row!["visitor_id_daily"] as Uint8Array).length).toBe(32)
  // the raw IP is never stored
  expect(JSON.stringify(row)).not.toContain("8.8.8.8")

  const [fp] = await q<Record<string, unknown>>(`SELECT * FROM session_fingerprints WHERE session_id = 'e2e-session'`)
  expect(fp).toBeDefined()
  const values = Object.values(fp!).map(String)
  for (const expected of ["Safari", "iOS", "17.1", "mobile", "US", "email", "newsletter", "black-friday", "https://www.google.de/"]) {
    expect(values, `fingerprint holds ${expected}`).toContain(expected)
  }
  expect(String(fp!["ip_hash"])).toMatch(/^[0-9a-f]{64}$/)
  expect(values).toContain("390")

  const rollups = await q<{ metric: string; dimension: string; dimension_value: string | null; value: string }>(
    `SELECT metric, dimension, dimension_value, value::text FROM aggregated_metrics WHERE granularity = 'day' AND metric = 'pageviews'`
  )
  const by = (dimension: string) => rollups.filter((r) => r.dimension === dimension).map((r) => [r.dimension_value, Number(r.value)])
  expect(by("source")).toEqual([["email", 1]])
  expect(by("device_type")).toEqual([["mobile", 1]])
  expect(by("browser")).toEqual([["Safari", 1]])
  expect(by("country")).toEqual([["US", 1]])
  expect(by("utm_campaign")).toEqual([["black-friday", 1]])

  // the writer's counters reach /metrics of the same process (from the writer thread within
  // ~100 ms of the commit the rows above are from)
  let metrics = ""
  const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1])
  for (const start = Date.now(); Date.now() - start < 5_000;) {
    metrics = await (await fetch(`${daemon.baseUrl}/metrics`)).text()
    if (sample("spoolway_written_events_total") === 1) break
    await new Promise((r) => setTimeout(r, 50))
  }
  expect(sample("spoolway_accepted_events_total")).toBe(1)
  expect(sample("spoolway_written_events_total")).toBe(1)
  expect(sample("spoolway_duplicate_events_total")).toBe(0)
  expect(sample("spoolway_stream_pending")).toBe(0)
}, 60_000)

it("client timestamps: one within [receivedAt − 7 days, + 1 day] is the event time; 2100-01-01 or -5 is replaced by receivedAt and kept in metadata", async () => {
  const hourAgo = new Date(Date.now() - 3_600_000).toISOString()
  const sent = [hourAgo, "2100-01-01T00:00:00Z", -5] as const
  const ids: Array<string> = []
  for (const timestamp of sent) {
    const res = await post(daemon.baseUrl, "/track/event", { eventType: "ts-check", sessionId: "e2e-ts", timestamp, metadata: { n: 1 } })
    expect(res.status).toBe(202)
    ids.push((await res.json() as { eventId: string }).eventId)
  }
  let rows: ReadonlyArray<{ id: string; timestamp: Date; received_at: Date; metadata: Record<string, unknown> }> = []
  for (let i = 0; i < 100 && rows.length < 3; i++) {
    rows = await q(`SELECT id::text AS id, "timestamp", received_at, metadata FROM raw_events WHERE id = ANY($1::uuid[])`, [ids])
    if (rows.length < 3) await new Promise((r) => setTimeout(r, 100))
  }
  const byId = new Map(rows.map((row) => [row.id, row]))
  const [near, future, negative] = ids.map((id) => byId.get(id)!)
  expect(near!.timestamp.toISOString()).toBe(hourAgo)
  expect(near!.metadata).toEqual({ n: 1 })
  expect(future!.timestamp.toISOString()).toBe(future!.received_at.toISOString())
  expect(future!.metadata).toEqual({ n: 1, $clientTimestamp: Date.parse("2100-01-01T00:00:00Z") })
  expect(negative!.timestamp.toISOString()).toBe(negative!.received_at.toISOString())
  expect(negative!.metadata).toEqual({ n: 1, $clientTimestamp: -5 })
}, 60_000)
