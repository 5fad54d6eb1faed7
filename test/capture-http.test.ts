/**
 * The collector over a real socket on the suite's real Redis (own STREAM_PREFIX).
 */
import { beforeAll, describe, expect, it } from "vitest"
import {
  post,
  primaryEnvelopes,
  type RunningCollector,
  spoolEnvelopes,
  testCollectors,
  TRACKING_PATHS,
  uniquePrefix
} from "./support/collector.ts"

const { redis, start } = testCollectors()

describe("accepted events", () => {
  let c: RunningCollector
  beforeAll(async () => {
    c = await start({ writeKeys: ["k-123"] })
  })

  it("202 + eventId, and the stream entry decodes to the same envelope with the edge fields", async () => {
    const before = Date.now()
    const res = await post(c.baseUrl, "/track/view", {
      sessionId: "sess-1",
      pageUrl: "https://shop.example/p/1",
      attribution: { utmSource: "newsletter", utmMedium: "email" },
      clientDevice: { viewportWidth: 390, touchPoints: 5 }
    }, {
      headers: {
        "x-write-key": "k-123",
        "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
        "accept-language": "de-DE,de;q=0.9",
        origin: "https://shop.example",
        referer: "https://shop.example/p/1"
      }
    })
    expect(res.status).toBe(202)
    const body = await res.json() as { success: boolean; eventId: string }
    expect(body.success).toBe(true)
    const [envelope, ...rest] = await primaryEnvelopes(redis, c.prefix)
    expect(rest).toHaveLength(0)
    expect(envelope!.eventId).toBe(body.eventId)
    expect(envelope!.v).toBe(1)
    expect(envelope!.kind).toBe("view")
    const receivedAt = Date.parse(envelope!.receivedAt)
    expect(receivedAt).toBeGreaterThanOrEqual(before - 5)
    expect(receivedAt).toBeLessThanOrEqual(Date.now() + 5)
    expect(envelope!.edge).toEqual({
      ip: "127.0.0.1",
      ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
      lang: "de-DE,de;q=0.9",
      headers: { origin: "https://shop.example", referer: "https://shop.example/p/1", host: new URL(c.baseUrl).host }
    })
    expect(envelope!.payload).toEqual({
      eventType: "pageview",
      sessionId: "sess-1",
      isView: true,
      pageUrl: "https://shop.example/p/1",
      attribution: { utmSource: "newsletter", utmMedium: "email" },
      clientDevice: { viewportWidth: 390, touchPoints: 5 }
    })
    await redis.del(`${c.prefix}:events`)
  })

  it("a batch answers count, writes one entry per event, all with distinct ids", async () => {
    const events = Array.from({ length: 25 }, (_, i) => ({ eventType: `e${i}`, sessionId: "s" }))
    const res = await post(c.baseUrl, "/track/batch", { events }, { headers: { "x-write-key": "k-123" } })
    expect(res.status).toBe(202)
    expect(await res.json()).toEqual({ success: true, count: 25 })
    const stored = await primaryEnvelopes(redis, c.prefix)
    expect(stored.map((e) => e.payload.eventType)).toEqual(events.map((e) => e.eventType))
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(25)
    expect(new Set(stored.map((e) => e.receivedAt)).size).toBe(1)
    await redis.del(`${c.prefix}:events`)
  })

  it("an empty batch is valid: 202 count 0, nothing written", async () => {
    const res = await post(c.baseUrl, "/track/interaction", { events: [] }, { headers: { "x-write-key": "k-123" } })
    expect(res.status).toBe(202)
    expect(await res.json()).toEqual({ success: true, count: 0 })
    expect(await primaryEnvelopes(redis, c.prefix)).toHaveLength(0)
  })

  it("beacon: text/plain body with ?writeKey= is accepted", async () => {
    const res = await fetch(`${c.baseUrl}/track/event?writeKey=k-123`, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({ eventType: "beacon", sessionId: "s" })
    })
    expect(res.status).toBe(202)
    const stored = await primaryEnvelopes(redis, c.prefix)
    expect(stored.map((e) => e.payload.eventType)).toEqual(["beacon"])
    await redis.del(`${c.prefix}:events`)
  })

  it("every endpoint accepts its minimal valid body", async () => {
    const bodies: Array<[string, unknown]> = [
      ["/track/view", { sessionId: "s" }],
      ["/track/engagement", { userId: "u", metricType: "like" }],
      ["/track/interaction", { events: [{ type: "click", sessionId: "s" }] }],
      ["/track/event", { eventType: "e", sessionId: "s" }],
      ["/track/batch", { events: [{ eventType: "e", sessionId: "s" }] }],
      ["/track/conversion", { conversionType: "purchase", sessionId: "s", value: 5, currency: "USD" }],
      ["/track/funnel", { funnelId: "f", stepId: "a", stepOrder: 0, sessionId: "s" }],
      ["/track/registration-funnel", { event: "visit", sessionId: "s", timestamp: "2026-01-01T00:00:00Z" }]
    ]
    for (const [path, body] of bodies) {
      const res = await post(c.baseUrl, path, body, { headers: { "x-write-key": "k-123" } })
      expect(res.status, path).toBe(202)
    }
    const kinds = (await primaryEnvelopes(redis, c.prefix)).map((e) => e.kind)
    expect(kinds).toEqual(["view", "engagement", "interaction", "event", "batch", "conversion", "funnel", "registration-funnel"])
    await redis.del(`${c.prefix}:events`)
  })

  it("sessionId is optional on every endpoint: 202, and the envelope carries none (the writer assigns it)", async () => {
    const bodies: Array<[string, unknown]> = [
      ["/track/view", { pageUrl: "https://a.example/" }],
      ["/track/interaction", { events: [{ type: "click" }] }],
      ["/track/event", { eventType: "engagement" }],
      ["/track/batch", { events: [{ eventType: "e" }] }],
      ["/track/conversion", { conversionType: "purchase" }],
      ["/track/funnel", { funnelId: "f", stepId: "a", stepOrder: 0 }],
      ["/track/registration-funnel", { event: "visit", timestamp: "2026-01-01T00:00:00Z" }],
      // every field of a view is optional: an empty object is a view of page ""
      ["/track/view", {}]
    ]
    for (const [path, body] of bodies) {
      const res = await post(c.baseUrl, path, body, { headers: { "x-write-key": "k-123" } })
      expect(res.status, path).toBe(202)
    }
    const envelopes = await primaryEnvelopes(redis, c.prefix)
    expect(envelopes).toHaveLength(bodies.length)
    for (const envelope of envelopes) expect("sessionId" in envelope.payload).toBe(false)
    expect(envelopes.at(-1)!.payload).toMatchObject({ eventType: "pageview", isView: true, pageUrl: "" })
    await redis.del(`${c.prefix}:events`)
  })

  it("a sessionId starting with \"~\" (reserved for server-assigned sessions) → 400 naming it; nothing written", async () => {
    const res = await post(c.baseUrl, "/track/view", { sessionId: "~mine" }, { headers: { "x-write-key": "k-123" } })
    expect(res.status).toBe(400)
    const body = await res.json() as { issues: Array<{ path: Array<string | number>; message: string }> }
    expect(body.issues).toEqual([{ path: ["sessionId"], message: expect.stringContaining("must not start with") }])
    expect(await primaryEnvelopes(redis, c.prefix)).toHaveLength(0)
  })

  it("answers CORS preflight (CORS_ORIGINS=*, no site): the caller's origin, with credentials", async () => {
    const pre = await fetch(`${c.baseUrl}/track/event`, {
      method: "OPTIONS",
      headers: { origin: "https://a.example", "access-control-request-method": "POST" }
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get("access-control-allow-origin")).toBe("https://a.example")
    expect(pre.headers.get("access-control-allow-credentials")).toBe("true")
  })

  it("serves health, OpenAPI and docs without a key", async () => {
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as Record<string, unknown>
    expect(health).toMatchObject({ status: "ok", primaryHealthy: true, spoolDepth: 0 })
    expect((await fetch(`${c.baseUrl}/health/live`)).status).toBe(200)
    expect((await fetch(`${c.baseUrl}/health/ready`)).status).toBe(200)
    const openapi = await (await fetch(`${c.baseUrl}/openapi.json`)).json() as { paths: Record<string, unknown> }
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining([...TRACKING_PATHS]))
    const docs = await fetch(`${c.baseUrl}/docs`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toContain("text/html")
  })
})

describe("rejections leave the stream untouched and are never 5xx", () => {
  let c: RunningCollector
  beforeAll(async () => {
    c = await start({ writeKeys: ["k-1", "k-2"], maxBodyBytes: 2048, maxBatchEvents: 3, rateLimitPerMinute: 0 })
  })
  const key = { "x-write-key": "k-2" }

  const cases: Array<[string, () => Promise<Response>, number, string]> = [
    ["no write key", () => post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }), 401, "unauthorized"],
    ["wrong write key", () => post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, { headers: { "x-write-key": "k-3" } }), 401, "unauthorized"],
    ["wrong ?writeKey=", () => fetch(`${c.baseUrl}/track/event?writeKey=nope`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" }), 401, "unauthorized"],
    ["malformed JSON", () => post(c.baseUrl, "/track/event", null, { headers: key, raw: "{\"eventType\": " }), 400, "malformed_json"],
    ["invalid UTF-8", () => post(c.baseUrl, "/track/event", null, { headers: key, raw: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }), 400, "malformed_json"],
    ["wrong types", () => post(c.baseUrl, "/track/event", { eventType: 7, sessionId: ["s"] }, { headers: key }), 400, "invalid_request"],
    ["batch over the limit", () => post(c.baseUrl, "/track/batch", { events: Array.from({ length: 4 }, () => ({ eventType: "e", sessionId: "s" })) }, { headers: key }), 400, "invalid_request"],
    ["body too large", () => post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s", metadata: { pad: "x".repeat(4000) } }, { headers: key }), 413, "payload_too_large"],
    ["form content type", () => post(c.baseUrl, "/track/event", null, { headers: key, raw: "a=b", contentType: "application/x-www-form-urlencoded" }), 415, "unsupported_media_type"],
    ["no content type", () => post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, { headers: key, contentType: null, raw: new TextEncoder().encode("{}") }), 415, "unsupported_media_type"]
  ]

  it.each(cases)("%s", async (_name, send, status, error) => {
    const res = await send()
    expect(res.status).toBe(status)
    expect((await res.json() as { error: string }).error).toBe(error)
    expect(await primaryEnvelopes(redis, c.prefix)).toHaveLength(0)
    expect(await spoolEnvelopes(redis, c.prefix)).toHaveLength(0)
  })

  it("a 400 names each bad field by path and why", async () => {
    const res = await post(c.baseUrl, "/track/batch", { events: [{ eventType: "a", sessionId: "s" }, { eventType: 3, sessionId: "~s" }] }, { headers: key })
    expect(res.status).toBe(400)
    const body = await res.json() as { error: string; issues: Array<{ path: Array<string | number>; message: string }> }
    expect(body.error).toBe("invalid_request")
    const paths = body.issues.map((i) => i.path)
    expect(paths).toContainEqual(["events", 1, "eventType"])
    expect(paths).toContainEqual(["events", 1, "sessionId"])
    for (const issue of body.issues) expect(issue.message.length).toBeGreaterThan(0)
    expect(await primaryEnvelopes(redis, c.prefix)).toHaveLength(0)
  })
})

describe("rate limit", () => {
  it("429 with Retry-After once a client IP spends its budget; nothing written for it", async () => {
    const c = await start({ rateLimitPerMinute: 3 })
    const statuses: Array<number> = []
    let retryAfter: string | null = null
    for (let i = 0; i < 5; i++) {
      const res = await post(c.baseUrl, "/track/event", { eventType: `e${i}`, sessionId: "s" })
      statuses.push(res.status)
      if (res.status === 429) retryAfter = res.headers.get("retry-after")
    }
    expect(statuses).toEqual([202, 202, 202, 429, 429])
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    expect((await primaryEnvelopes(redis, c.prefix)).map((e) => e.payload.eventType)).toEqual(["e0", "e1", "e2"])
    // another client (a forwarded one, via the trusted loopback proxy) has its own budget
    const other = await post(c.baseUrl, "/track/event", { eventType: "other", sessionId: "s" }, {
      headers: { "x-forwarded-for": "203.0.113.9" }
    })
    expect(other.status).toBe(202)
  })
})

describe("client IP and X-Forwarded-For", () => {
  it("is used from a trusted proxy (loopback by default): the first untrusted hop from the right", async () => {
    const c = await start({})
    await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, {
      headers: { "x-forwarded-for": "198.51.100.7, 203.0.113.9, 127.0.0.1" }
    })
    const [e] = await primaryEnvelopes(redis, c.prefix)
    expect(e!.edge.ip).toBe("203.0.113.9")
  })

  it("is ignored from an untrusted peer", async () => {
    const c = await start({ trustedProxies: ["10.0.0.0/8"] })
    await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, {
      headers: { "x-forwarded-for": "198.51.100.7", "x-real-ip": "198.51.100.8" }
    })
    const [e] = await primaryEnvelopes(redis, c.prefix)
    expect(e!.edge.ip).toBe("127.0.0.1")
  })
})

describe("Redis unreachable", () => {
  it("503 with Retry-After, nothing half-accepted (a batch is all or nothing)", async () => {
    // both sides point at a port where nothing listens
    const dead = "redis://127.0.0.1:1"
    const c = await start({ primaryRedisUrl: dead, spoolRedisUrl: dead, streamPrefix: uniquePrefix("dead") })
    const res = await post(c.baseUrl, "/track/batch", { events: [{ eventType: "a", sessionId: "s" }, { eventType: "b", sessionId: "s" }] })
    expect(res.status).toBe(503)
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    const single = await post(c.baseUrl, "/track/view", { sessionId: "s" })
    expect(single.status).toBe(503)
    expect((await fetch(`${c.baseUrl}/health/ready`)).status).toBe(503)
    expect((await fetch(`${c.baseUrl}/health/live`)).status).toBe(200)
    expect(await primaryEnvelopes(redis, c.prefix)).toHaveLength(0)
  })
})

describe("GET /metrics", () => {
  it("is Prometheus text whose counters match what was sent", async () => {
    const c = await start({ writeKeys: ["m"], rateLimitPerMinute: 0 })
    for (let i = 0; i < 3; i++) await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, { headers: { "x-write-key": "m" } })
    await post(c.baseUrl, "/track/batch", { events: [{ eventType: "a", sessionId: "s" }, { eventType: "b", sessionId: "s" }] }, { headers: { "x-write-key": "m" } })
    await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" })
    await post(c.baseUrl, "/track/event", { eventType: 1 }, { headers: { "x-write-key": "m" } })
    const res = await fetch(`${c.baseUrl}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/plain")
    const text = await res.text()
    // every non-comment line is `name{labels} value`
    const samples = new Map<string, number>()
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/.exec(line)
      expect(m, line).not.toBeNull()
      samples.set(m![1]!, Number(m![2]))
    }
    expect(samples.get("spoolway_accepted_events_total")).toBe(5)
    expect(samples.get('spoolway_rejected_total{reason="unauthorized"}')).toBe(1)
    expect(samples.get('spoolway_rejected_total{reason="invalid_request"}')).toBe(1)
    expect(samples.get("spoolway_primary_healthy")).toBe(1)
    expect(samples.get("spoolway_spool_depth")).toBe(0)
    expect(samples.get("spoolway_http_request_duration_seconds_count")).toBe(6)
  })
})
