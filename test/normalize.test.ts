/**
 * The endpoint table of docs/api.md ("stored as"), endpoint by endpoint: every fallback, merge and id rule.
 */
import { describe, expect, it } from "vitest"
import type { EventKind, NormalizedEvent } from "../src/domain/Envelope.ts"
import { InvalidRequest } from "../src/domain/Validation.ts"
import { parseRequest } from "../src/domain/ParseRequest.ts"

const normalize = (kind: EventKind, body: unknown): ReadonlyArray<NormalizedEvent> => {
  const result = parseRequest(kind, body, 500)
  if (result instanceof InvalidRequest) throw new Error(`unexpected 400: ${JSON.stringify(result.issues)}`)
  return result
}
const one = (kind: EventKind, body: unknown) => {
  const events = normalize(kind, body)
  expect(events).toHaveLength(1)
  return events[0]!
}

describe("POST /track/view", () => {
  const cases: Array<[string, unknown, Partial<NormalizedEvent>]> = [
    ["pageUrl wins", { sessionId: "s", pageUrl: "/a", contentId: "c1" }, { pageUrl: "/a" }],
    ["contentId is the fallback", { sessionId: "s", contentId: "c1" }, { pageUrl: "c1" }],
    ["empty string when neither", { sessionId: "s" }, { pageUrl: "" }],
    ["eventType pageview, isView", { sessionId: "s" }, { eventType: "pageview", isView: true, sessionId: "s" }],
    ["userId and referrer kept", { sessionId: "s", userId: "u", referrer: "https://t.co/x" }, {
      userId: "u",
      referrer: "https://t.co/x"
    }]
  ]
  it.each(cases)("%s", (_name, body, expected) => {
    expect(one("view", body)).toMatchObject(expected)
  })

  it("merges contentType, app and duration into metadata", () => {
    const e = one("view", { sessionId: "s", metadata: { a: 1 }, contentType: "article", app: "web", duration: 12.5 })
    expect(e.metadata).toEqual({ a: 1, contentType: "article", app: "web", duration: 12.5 })
  })
  it("leaves metadata absent when nothing to merge", () => {
    expect("metadata" in one("view", { sessionId: "s" })).toBe(false)
  })
  it("attribution referrer falls back to the body referrer", () => {
    const e = one("view", { sessionId: "s", referrer: "https://google.com/", attribution: { utmSource: "x" } })
    expect(e.attribution).toEqual({ utmSource: "x", referrer: "https://google.com/" })
  })
  it("an explicit attribution referrer is kept", () => {
    const e = one("view", {
      sessionId: "s",
      referrer: "https://google.com/",
      attribution: { referrer: "https://bing.com/" }
    })
    expect(e.attribution?.referrer).toBe("https://bing.com/")
  })
  it("keeps clientDevice as sent, ignores unknown fields", () => {
    const e = one("view", { sessionId: "s", clientDevice: { screenWidth: 390, touchPoints: 5 }, junk: true })
    expect(e.clientDevice).toEqual({ screenWidth: 390, touchPoints: 5 })
    expect("junk" in e).toBe(false)
  })
})

describe("sessionId is optional (the writer assigns the session, docs/visits.md)", () => {
  const bodies: Array<[EventKind, unknown]> = [
    ["view", { pageUrl: "https://a.example/" }],
    ["event", { eventType: "engagement", pageUrl: "https://a.example/" }],
    ["batch", { events: [{ eventType: "a" }, { eventType: "b", sessionId: "s" }] }],
    ["interaction", { events: [{ type: "click" }] }],
    ["conversion", { conversionType: "purchase", value: 3 }],
    ["funnel", { funnelId: "f", stepId: "s", stepOrder: 0 }],
    ["registration-funnel", { event: "signup", timestamp: "2026-11-29T12:00:00Z" }]
  ]
  it.each(bodies)("%s without sessionId: accepted, and the event carries none", (kind, body) => {
    const events = normalize(kind, body)
    expect("sessionId" in events[0]!).toBe(false)
  })
  it("a sent sessionId is kept", () => {
    expect(normalize("batch", { events: [{ eventType: "a" }, { eventType: "b", sessionId: "s" }] })[1]!.sessionId).toBe("s")
  })
})

describe("POST /track/engagement", () => {
  it("is user-scoped: sessionId = userId, eventType engagement_<metricType>", () => {
    const e = one("engagement", { userId: "u1", metricType: "like", targetId: "p9", targetType: "post", metadata: { k: "v" } })
    expect(e).toMatchObject({ eventType: "engagement_like", sessionId: "u1", userId: "u1", isView: false })
    expect(e.metadata).toEqual({ k: "v", metricType: "like", targetId: "p9", targetType: "post" })
  })
  it("omits absent target fields from metadata", () => {
    expect(one("engagement", { userId: "u1", metricType: "subscribe" }).metadata).toEqual({ metricType: "subscribe" })
  })
})

describe("POST /track/interaction", () => {
  it("one event per item: eventType = type, metadata = data", () => {
    const events = normalize("interaction", {
      events: [
        { type: "click", sessionId: "s1", data: { x: 1 }, timestamp: 1700000000000 },
        { type: "scroll", sessionId: "s2", userId: "u" }
      ]
    })
    expect(events).toEqual([
      { eventType: "click", sessionId: "s1", isView: false, metadata: { x: 1 }, timestamp: 1700000000000 },
      { eventType: "scroll", sessionId: "s2", isView: false, userId: "u" }
    ])
  })
  it("an empty batch is valid and yields no events", () => {
    expect(normalize("interaction", { events: [] })).toEqual([])
  })
})

describe("POST /track/event and /track/batch", () => {
  it("takes the event as given", () => {
    expect(one("event", { eventType: "signup_click", sessionId: "s", userId: "u", pageUrl: "/p", metadata: { a: [1] } }))
      .toEqual({ eventType: "signup_click", sessionId: "s", userId: "u", pageUrl: "/p", metadata: { a: [1] }, isView: false })
  })
  it("parses an ISO timestamp to epoch ms; numbers are ms", () => {
    expect(one("event", { eventType: "e", sessionId: "s", timestamp: "2026-01-02T03:04:05.000Z" }).timestamp)
      .toBe(Date.UTC(2026, 0, 2, 3, 4, 5))
    expect(one("event", { eventType: "e", sessionId: "s", timestamp: 42 }).timestamp).toBe(42)
  })
  it("an unparseable timestamp string is absent", () => {
    expect("timestamp" in one("event", { eventType: "e", sessionId: "s", timestamp: "yesterday-ish" })).toBe(false)
  })
  it("batch: one event each", () => {
    const events = normalize("batch", { events: [{ eventType: "a", sessionId: "s" }, { eventType: "b", sessionId: "t" }] })
    expect(events.map((e) => [e.eventType, e.sessionId])).toEqual([["a", "s"], ["b", "t"]])
  })
})

describe("POST /track/conversion", () => {
  it("eventType conversion; metadata holds conversionType, value, currency plus metadata", () => {
    const e = one("conversion", { conversionType: "purchase", sessionId: "s", value: 19.99, currency: "eur", metadata: { sku: "A" } })
    expect(e).toMatchObject({ eventType: "conversion", sessionId: "s", isView: false })
    expect(e.metadata).toEqual({ sku: "A", conversionType: "purchase", value: 19.99, currency: "EUR" })
  })
  it("keeps the page it happened on (the tracker sends it with every event)", () => {
    expect(one("conversion", { conversionType: "lead", sessionId: "s", pageUrl: "https://shop.example/pricing" }).pageUrl).toBe(
      "https://shop.example/pricing"
    )
    expect("pageUrl" in one("conversion", { conversionType: "lead", sessionId: "s" })).toBe(false)
  })
})

describe("POST /track/funnel", () => {
  it("eventType funnel_step; metadata holds funnelId, stepId, stepOrder", () => {
    const e = one("funnel", { funnelId: "f", stepId: "cart", stepOrder: 2, sessionId: "s", userId: "u" })
    expect(e).toMatchObject({ eventType: "funnel_step", sessionId: "s", userId: "u" })
    expect(e.metadata).toEqual({ funnelId: "f", stepId: "cart", stepOrder: 2 })
  })
  it("keeps the page it happened on", () => {
    const e = one("funnel", { funnelId: "f", stepId: "cart", stepOrder: 2, sessionId: "s", pageUrl: "https://shop.example/cart" })
    expect(e.pageUrl).toBe("https://shop.example/cart")
    expect(e.metadata).toEqual({ funnelId: "f", stepId: "cart", stepOrder: 2 })
  })
})

describe("POST /track/registration-funnel", () => {
  it("eventType registration_funnel_<event>, pageUrl = route, metadata holds the rest", () => {
    const e = one("registration-funnel", {
      event: "signup",
      sessionId: "s",
      timestamp: "2026-03-01T10:00:00Z",
      route: "/register",
      audience: "creators",
      userType: "new",
      registrationPath: "email",
      registrationType: "free",
      entryReferrer: "https://x.com/",
      referrer: "https://google.com/"
    })
    expect(e).toMatchObject({
      eventType: "registration_funnel_signup",
      pageUrl: "/register",
      timestamp: Date.UTC(2026, 2, 1, 10)
    })
    expect(e.metadata).toEqual({
      audience: "creators",
      userType: "new",
      registrationPath: "email",
      registrationType: "free",
      entryReferrer: "https://x.com/",
      referrer: "https://google.com/"
    })
  })
  it("an unparseable timestamp is absent, not an error", () => {
    const e = one("registration-funnel", { event: "visit", sessionId: "s", timestamp: "not a date" })
    expect("timestamp" in e).toBe(false)
  })
})

describe("validation", () => {
  const bad: Array<[string, EventKind, unknown, Array<string | number>]> = [
    ["sessionId reserved for the server (\"~…\")", "view", { sessionId: "~abc" }, ["sessionId"]],
    ["engagement userId (its session) reserved for the server", "engagement", { userId: "~u", metricType: "like" }, ["userId"]],
    ["sessionId wrong type", "view", { sessionId: 5 }, ["sessionId"]],
    ["sessionId over 128 chars", "event", { eventType: "e", sessionId: "x".repeat(129) }, ["sessionId"]],
    ["eventType over 100 chars", "event", { eventType: "e".repeat(101), sessionId: "s" }, ["eventType"]],
    ["pageUrl over 4096", "view", { sessionId: "s", pageUrl: "u".repeat(4097) }, ["pageUrl"]],
    ["metadata over 16 KiB", "event", { eventType: "e", sessionId: "s", metadata: { big: "m".repeat(16_400) } }, ["metadata"]],
    ["metadata not an object", "event", { eventType: "e", sessionId: "s", metadata: [1, 2] }, ["metadata"]],
    ["stepOrder negative", "funnel", { funnelId: "f", stepId: "s", stepOrder: -1, sessionId: "s" }, ["stepOrder"]],
    ["stepOrder fractional", "funnel", { funnelId: "f", stepId: "s", stepOrder: 1.5, sessionId: "s" }, ["stepOrder"]],
    ["conversion pageUrl over 4096", "conversion", { conversionType: "p", sessionId: "s", pageUrl: "u".repeat(4097) }, ["pageUrl"]],
    ["funnel pageUrl not a string", "funnel", { funnelId: "f", stepId: "s", stepOrder: 1, sessionId: "s", pageUrl: 7 }, ["pageUrl"]],
    ["currency not ISO 4217", "conversion", { conversionType: "p", sessionId: "s", currency: "euro" }, ["currency"]],
    ["registration event unknown", "registration-funnel", { event: "login", sessionId: "s", timestamp: "x" }, ["event"]],
    ["batch item bad", "batch", { events: [{ eventType: "a", sessionId: "s" }, { eventType: "b", sessionId: "" }] }, ["events", 1, "sessionId"]],
    ["events not an array", "interaction", { events: {} }, ["events"]]
  ]
  it.each(bad)("%s → 400 naming the field", (_name, kind, body, path) => {
    const result = parseRequest(kind, body, 500)
    expect(result).toBeInstanceOf(InvalidRequest)
    expect((result as InvalidRequest).issues.map((i) => i.path)).toContainEqual(path)
  })

  it("reports every bad field, not only the first", () => {
    const result = parseRequest("event", { eventType: 1, sessionId: 2 }, 500) as InvalidRequest
    expect(result.issues.map((i) => i.path)).toEqual(expect.arrayContaining([["eventType"], ["sessionId"]]))
  })
  it("a batch over the limit is rejected before its items are decoded", () => {
    const events = Array.from({ length: 6 }, () => ({ eventType: "e", sessionId: "s" }))
    const result = parseRequest("batch", { events }, 5) as InvalidRequest
    expect(result).toBeInstanceOf(InvalidRequest)
    expect(result.issues[0]!.path).toEqual(["events"])
    expect(parseRequest("batch", { events: events.slice(0, 5) }, 5)).toHaveLength(5)
  })
  it.each([null, [], "str", 3, true])("a non-object body (%j) is a 400", (body) => {
    expect(parseRequest("event", body, 500)).toBeInstanceOf(InvalidRequest)
  })
})

describe("the normalized event must fit the envelope the writer decodes", () => {
  it("metadata that fits alone but not with the merged fields is a 400 on metadata", () => {
    // 16,384 bytes of metadata on its own: valid input, but metricType is merged in
    const metadata = { p: "x".repeat(16_376) }
    expect(Buffer.byteLength(JSON.stringify(metadata))).toBe(16_384)
    const result = parseRequest("engagement", { userId: "u-1", metricType: "like", metadata }, 500)
    expect(result).toBeInstanceOf(InvalidRequest)
    expect((result as InvalidRequest).issues[0]!.path).toEqual(["metadata"])
    expect((result as InvalidRequest).issues[0]!.message).toContain("merged")
  })
  it("in a batch the issue names the event's index", () => {
    const events = [{ type: "ok", sessionId: "s" }, { type: "x", sessionId: "s", data: { p: "y".repeat(20_000) } }]
    const result = parseRequest("interaction", { events }, 500) as InvalidRequest
    expect(result.issues.map((i) => i.path)).toContainEqual(["events", 1, "data"])
  })
  it("a metricType whose engagement_ event type would pass 100 characters is a 400 on metricType", () => {
    const ok = one("engagement", { userId: "u", metricType: "a".repeat(89) })
    expect(ok.eventType).toHaveLength(100)
    const result = parseRequest("engagement", { userId: "u", metricType: "a".repeat(90) }, 500) as InvalidRequest
    expect(result).toBeInstanceOf(InvalidRequest)
    expect(result.issues[0]!.path).toEqual(["metricType"])
  })
  it("metadata nested deeper than serialization allows is a 400 that says so", () => {
    let deep: unknown = 1
    for (let i = 0; i < 20_000; i++) deep = [deep]
    const result = parseRequest("event", { eventType: "e", sessionId: "s", metadata: { deep } }, 500) as InvalidRequest
    expect(result).toBeInstanceOf(InvalidRequest)
    expect(result.issues[0]!.message).toContain("nested too deeply")
  })
})
