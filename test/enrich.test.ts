import { assert, describe, it } from "@effect/vitest"
import { createHash, createHmac } from "node:crypto"
import { Schema } from "effect"
import { enrichEvent, enrichView, eventTimestamp } from "../src/domain/Enrich.ts"
import { RawEventEnvelope } from "../src/domain/Envelope.ts"
import { emptyGeo, type GeoInfo } from "../src/domain/Geo.ts"

const decodeEnvelope = Schema.decodeUnknownSync(RawEventEnvelope)

const salt = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 3) % 256)
const geo: GeoInfo = { country: "DE", region: "BE", city: "Berlin", isEu: true, timezone: "Europe/Berlin" }
const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
const GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

const refVisitorId = (ip: string, ua: string, lang: string) =>
  createHash("sha256").update(Buffer.concat([Buffer.from(salt), Buffer.from(`\0${ip}\0${ua}\0${lang}`)])).digest("hex")

const makeView = (
  overrides: { edge?: Partial<RawEventEnvelope["edge"]>; payload?: Partial<RawEventEnvelope["payload"]> } = {}
): RawEventEnvelope =>
  decodeEnvelope({
    v: 1,
    eventId: "0b9e0a4e-6f3c-4c6e-9b1a-2d5f7e8a9c01",
    kind: "view",
    receivedAt: "2024-05-01T12:00:00.000Z",
    edge: {
      ip: "203.0.113.7",
      ua: IPHONE,
      lang: "de-DE,de;q=0.9",
      headers: { origin: "https://Shop.Example.com", referer: "https://other.example/x", host: "collector.example:8787" },
      ...overrides.edge
    },
    payload: {
      eventType: "pageview",
      sessionId: "sess-1",
      pageUrl: "https://shop.example.com/landing?utm_source=newsletter",
      isView: true,
      timestamp: Date.parse("2024-05-01T11:59:58.500Z"),
      clientDevice: { viewportWidth: 390, touchPoints: 5, language: "de-DE" },
      attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "may" },
      ...overrides.payload
    }
  })

describe("enrichView", () => {
  it("fills every field the writer needs", () => {
    const envelope = makeView()
    const view = enrichView(envelope, salt, geo)

    // raw_events columns
    assert.strictEqual(view.eventId, envelope.eventId)
    assert.strictEqual(view.kind, "view")
    assert.strictEqual(view.eventType, "pageview")
    assert.strictEqual(view.sessionId, "sess-1")
    assert.isNull(view.userId)
    assert.strictEqual(view.pageUrl, "https://shop.example.com/landing?utm_source=newsletter")
    assert.isNull(view.referrer)
    assert.isNull(view.metadata)
    assert.strictEqual(view.timestamp, "2024-05-01T11:59:58.500Z")
    assert.strictEqual(view.receivedAt, "2024-05-01T12:00:00.000Z")
    assert.isTrue(view.isView)

    // device / bot
    assert.strictEqual(view.deviceType, "mobile")
    assert.isFalse(view.isBot)
    assert.strictEqual(view.device.browser, "Safari")
    assert.strictEqual(view.device.os, "iOS")
    assert.strictEqual(view.device.osVersion, "17.2.1")
    assert.strictEqual(view.device.viewportWidth, 390)
    assert.strictEqual(view.device.language, "de-DE")
    assert.isFalse(Object.hasOwn(view.device, "screenWidth"))

    // identity
    assert.strictEqual(view.ipHash, createHmac("sha256", salt).update("203.0.113.7").digest("hex"))
    assert.strictEqual(Buffer.from(view.visitorIdDaily).toString("hex"), refVisitorId("203.0.113.7", IPHONE, "de-DE,de;q=0.9"))

    // attribution, tenant, landing page, geo
    assert.deepStrictEqual(view.traffic, {
      source: "email",
      rawSource: "newsletter",
      medium: "email",
      campaign: "may",
      content: null,
      term: null,
      referrer: null
    })
    assert.strictEqual(view.tenantHost, "shop.example.com")
    assert.strictEqual(view.landingPage, "https://shop.example.com/landing?utm_source=newsletter")
    assert.deepStrictEqual(view.geo, geo)
  })

  it("attribution referrer falls back to the payload referrer", () => {
    const view = enrichView(
      makeView({ payload: { attribution: { utmCampaign: "spring" }, referrer: "https://www.google.co.uk/" } }),
      salt,
      geo
    )
    assert.strictEqual(view.traffic.source, "organic")
    assert.strictEqual(view.traffic.referrer, "https://www.google.co.uk/")
    assert.strictEqual(view.traffic.campaign, "spring")
    assert.strictEqual(view.referrer, "https://www.google.co.uk/")
  })

  it("a blank attribution referrer also falls back", () => {
    const view = enrichView(
      makeView({ payload: { attribution: { referrer: "  " }, referrer: "https://t.co/x" } }),
      salt,
      geo
    )
    assert.strictEqual(view.traffic.source, "social")
  })

  it("the attribution referrer wins over the payload referrer", () => {
    const view = enrichView(
      makeView({ payload: { attribution: { referrer: "https://www.facebook.com/" }, referrer: "https://www.bing.com/" } }),
      salt,
      geo
    )
    assert.strictEqual(view.traffic.source, "social")
    assert.strictEqual(view.traffic.referrer, "https://www.facebook.com/")
  })

  it("no attribution and no referrer → direct", () => {
    const envelope = makeView()
    const { attribution: _a, ...payload } = envelope.payload
    const view = enrichView({ ...envelope, payload }, salt, geo)
    assert.strictEqual(view.traffic.source, "direct")
  })

  it("without an IP: no hash, visitor id over an empty ip", () => {
    const envelope = makeView()
    const { ip: _ip, ...edge } = envelope.edge
    const view = enrichView({ ...envelope, edge }, salt, emptyGeo)
    assert.isNull(view.ipHash)
    assert.strictEqual(Buffer.from(view.visitorIdDaily).toString("hex"), refVisitorId("", IPHONE, "de-DE,de;q=0.9"))
    assert.deepStrictEqual(view.geo, emptyGeo)
  })

  it("a bot is flagged and typed bot, whatever the client says", () => {
    const view = enrichView(makeView({ edge: { ua: GOOGLEBOT } }), salt, geo)
    assert.isTrue(view.isBot)
    assert.strictEqual(view.deviceType, "bot")
    assert.isTrue(view.device.isBot)
  })

  it("tenant falls back Origin → Referer → Host", () => {
    const noOrigin = enrichView(makeView({ edge: { headers: { referer: "https://blog.example.org/p", host: "x.example" } } }), salt, geo)
    assert.strictEqual(noOrigin.tenantHost, "blog.example.org")
    const hostOnly = enrichView(makeView({ edge: { headers: { host: "x.example:8080" } } }), salt, geo)
    assert.strictEqual(hostOnly.tenantHost, "x.example")
    const none = enrichView(makeView({ edge: { headers: {} } }), salt, geo)
    assert.isNull(none.tenantHost)
  })

  it("an empty page url gives no landing page", () => {
    const view = enrichView(makeView({ payload: { pageUrl: "" } }), salt, geo)
    assert.strictEqual(view.pageUrl, "")
    assert.isNull(view.landingPage)
  })

  it("timestamp: client ms when finite, else receivedAt", () => {
    const envelope = makeView()
    const { timestamp: _t, ...payload } = envelope.payload
    assert.strictEqual(enrichView({ ...envelope, payload }, salt, geo).timestamp, envelope.receivedAt)
  })

  it("the same salt and inputs give the same ids; another salt gives others", () => {
    const a = enrichView(makeView(), salt, geo)
    const b = enrichView(makeView(), salt, geo)
    const c = enrichView(makeView(), Uint8Array.from(salt, (x) => x ^ 0xff), geo)
    assert.deepStrictEqual(a, b)
    assert.notStrictEqual(a.ipHash, c.ipHash)
    assert.notDeepEqual(Buffer.from(a.visitorIdDaily), Buffer.from(c.visitorIdDaily))
  })

  it("does not mutate the envelope", () => {
    const envelope = makeView({ payload: { metadata: { a: 1 } } })
    const before = JSON.stringify(envelope)
    enrichView(envelope, salt, geo)
    assert.strictEqual(JSON.stringify(envelope), before)
  })

  it("passes userId and metadata through", () => {
    const view = enrichView(makeView({ payload: { userId: "u-9", metadata: { contentType: "article" } } }), salt, geo)
    assert.strictEqual(view.userId, "u-9")
    assert.deepStrictEqual(view.metadata, { contentType: "article" })
  })
})

describe("enrichEvent (non-views)", () => {
  const envelope = decodeEnvelope({
    v: 1,
    eventId: "6a1f0d0e-2b1c-4d8e-8f7a-9b0c1d2e3f40",
    kind: "conversion",
    receivedAt: "2024-05-01T00:00:01.000Z",
    edge: { ip: "203.0.113.7", ua: GOOGLEBOT, lang: "en", headers: { origin: "https://shop.example.com" } },
    payload: {
      eventType: "conversion",
      sessionId: "sess-2",
      userId: "u-1",
      isView: false,
      metadata: { conversionType: "purchase", value: 10, currency: "EUR" }
    }
  })

  it("carries the raw_events columns only — no device, identity or tenant work (SPEC §2)", () => {
    const event = enrichEvent(envelope)
    assert.deepStrictEqual(event, {
      eventId: "6a1f0d0e-2b1c-4d8e-8f7a-9b0c1d2e3f40",
      kind: "conversion",
      eventType: "conversion",
      sessionId: "sess-2",
      userId: "u-1",
      pageUrl: null,
      referrer: null,
      metadata: { conversionType: "purchase", value: 10, currency: "EUR" },
      timestamp: "2024-05-01T00:00:01.000Z",
      receivedAt: "2024-05-01T00:00:01.000Z",
      isView: false,
      deviceType: null,
      isBot: false,
      ipHash: null,
      visitorIdDaily: null,
      tenantHost: null
    })
  })
})

describe("eventTimestamp", () => {
  const receivedAt = "2024-05-01T12:00:00.000Z"
  it.each([
    { name: "finite ms", ts: 1_714_564_800_000, expected: "2024-05-01T12:00:00.000Z" },
    { name: "epoch 0", ts: 0, expected: "1970-01-01T00:00:00.000Z" },
    { name: "undefined", ts: undefined, expected: receivedAt },
    { name: "NaN", ts: Number.NaN, expected: receivedAt },
    { name: "Infinity", ts: Number.POSITIVE_INFINITY, expected: receivedAt },
    { name: "beyond year 9999", ts: 1e15, expected: receivedAt },
    { name: "beyond Date range", ts: 1e20, expected: receivedAt },
    { name: "before year 1", ts: -1e15, expected: receivedAt },
    { name: "last ms of 9999", ts: Date.UTC(9999, 11, 31, 23, 59, 59, 999), expected: "9999-12-31T23:59:59.999Z" }
  ])("$name", ({ expected, ts }) => {
    assert.strictEqual(eventTimestamp(ts, receivedAt), expected)
  })
})

describe("enrichView — properties", () => {
  it.prop(
    "never throws on arbitrary edge strings and attribution",
    [Schema.String, Schema.String, Schema.String, Schema.String, Schema.String],
    ([ip, ua, origin, referrer, utmSource]) => {
      const base = makeView()
      const view = enrichView(
        {
          ...base,
          edge: { ip, ua, lang: ua, headers: { origin, referer: referrer, host: origin } },
          payload: { ...base.payload, referrer, attribution: { utmSource, referrer } }
        },
        salt,
        geo
      )
      assert.strictEqual(view.visitorIdDaily.length, 32)
      assert.include(["desktop", "mobile", "tablet", "bot"], view.deviceType)
    },
    { arbitrary: { runs: 300 } }
  )
})
