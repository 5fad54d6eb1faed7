import { assert, describe, it } from "@effect/vitest"
import { createHash, createHmac } from "node:crypto"
import { Schema } from "effect"
import { CLIENT_TIMESTAMP_KEY, enrichEvent, enrichView, eventTimestamp } from "../src/domain/Enrich.ts"
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

  it("carries the raw_events columns and its own UA's bot flag — no device, identity or tenant work (only views get those)", () => {
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
      isBot: true,
      ipHash: null,
      visitorIdDaily: null,
      tenantHost: null
    })
  })

  it("is a bot by its own User-Agent only: a browser's, a missing or a blank one is not", () => {
    const withUa = (ua: string | undefined) =>
      enrichEvent({ ...envelope, edge: ua === undefined ? { headers: {} } : { ua, headers: {} } }).isBot
    assert.isTrue(withUa(GOOGLEBOT))
    assert.isTrue(withUa("curl/8.5.0"))
    assert.isTrue(withUa("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"))
    assert.isFalse(withUa(undefined))
    assert.isFalse(withUa(""))
    assert.isFalse(withUa("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"))
  })
})

describe("eventTimestamp: the client's time within [receivedAt − 7 days, receivedAt + 1 day], else receivedAt", () => {
  const receivedAt = "2024-05-01T12:00:00.000Z"
  const received = Date.parse(receivedAt)
  const DAY = 86_400_000
  it.each([
    { name: "finite ms", ts: Date.parse("2024-05-01T11:00:00.000Z"), expected: "2024-05-01T11:00:00.000Z" },
    { name: "fractional ms", ts: received - 0.75, expected: "2024-05-01T11:59:59.999Z" },
    { name: "exactly 7 days before", ts: received - 7 * DAY, expected: "2024-04-24T12:00:00.000Z" },
    { name: "1 ms more than 7 days before", ts: received - 7 * DAY - 1, expected: receivedAt },
    { name: "exactly 1 day after", ts: received + DAY, expected: "2024-05-02T12:00:00.000Z" },
    { name: "1 ms more than 1 day after", ts: received + DAY + 1, expected: receivedAt },
    { name: "2100-01-01", ts: Date.parse("2100-01-01T00:00:00Z"), expected: receivedAt },
    { name: "-5 (1969)", ts: -5, expected: receivedAt },
    { name: "epoch 0", ts: 0, expected: receivedAt },
    { name: "seconds instead of ms", ts: received / 1000, expected: receivedAt },
    { name: "undefined", ts: undefined, expected: receivedAt },
    { name: "NaN", ts: Number.NaN, expected: receivedAt },
    { name: "Infinity", ts: Number.POSITIVE_INFINITY, expected: receivedAt },
    { name: "beyond Date range", ts: 1e20, expected: receivedAt }
  ])("$name", ({ expected, ts }) => {
    assert.strictEqual(eventTimestamp(ts, receivedAt), expected)
  })

  it("never a year outside 0001–9999, whatever receivedAt says", () => {
    const late = "9999-12-31T12:00:00.000Z"
    assert.strictEqual(eventTimestamp(Date.parse(late) + DAY / 2, late), late)
    assert.strictEqual(eventTimestamp(Date.parse("9999-12-31T23:59:59.999Z"), late), "9999-12-31T23:59:59.999Z")
  })

  it("a client timestamp that is not used is kept in metadata as $clientTimestamp, next to the sent metadata", () => {
    const sent = Date.parse("2100-01-01T00:00:00Z")
    const event = enrichEvent(makeView({ payload: { isView: false, eventType: "click", timestamp: sent, metadata: { plan: "pro" } } }))
    assert.strictEqual(event.timestamp, event.receivedAt)
    assert.deepStrictEqual(event.metadata, { plan: "pro", [CLIENT_TIMESTAMP_KEY]: sent })
    const view = enrichView(makeView({ payload: { timestamp: -5 } }), salt, geo)
    assert.strictEqual(view.timestamp, view.receivedAt)
    assert.deepStrictEqual(view.metadata, { [CLIENT_TIMESTAMP_KEY]: -5 })
  })

  it("a used client timestamp, or none, leaves metadata as sent", () => {
    const used = enrichEvent(makeView({ payload: { isView: false, eventType: "click", metadata: { plan: "pro" } } }))
    assert.strictEqual(used.timestamp, "2024-05-01T11:59:58.500Z")
    assert.deepStrictEqual(used.metadata, { plan: "pro" })
    const { timestamp: _, ...withoutTimestamp } = makeView().payload
    const none = enrichView({ ...makeView(), payload: withoutTimestamp }, salt, geo)
    assert.strictEqual(none.timestamp, none.receivedAt)
    assert.strictEqual(none.metadata, null)
  })

  it.prop(
    "the stored time is the client's exactly when it is in the window, and a time not used is never lost",
    // any finite number, or one near the window's edges (offsets from −10 to +3 days)
    [Schema.Finite, Schema.Int.check(Schema.isBetween({ minimum: -10 * DAY, maximum: 3 * DAY })), Schema.Boolean],
    ([anything, offset, near]) => {
      const sent = near ? received + offset : anything
      const event = enrichEvent(makeView({ payload: { isView: false, eventType: "click", timestamp: sent } }))
      const inWindow = sent >= received - 7 * DAY && sent <= received + DAY
      assert.strictEqual(event.timestamp, inWindow ? new Date(sent).toISOString() : receivedAt)
      assert.deepStrictEqual(event.metadata, inWindow ? null : { [CLIENT_TIMESTAMP_KEY]: sent })
    }
  )
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
