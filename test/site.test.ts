/**
 * Sites, the pure part (src/domain/Site.ts): names, origins, timezones, keys, and the admission
 * rule of a tracking request — a table of cases and a property against an independent oracle.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  admit,
  formatKey,
  hashKey,
  indexSnapshot,
  KEY_BYTES,
  type LegacyKeys,
  normalizeHostname,
  normalizeOrigin,
  normalizeTimezone,
  type SiteSnapshot
} from "../src/domain/Site.ts"
import { makeWriteKeyCheck } from "../src/http/WriteKeys.ts"

describe("names", () => {
  it.each([
    ["Example.COM", "example.com"],
    [" example.com. ", "example.com"],
    ["www.example.com", "www.example.com"],
    ["bücher.de", "xn--bcher-kva.de"],
    ["127.0.0.2", "127.0.0.2"],
    ["[::1]", "::1"],
    ["localhost", "localhost"]
  ])("hostname %j → %j", (input, expected) => {
    expect(normalizeHostname(input)).toBe(expected)
  })

  it.each(["", "  ", "http://example.com", "example.com:8080", "example.com/path", "a b.com", "user@example.com", "::1", "exa?mple.com"])(
    "not a hostname: %j",
    (input) => {
      expect(normalizeHostname(input)).toBeUndefined()
    }
  )

  it.each([
    ["https://Example.com", "https://example.com"],
    ["https://example.com:443", "https://example.com"],
    ["http://localhost:3000/", "http://localhost:3000"],
    ["http://127.0.0.2:18301", "http://127.0.0.2:18301"]
  ])("origin %j → %j", (input, expected) => {
    expect(normalizeOrigin(input)).toBe(expected)
  })

  it.each(["example.com", "ftp://example.com", "https://example.com/path", "https://example.com/?q=1", "https://u:p@example.com", "null"])(
    "not an origin: %j",
    (input) => {
      expect(normalizeOrigin(input)).toBeUndefined()
    }
  )

  it("timezones: IANA names (any case) in their canonical spelling; anything else is undefined", () => {
    expect(normalizeTimezone("europe/berlin")).toBe("Europe/Berlin")
    expect(normalizeTimezone("UTC")).toBe("UTC")
    expect(normalizeTimezone("America/New_York")).toBe("America/New_York")
    expect(normalizeTimezone("Mars/Base")).toBeUndefined()
    expect(normalizeTimezone("")).toBeUndefined()
  })

  it("keys: prefixed, 256 random bits, stored as hex SHA-256", () => {
    const key = formatKey("server", new Uint8Array(KEY_BYTES).fill(7))
    expect(key).toMatch(/^sw_sec_[A-Za-z0-9_-]{43}$/)
    expect(formatKey("write", new Uint8Array(KEY_BYTES))).toMatch(/^sw_pub_/)
    expect(hashKey(key)).toMatch(/^[0-9a-f]{64}$/)
    expect(hashKey(key)).not.toBe(hashKey(key + "x"))
  })
})

// ---------------------------------------------------------------------------------------------

const NOW = 1_800_000_000_000
const KEYS = {
  aWrite: "sw_pub_a-write",
  aServer: "sw_sec_a-server",
  aOldWrite: "sw_pub_a-old-write",
  aExpired: "sw_pub_a-expired",
  bWrite: "sw_pub_b-write",
  bServer: "sw_sec_b-server",
  legacy: "legacy-global-key"
} as const

const snapshot: SiteSnapshot = {
  v: 1,
  version: 4,
  sites: [
    {
      id: 10,
      hostnames: ["example.com", "www.example.com"],
      origins: null,
      keys: [
        { kind: "write", hash: hashKey(KEYS.aWrite) },
        { kind: "server", hash: hashKey(KEYS.aServer) },
        { kind: "write", hash: hashKey(KEYS.aOldWrite), expiresAt: NOW + 1000 },
        { kind: "write", hash: hashKey(KEYS.aExpired), expiresAt: NOW }
      ]
    },
    {
      id: 20,
      hostnames: ["shop.test"],
      origins: ["https://shop.test", "http://localhost:3000"],
      keys: [
        { kind: "write", hash: hashKey(KEYS.bWrite) },
        { kind: "server", hash: hashKey(KEYS.bServer) }
      ]
    }
  ]
}
const index = indexSnapshot(snapshot)
const legacy = makeWriteKeyCheck([KEYS.legacy])
const noLegacy: LegacyKeys = makeWriteKeyCheck([])

const request = (key: string | undefined, origin?: string, referer?: string) => ({ key, origin, referer, nowMs: NOW })

describe("admission with sites", () => {
  const ok = (site: number | undefined, server = false) => ({ ok: true, site, server })
  const status = (s: number) => expect.objectContaining({ ok: false, status: s })
  const cases: Array<[string, ReturnType<typeof request>, unknown]> = [
    ["no key", request(undefined, "https://example.com"), status(401)],
    ["empty key", request("", "https://example.com"), status(401)],
    ["unknown key", request("sw_pub_nope", "https://example.com"), status(401)],
    ["write key, its origin", request(KEYS.aWrite, "https://example.com"), ok(10)],
    ["write key, alias over http on another port", request(KEYS.aWrite, "http://www.example.com:8080"), ok(10)],
    ["write key, upper-case origin", request(KEYS.aWrite, "https://EXAMPLE.com"), ok(10)],
    ["write key, another origin", request(KEYS.aWrite, "https://evil.example"), status(403)],
    ["write key, a look-alike origin", request(KEYS.aWrite, "https://example.com.evil.example"), status(403)],
    ["write key, subdomain not listed", request(KEYS.aWrite, "https://blog.example.com"), status(403)],
    ["write key, Origin null", request(KEYS.aWrite, "null"), status(403)],
    ["write key, not http(s)", request(KEYS.aWrite, "chrome-extension://abc"), status(403)],
    ["write key, no Origin but its Referer", request(KEYS.aWrite, undefined, "https://example.com/p?q=1"), ok(10)],
    ["write key, no Origin nor Referer", request(KEYS.aWrite), status(403)],
    ["write key, Origin decides over Referer", request(KEYS.aWrite, "https://evil.example", "https://example.com/"), status(403)],
    ["write key, the other site's origin", request(KEYS.aWrite, "https://shop.test"), status(403)],
    ["server key, no origin", request(KEYS.aServer), ok(10, true)],
    ["server key, any origin", request(KEYS.aServer, "https://evil.example"), ok(10, true)],
    ["previous write key within its grace", request(KEYS.aOldWrite, "https://example.com"), ok(10)],
    ["previous write key at its expiry", request(KEYS.aExpired, "https://example.com"), status(401)],
    ["explicit origins: listed", request(KEYS.bWrite, "https://shop.test"), ok(20)],
    ["explicit origins: exact scheme", request(KEYS.bWrite, "http://shop.test"), status(403)],
    ["explicit origins: exact port", request(KEYS.bWrite, "http://localhost:3001"), status(403)],
    ["explicit origins: listed port", request(KEYS.bWrite, "http://localhost:3000"), ok(20)],
    ["legacy key, an origin of some site", request(KEYS.legacy, "https://shop.test"), ok(undefined)],
    ["legacy key, another origin", request(KEYS.legacy, "https://evil.example"), status(403)],
    ["legacy key, no origin", request(KEYS.legacy), status(403)]
  ]
  it.each(cases)("%s", (_name, req, expected) => {
    expect(admit(index, legacy, req)).toEqual(expected)
  })

  it("the rejections say why", () => {
    const unauthorized = admit(index, legacy, request("nope", "https://example.com"))
    const forbidden = admit(index, legacy, request(KEYS.aWrite, "https://evil.example"))
    assert.deepInclude(unauthorized, { status: 401, error: "unauthorized" })
    assert.deepInclude(forbidden, { status: 403, error: "origin_not_allowed" })
  })
})

describe("admission without sites (open mode)", () => {
  const open = indexSnapshot({ v: 1, version: 9, sites: [] })
  it("no legacy key: everything is admitted", () => {
    expect(admit(open, noLegacy, request(undefined))).toEqual({ ok: true, site: undefined, server: false })
    expect(admit(open, noLegacy, request("anything", "https://evil.example"))).toMatchObject({ ok: true })
  })
  it("a legacy key: required, but no origin rule", () => {
    expect(admit(open, legacy, request(KEYS.legacy, "https://evil.example"))).toMatchObject({ ok: true, site: undefined })
    expect(admit(open, legacy, request("other"))).toMatchObject({ ok: false, status: 401 })
  })
})

// ---------------------------------------------------------------------------------------------

/**
 * The oracle: the rule as the issue states it, written without the index — straight from the
 * snapshot, with the URL parser on each request.
 */
const oracle = (key: string | undefined, origin: string | undefined, referer: string | undefined): number | "server" | "legacy" | false => {
  const from = origin ?? referer
  let url: URL | undefined
  try {
    url = from === undefined ? undefined : new URL(from)
  } catch {
    url = undefined
  }
  const web = url !== undefined && (url.protocol === "http:" || url.protocol === "https:") ? url : undefined
  const allows = (site: SiteSnapshot["sites"][number]) =>
    web !== undefined && (site.origins === null
      ? site.hostnames.includes(web.hostname.replace(/\.+$/, ""))
      : site.origins.includes(web.origin))
  for (const site of snapshot.sites) {
    for (const k of site.keys) {
      if (key === undefined || k.hash !== hashKey(key) || (k.expiresAt !== undefined && k.expiresAt <= NOW)) continue
      if (k.kind === "server") return "server"
      return allows(site) ? site.id : false
    }
  }
  if (key === KEYS.legacy) return snapshot.sites.some(allows) ? "legacy" : false
  return false
}

const keyChoices = [...Object.values(KEYS), undefined, "", "sw_pub_", "sw_sec_a-server ", " sw_pub_a-write"]
const originChoices = [
  "https://example.com",
  "http://www.example.com:1234",
  "https://shop.test",
  "http://shop.test",
  "http://localhost:3000",
  "https://example.com.evil.example",
  "https://evil.example",
  "null",
  "not a url",
  undefined
]
const Choice = (n: number) => Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: n - 1 }))

describe("property: admitted exactly when the key and origin belong to one site", () => {
  it.effect.prop(
    "known keys and origins, mixed with arbitrary strings",
    {
      key: Choice(keyChoices.length),
      origin: Choice(originChoices.length),
      referer: Choice(originChoices.length),
      randomKey: Schema.String,
      randomOrigin: Schema.String,
      useRandom: Choice(4)
    },
    ({ key, origin, randomKey, randomOrigin, referer, useRandom }) =>
      Effect.sync(() => {
        const k = useRandom === 1 ? randomKey : keyChoices[key]
        const o = useRandom === 2 ? randomOrigin : originChoices[origin]
        const r = useRandom === 3 ? randomOrigin : originChoices[referer]
        const expected = oracle(k, o, r)
        const got = admit(index, legacy, { key: k, origin: o, referer: r, nowMs: NOW })
        if (expected === false) assert.isFalse(got.ok, `admitted ${JSON.stringify({ k, o, r })}`)
        else if (expected === "server") assert.deepEqual(got, { ok: true, site: 10 + 10 * Number(k === KEYS.bServer), server: true })
        else if (expected === "legacy") assert.deepEqual(got, { ok: true, site: undefined, server: false })
        else assert.deepEqual(got, { ok: true, site: expected, server: false })
      }),
    { arbitrary: { runs: 2000 } }
  )
})
