/**
 * Sites at the collector (issue 13), over a real socket on real Redis: the registry published to
 * the primary Redis decides what is stored — every content type × allowed/disallowed origin ×
 * write/server/rotated/expired key — CORS follows it, and the collector keeps enforcing without
 * PostgreSQL (it has none) and without its primary Redis (local copy on the spool Redis).
 */
import { Effect, Schema } from "effect"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { hashKey, type SiteSnapshot } from "../src/domain/Site.ts"
import { sitesCopyKey, sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { publishSnapshot } from "../src/layers/SitePublisher.ts"
import { post, primaryEnvelopes, type RunningCollector, SHARED_REDIS, spoolEnvelopes, testCollectors, uniquePrefix } from "./support/collector.ts"
import { startDaemon } from "./support/daemon.ts"

const { redis, removeAfterwards, start } = testCollectors({
  defaults: { rateLimitPerMinute: 0, sitesRefreshMs: 50 },
  keysOf: (prefix) => [sitesKey(prefix), sitesVersionKey(prefix), sitesCopyKey(prefix)]
})

const K = {
  write: "sw_pub_site-a-write",
  server: "sw_sec_site-a-server",
  rotated: "sw_pub_site-a-rotated-out",
  expired: "sw_pub_site-a-expired",
  otherWrite: "sw_pub_site-b-write"
} as const
const A = 41
const B = 42
const ALLOWED = "http://app.site-a.test:8080"
const DISALLOWED = "https://evil.example"

const registry = (version: number, sites: SiteSnapshot["sites"] = siteList()): SiteSnapshot => ({ v: 1, version, sites })
const siteList = (): SiteSnapshot["sites"] => [
  {
    id: A,
    hostnames: ["site-a.test", "app.site-a.test"],
    origins: null,
    keys: [
      { kind: "write", hash: hashKey(K.write) },
      { kind: "server", hash: hashKey(K.server) },
      { kind: "write", hash: hashKey(K.rotated), expiresAt: Date.now() + 3_600_000 },
      { kind: "write", hash: hashKey(K.expired), expiresAt: Date.now() - 1 }
    ]
  },
  { id: B, hostnames: ["site-b.test"], origins: ["https://site-b.test"], keys: [{ kind: "write", hash: hashKey(K.otherWrite) }] }
]

const publish = (prefix: string, snapshot: SiteSnapshot) => Effect.runPromise(publishSnapshot(redis, prefix, snapshot))

const streamLength = (prefix: string) => redis.xlen(`${prefix}:events`)

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 5000) => {
  const startedAt = Date.now()
  while (!(await check())) {
    if (Date.now() - startedAt > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

type Send = "json" | "text/plain" | "beacon ?writeKey="
const send = (c: RunningCollector, how: Send, key: string, origin: string | undefined, extra: Record<string, string> = {}) => {
  const body = JSON.stringify({ eventType: "matrix", sessionId: "s-1" })
  const headers: Record<string, string> = { ...extra, ...(origin !== undefined ? { origin } : {}) }
  if (how === "beacon ?writeKey=") {
    return fetch(`${c.baseUrl}/track/event?writeKey=${encodeURIComponent(key)}`, {
      method: "POST",
      headers: { ...headers, "content-type": "text/plain;charset=UTF-8" },
      body
    })
  }
  return fetch(`${c.baseUrl}/track/event`, {
    method: "POST",
    headers: { ...headers, "x-write-key": key, "content-type": how === "json" ? "application/json" : "text/plain;charset=UTF-8" },
    body
  })
}

describe("sites defined: the key and the origin decide what is stored", () => {
  let c: RunningCollector
  beforeAll(async () => {
    const prefix = uniquePrefix("sites")
    await publish(prefix, registry(3))
    c = await start({ streamPrefix: prefix })
  })

  const matrix: Array<[Send, keyof typeof K, "allowed" | "disallowed", number]> = []
  const expectation: Record<keyof typeof K, Record<"allowed" | "disallowed", number>> = {
    write: { allowed: 202, disallowed: 403 },
    server: { allowed: 202, disallowed: 202 },
    rotated: { allowed: 202, disallowed: 403 },
    expired: { allowed: 401, disallowed: 401 },
    otherWrite: { allowed: 403, disallowed: 403 }
  }
  for (const how of ["json", "text/plain", "beacon ?writeKey="] as const) {
    for (const key of Object.keys(K) as Array<keyof typeof K>) {
      for (const origin of ["allowed", "disallowed"] as const) matrix.push([how, key, origin, expectation[key][origin]])
    }
  }

  it.each(matrix)("%s, %s key, %s origin → %i", async (how, key, origin, status) => {
    const before = await primaryEnvelopes(redis, c.prefix)
    const res = await send(c, how, K[key], origin === "allowed" ? ALLOWED : DISALLOWED)
    expect(res.status).toBe(status)
    const body = await res.json() as { eventId?: string; error?: string }
    const after = await primaryEnvelopes(redis, c.prefix)
    if (status === 202) {
      expect(after.length).toBe(before.length + 1)
      const stored = after[after.length - 1]!
      expect(stored.eventId).toBe(body.eventId)
      expect(stored.edge.site).toBe(A)
    } else {
      expect(after.length).toBe(before.length)
      expect(body.error).toBe(status === 401 ? "unauthorized" : "origin_not_allowed")
    }
  })

  it("no key: 401; Referer stands in for a missing Origin; no Origin nor Referer: 403", async () => {
    const before = await streamLength(c.prefix)
    expect((await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, { headers: { origin: ALLOWED } })).status).toBe(401)
    const viaReferer = await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, {
      headers: { "x-write-key": K.write, referer: "https://site-a.test/page?x=1" }
    })
    expect(viaReferer.status).toBe(202)
    const neither = await post(c.baseUrl, "/track/event", { eventType: "e", sessionId: "s" }, { headers: { "x-write-key": K.write } })
    expect(neither.status).toBe(403)
    expect(await streamLength(c.prefix)).toBe(before + 1)
  })

  it("server key as Authorization: Bearer; its X-Forwarded-For is the visitor's address (this request only)", async () => {
    const xff = "198.51.100.7, 203.0.113.9"
    const ua = "Mozilla/5.0 (server-side forwarder test)"
    const server = await post(c.baseUrl, "/track/view", { sessionId: "srv", pageUrl: "https://site-a.test/x" }, {
      headers: { authorization: `Bearer ${K.server}`, "x-forwarded-for": xff, "user-agent": ua }
    })
    expect(server.status).toBe(202)
    const browser = await post(c.baseUrl, "/track/view", { sessionId: "web" }, {
      headers: { "x-write-key": K.write, origin: ALLOWED, "x-forwarded-for": xff }
    })
    expect(browser.status).toBe(202)
    const stored = await primaryEnvelopes(redis, c.prefix)
    const bySession = new Map(stored.map((e) => [e.payload.sessionId, e]))
    expect(bySession.get("srv")!.edge).toMatchObject({ ip: "198.51.100.7", ua, site: A })
    // a write-key request: the usual rule (first untrusted hop from the right of the loopback proxy)
    expect(bySession.get("web")!.edge).toMatchObject({ ip: "203.0.113.9", site: A })
  })

  it("CORS: only an allowed origin is named, with credentials and Retry-After exposed; Vary: Origin always", async () => {
    const allowed = await send(c, "json", K.write, ALLOWED)
    expect(allowed.headers.get("access-control-allow-origin")).toBe(ALLOWED)
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true")
    expect(allowed.headers.get("access-control-expose-headers")).toBe("Retry-After")
    expect(allowed.headers.get("vary")).toBe("Origin")
    const disallowed = await send(c, "json", K.write, DISALLOWED)
    expect(disallowed.status).toBe(403)
    expect(disallowed.headers.get("access-control-allow-origin")).toBeNull()
    expect(disallowed.headers.get("access-control-allow-credentials")).toBeNull()
    expect(disallowed.headers.get("vary")).toBe("Origin")
    // an error answer to an allowed origin is readable too (the page can see why)
    const invalid = await post(c.baseUrl, "/track/event", { eventType: 1 }, { headers: { "x-write-key": K.write, origin: ALLOWED } })
    expect(invalid.status).toBe(400)
    expect(invalid.headers.get("access-control-allow-origin")).toBe(ALLOWED)
  })

  it("preflights: allowed origin 204 with the CORS headers; others 403 without; other paths 404", async () => {
    const preflight = (path: string, origin?: string) =>
      fetch(`${c.baseUrl}${path}`, {
        method: "OPTIONS",
        headers: { ...(origin ? { origin } : {}), "access-control-request-method": "POST", "access-control-request-headers": "content-type" }
      })
    const ok = await preflight("/track/view", "https://site-b.test")
    expect(ok.status).toBe(204)
    expect(Object.fromEntries([...ok.headers].filter(([k]) => k.startsWith("access-control") || k === "vary"))).toEqual({
      "access-control-allow-origin": "https://site-b.test",
      "access-control-allow-credentials": "true",
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-allow-headers": "Content-Type, X-Write-Key",
      "access-control-max-age": "86400",
      vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    })
    const evil = await preflight("/track/view", DISALLOWED)
    expect(evil.status).toBe(403)
    expect(evil.headers.get("access-control-allow-origin")).toBeNull()
    expect((await preflight("/nonexistent", "https://site-b.test")).status).toBe(404)
    expect((await preflight("/health", "https://site-b.test")).status).toBe(404)
    const plain = await fetch(`${c.baseUrl}/track/view`, { method: "OPTIONS" })
    expect(plain.status).toBe(204)
    expect(plain.headers.get("allow")).toBe("POST, OPTIONS")
  })

  it.each(["GET", "PUT", "PATCH", "DELETE"])("%s /track/* → 405 with Allow: POST, OPTIONS", async (method) => {
    for (const path of ["/track/view", "/track/batch", "/track/registration-funnel"]) {
      const res = await fetch(`${c.baseUrl}${path}`, { method })
      expect(res.status).toBe(405)
      expect(res.headers.get("allow")).toBe("POST, OPTIONS")
      expect((await res.json() as { error: string }).error).toBe("method_not_allowed")
    }
  })

  it("health says what is enforced", async () => {
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as { sites: unknown }
    expect(health.sites).toEqual({ mode: "sites", sites: 2, version: 3, source: "primary" })
  })
})

describe("the registry changes while the collector runs", () => {
  it("a new version is enforced within the refresh; an older one never replaces it", async () => {
    const prefix = uniquePrefix("sites-live")
    const c = await start({ streamPrefix: prefix })
    // nothing published: open
    expect((await send(c, "json", "anything", DISALLOWED)).status).toBe(202)
    await publish(prefix, registry(5))
    await waitFor("the registry", async () => (await send(c, "json", "anything", DISALLOWED)).status === 401)
    expect((await send(c, "json", K.write, ALLOWED)).status).toBe(202)
    // the site is removed (version 6): its key stops working; the other site keeps the API closed
    await publish(prefix, registry(6, siteList().filter((s) => s.id !== A)))
    await waitFor("removal", async () => (await send(c, "json", K.write, ALLOWED)).status === 401)
    // a registry that does not decode is ignored (the one in force stays)
    await redis.set(sitesKey(prefix), "{not a registry")
    await redis.set(sitesVersionKey(prefix), "99")
    await new Promise((r) => setTimeout(r, 300))
    expect((await send(c, "json", "anything", DISALLOWED)).status).toBe(401)
    await redis.set(sitesVersionKey(prefix), "6")
    // a stale registry written straight into Redis (bypassing the publisher's check) is ignored
    await redis.set(sitesKey(prefix), JSON.stringify(registry(2)))
    await redis.set(sitesVersionKey(prefix), "2")
    await new Promise((r) => setTimeout(r, 300))
    expect((await send(c, "json", K.write, ALLOWED)).status).toBe(401)
    // every site removed (version 7): open mode again
    await publish(prefix, registry(7, []))
    await waitFor("open mode", async () => (await send(c, "json", "anything", DISALLOWED)).status === 202)
  })

  it("the publisher never replaces a newer registry", async () => {
    const prefix = uniquePrefix("sites-cas")
    removeAfterwards(prefix)
    expect(await publish(prefix, registry(8))).toBe(true)
    expect(await publish(prefix, registry(7, []))).toBe(false)
    expect(await publish(prefix, registry(8))).toBe(true)
    expect(JSON.parse((await redis.get(sitesKey(prefix)))!).version).toBe(8)
  })
})

describe("no PostgreSQL, no primary Redis: the local copy keeps the sites enforced", () => {
  it("a collector started while the primary is down enforces the copy its predecessor kept; accepted events are spooled", async () => {
    const prefix = uniquePrefix("sites-copy")
    await publish(prefix, registry(11))
    const first = await start({ streamPrefix: prefix })
    await waitFor("the local copy", async () => (await redis.get(sitesCopyKey(prefix))) !== null)
    await first.close()

    // the primary is unreachable (nothing listens there); the spool is the same Redis as before
    const c = await start({ streamPrefix: prefix, primaryRedisUrl: "redis://127.0.0.1:1", spoolRedisUrl: SHARED_REDIS })
    const health = await (await fetch(`${c.baseUrl}/health`)).json() as { sites: unknown; primaryHealthy: boolean }
    expect(health.primaryHealthy).toBe(false)
    expect(health.sites).toEqual({ mode: "sites", sites: 2, version: 11, source: "local copy" })
    expect((await send(c, "json", "sw_pub_unknown", ALLOWED)).status).toBe(401)
    expect((await send(c, "text/plain", K.write, DISALLOWED)).status).toBe(403)
    const ok = await send(c, "beacon ?writeKey=", K.write, ALLOWED)
    expect(ok.status).toBe(202)
    const spooled = await spoolEnvelopes(redis, prefix)
    expect(spooled.map((e) => e.edge.site)).toEqual([A])
    expect(await primaryEnvelopes(redis, prefix)).toHaveLength(0)
  })
})

describe("an edge collector process whose DATABASE_URL points nowhere", () => {
  it("serve --role collector enforces the sites it learnt from Redis; PostgreSQL is never asked", async () => {
    const prefix = uniquePrefix("sites-edge")
    removeAfterwards(prefix)
    await publish(prefix, registry(21))
    const daemon = await startDaemon(["serve", "--role", "collector"], {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/nothing",
      PRIMARY_REDIS_URL: SHARED_REDIS,
      SPOOL_REDIS_URL: SHARED_REDIS,
      STREAM_PREFIX: prefix,
      RATE_LIMIT_PER_MINUTE: "0"
    })
    try {
      const c = { baseUrl: daemon.baseUrl } as RunningCollector
      expect((await send(c, "json", K.write, ALLOWED)).status).toBe(202)
      expect((await send(c, "beacon ?writeKey=", K.write, DISALLOWED)).status).toBe(403)
      expect((await send(c, "text/plain", "sw_pub_nope", ALLOWED)).status).toBe(401)
      expect((await primaryEnvelopes(redis, prefix)).map((e) => e.edge.site)).toEqual([A])
    } finally {
      expect(await daemon.stop("SIGTERM")).toBe(0)
    }
    expect(daemon.output()).not.toMatch(/postgres|5432|127\.0\.0\.1:1\b/i)
  }, 60_000)
})

// ---------------------------------------------------------------------------------------------

const keyChoices = [K.write, K.server, K.rotated, K.expired, K.otherWrite, "sw_pub_made-up", ""] as const
const originChoices = [ALLOWED, "https://site-a.test", "https://site-b.test", DISALLOWED, "null", undefined] as const
const Choice = (n: number) => Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: n - 1 }))

/** Stored exactly when: a server key of a site, or a live write key with an origin of its own site (an oracle by hand). */
const shouldStore = (key: string, origin: string | undefined) => {
  if (key === K.server) return true
  if (key === K.write || key === K.rotated) return origin === ALLOWED || origin === "https://site-a.test"
  if (key === K.otherWrite) return origin === "https://site-b.test"
  return false
}

describe("property: no request with a disallowed origin or a bad key reaches the stream", () => {
  let c: RunningCollector
  beforeAll(async () => {
    const prefix = uniquePrefix("sites-prop")
    await publish(prefix, registry(1))
    c = await start({ streamPrefix: prefix })
  })

  it.effect.prop(
    "random key × origin × content type × random extra key text",
    { key: Choice(keyChoices.length), origin: Choice(originChoices.length), how: Choice(3), noise: Schema.String, useNoise: Schema.Boolean },
    ({ how, key, noise, origin, useNoise }) =>
      Effect.promise(async () => {
        const k = useNoise ? noise : keyChoices[key]!
        const o = originChoices[origin]
        const before = await streamLength(c.prefix)
        // a key no HTTP header (or URL) can carry is refused by fetch itself: nothing was sent
        const res = await Promise.resolve().then(() => send(c, (["json", "text/plain", "beacon ?writeKey="] as const)[how]!, k, o)).catch(() =>
          undefined
        )
        if (res === undefined) return
        await res.arrayBuffer()
        const stored = (await streamLength(c.prefix)) - before
        expect({ k, o, stored }).toEqual({ k, o, stored: shouldStore(k, o) ? 1 : 0 })
        expect(res.status).toBe(shouldStore(k, o) ? 202 : k === K.write || k === K.rotated || k === K.otherWrite ? 403 : 401)
      }),
    { timeout: 60_000, arbitrary: { runs: 300 } }
  )
})
