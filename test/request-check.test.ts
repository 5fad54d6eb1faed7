/**
 * The hand-written request checks (domain/RequestCheck.ts) against the Schema path:
 * whenever the fast path accepts a body, the Schema accepts it too and both give the same
 * normalized events (same JSON, key order included), and those satisfy the envelope Schema.
 * Valid bodies generated from the endpoint's own Schema take the fast path.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { NormalizedEvent } from "../src/domain/Envelope.ts"
import { isBatchRequest, isEventRequest, viewRequestOf } from "../src/domain/RequestCheck.ts"
import { BatchRequest, EventRequest, ViewRequest } from "../src/domain/Requests.ts"
import { InvalidRequest } from "../src/domain/Validation.ts"
import { parseRequest } from "../src/domain/ParseRequest.ts"
import { parseRequestWithSchema } from "./support/parseRequestWithSchema.ts"

const MAX_BATCH = 500
const isNormalized = Schema.is(NormalizedEvent)

/** as the collector sees it: through JSON text */
const viaJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value) ?? "null")

/** Both paths on `body`; returns whether the fast path accepted it. */
const agree = (kind: "event" | "batch", body: unknown): boolean => {
  const fastTaken = kind === "event" ? isEventRequest(body) : isBatchRequest(body)
  const fast = parseRequest(kind, body, MAX_BATCH)
  const slow = parseRequestWithSchema(kind, body, MAX_BATCH)
  if (fastTaken) {
    assert.isFalse(slow instanceof InvalidRequest, `fast path accepted what the Schema rejects: ${JSON.stringify(body)?.slice(0, 300)}`)
    assert.isFalse(fast instanceof InvalidRequest)
    assert.strictEqual(JSON.stringify(fast), JSON.stringify(slow))
    for (const event of fast as ReadonlyArray<NormalizedEvent>) assert.isTrue(isNormalized(event))
  } else {
    // not taken: parseRequest is the Schema path, error report included
    assert.deepStrictEqual(fast, slow)
  }
  return fastTaken
}

/** strings at and around every cap, plus arbitrary ones */
const Edge = Schema.Literals([
  "", "x", "x".repeat(64), "x".repeat(65), "x".repeat(100), "x".repeat(101), "x".repeat(128), "x".repeat(129),
  "x".repeat(4096), "x".repeat(4097), "😀".repeat(50), "😀".repeat(51), "\ud800", "2026-11-29T12:00:00Z", "1700000000000", " 12 "
])
const Value = Schema.Union([Edge, Schema.String, Schema.Number, Schema.Boolean, Schema.Null, Schema.Json])
const BigMetadata = Schema.Literals([16 * 1024 - 8, 16 * 1024 - 7, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 20_000])
const FIELDS = ["eventType", "sessionId", "userId", "pageUrl", "metadata", "timestamp", "extra"] as const
const Field = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: FIELDS.length - 1 }))
const withField = (body: object, field: number, value: unknown, remove: boolean) => {
  const copy: Record<string, unknown> = { ...body }
  if (remove) delete copy[FIELDS[field]!]
  else copy[FIELDS[field]!] = value
  return copy
}
const NearMiss = Schema.Struct({
  eventType: Schema.optionalKey(Value),
  sessionId: Schema.optionalKey(Value),
  userId: Schema.optionalKey(Value),
  pageUrl: Schema.optionalKey(Value),
  metadata: Schema.optionalKey(Schema.Union([Value, Schema.Record(Schema.String, Value)])),
  timestamp: Schema.optionalKey(Value),
  extra: Schema.optionalKey(Value)
})

describe("hand-checked requests ≡ the Schema", () => {
  it.prop("valid /track/event bodies: fast path taken, same events", [EventRequest], ([body]) => {
    assert.isTrue(agree("event", viaJson(body)))
  }, { arbitrary: { runs: 500 } })

  it.prop("valid /track/batch bodies: fast path taken, same events", [BatchRequest], ([body]) => {
    assert.isTrue(agree("batch", viaJson(body)))
  }, { arbitrary: { runs: 200 } })

  it.prop("valid bodies with one field replaced (values at and around the caps) or removed", [EventRequest, Field, Value, Schema.Boolean], ([body, field, value, remove]) => {
    agree("event", viaJson(withField(body, field, value, remove)))
  }, { arbitrary: { runs: 3000 } })

  it.prop("batches with one item changed so", [BatchRequest, Field, Value, Schema.Boolean, Schema.Int], ([batch, field, value, remove, at]) => {
    const events = [...batch.events]
    if (events.length > 0) {
      const i = Math.abs(at) % events.length
      events[i] = withField(events[i]!, field, value, remove) as typeof events[number]
    }
    agree("batch", viaJson({ events }))
  }, { arbitrary: { runs: 1000 } })

  it.prop("the request's field names with values of any kind", [NearMiss], ([body]) => {
    agree("event", viaJson(body))
  }, { arbitrary: { runs: 2000 } })

  it.prop("batches of such items", [Schema.Array(NearMiss).check(Schema.isMaxLength(5))], ([events]) => {
    agree("batch", viaJson({ events }))
  }, { arbitrary: { runs: 500 } })

  it.prop("metadata around the 16 KiB cap", [BigMetadata, Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3 }))], ([size, emoji]) => {
    // {"p":"…"} is 8 bytes plus the padding; emoji make bytes and characters differ
    const pad = emoji === 0 ? "x".repeat(size - 8) : "😀".repeat(Math.floor((size - 8) / 4)) + "x".repeat((size - 8) % 4)
    agree("event", { eventType: "e", sessionId: "s", metadata: { p: pad } })
  }, { arbitrary: { runs: 50 } })

  it.prop("any JSON", [Schema.Json], ([body]) => {
    agree("event", viaJson(body))
    agree("batch", viaJson(body))
  }, { arbitrary: { runs: 300 } })

  it("every field set to every edge value, on a minimal and a full body", () => {
    const edges: ReadonlyArray<unknown> = [...Edge.literals, 0, -1, 1.5, 1_700_000_000_000, true, false, null, [], [1], {}, { a: 1 }, { a: "x".repeat(16_370) }]
    const bases = [
      { eventType: "e", sessionId: "s" },
      { eventType: "e", sessionId: "s", userId: "u", pageUrl: "https://a.example/", metadata: { k: 1 }, timestamp: 1 }
    ]
    for (const base of bases) {
      for (let field = 0; field < FIELDS.length; field++) {
        agree("event", withField(base, field, undefined, true))
        for (const value of edges) {
          agree("event", viaJson(withField(base, field, value, false)))
          agree("batch", { events: [base, viaJson(withField(base, field, value, false))] })
        }
      }
    }
  })

  it("JSON-only edge cases", () => {
    for (
      const text of [
        `{"eventType":"e","sessionId":"s","timestamp":1e400}`,
        `{"eventType":"e","sessionId":"s","metadata":{"__proto__":{"x":1},"a":2}}`,
        `{"eventType":"e","sessionId":"s","metadata":[]}`,
        `{"eventType":"e","sessionId":"s","metadata":null}`,
        `{"eventType":"e","sessionId":"s","userId":null}`,
        `{"eventType":"e","sessionId":"s","__proto__":{"userId":""}}`,
        `{"events":[{"eventType":"e","sessionId":"s"},null]}`,
        `{"events":{"0":{"eventType":"e","sessionId":"s"},"length":1}}`
      ]
    ) {
      agree("event", JSON.parse(text))
      agree("batch", JSON.parse(text))
    }
    // deeper than JSON.stringify's stack: the Schema reports it, the fast path declines
    const deep = JSON.parse(`{"eventType":"e","sessionId":"s","metadata":{"a":${"[".repeat(20_000)}${"]".repeat(20_000)}}}`)
    assert.isFalse(agree("event", deep))
  })
})

/**
 * /track/view: the check recognises exactly the bodies the request Schema accepts, and
 * parseRequest gives the Schema path's result to the letter (events with their key order, or
 * the same 400 report) — for a valid body through the hand-checked copy.
 */
const isViewRequest = Schema.is(ViewRequest)
const decodeView = Schema.decodeUnknownExit(ViewRequest)
const agreeView = (body: unknown): boolean => {
  const recognised = viewRequestOf(body) !== undefined
  assert.strictEqual(recognised, decodeView(body)._tag === "Success", `check ≠ Schema on ${JSON.stringify(body)?.slice(0, 300)}`)
  const fast = parseRequest("view", body, MAX_BATCH)
  const slow = parseRequestWithSchema("view", body, MAX_BATCH)
  assert.strictEqual(JSON.stringify(fast), JSON.stringify(slow))
  if (!(fast instanceof InvalidRequest)) for (const event of fast) assert.isTrue(isNormalized(event))
  return recognised
}

const VIEW_FIELDS = [
  "sessionId", "pageUrl", "contentId", "contentType", "app", "duration", "referrer", "userId", "metadata", "clientDevice",
  "attribution", "extra",
  "clientDevice.screenWidth", "clientDevice.viewportHeight", "clientDevice.language", "clientDevice.languages",
  "clientDevice.cookiesEnabled", "clientDevice.doNotTrack", "clientDevice.extra",
  "attribution.utmSource", "attribution.referrer", "attribution.extra"
] as const
const ViewField = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: VIEW_FIELDS.length - 1 }))
const withViewField = (body: object, field: number, value: unknown, remove: boolean) => {
  const copy: Record<string, unknown> = { ...body }
  const [outer, inner] = VIEW_FIELDS[field]!.split(".") as [string, string | undefined]
  if (inner === undefined) {
    if (remove) delete copy[outer]
    else copy[outer] = value
    return copy
  }
  const nested: Record<string, unknown> = typeof copy[outer] === "object" && copy[outer] !== null ? { ...(copy[outer] as object) } : {}
  if (remove) delete nested[inner]
  else nested[inner] = value
  copy[outer] = nested
  return copy
}
const NearMissDevice = Schema.Struct({
  screenWidth: Schema.optionalKey(Value),
  language: Schema.optionalKey(Value),
  languages: Schema.optionalKey(Schema.Union([Value, Schema.Array(Value)])),
  cookiesEnabled: Schema.optionalKey(Value),
  doNotTrack: Schema.optionalKey(Value),
  other: Schema.optionalKey(Value)
})
const NearMissView = Schema.Struct({
  sessionId: Schema.optionalKey(Value),
  pageUrl: Schema.optionalKey(Value),
  contentId: Schema.optionalKey(Value),
  contentType: Schema.optionalKey(Value),
  duration: Schema.optionalKey(Value),
  referrer: Schema.optionalKey(Value),
  userId: Schema.optionalKey(Value),
  metadata: Schema.optionalKey(Schema.Union([Value, Schema.Record(Schema.String, Value)])),
  clientDevice: Schema.optionalKey(Schema.Union([Value, NearMissDevice])),
  attribution: Schema.optionalKey(Schema.Union([Value, Schema.Record(Schema.String, Value)]))
})
const FULL_VIEW = {
  sessionId: "s",
  pageUrl: "https://a.example/p?utm_source=x",
  contentId: "c",
  contentType: "article",
  app: "web",
  duration: 12.5,
  referrer: "https://www.google.com/",
  userId: "u",
  metadata: { k: 1 },
  clientDevice: {
    screenWidth: 1920, screenHeight: 1080, viewportWidth: 1200, viewportHeight: 800, pixelRatio: 2, colorDepth: 24,
    language: "en-GB", languages: ["en-GB", "en"], timezone: "Europe/London", timezoneOffset: 0, deviceMemory: 8,
    hardwareConcurrency: 8, touchPoints: 0, cookiesEnabled: true, doNotTrack: null
  },
  attribution: { utmSource: "news", utmMedium: "email", utmCampaign: "spring", utmContent: "a", utmTerm: "b", referrer: "https://r.example/" }
}

describe("hand-checked views ≡ the Schema", () => {
  it.prop("valid /track/view bodies: recognised, same events", [ViewRequest], ([body]) => {
    const json = viaJson(body)
    assert.isTrue(isViewRequest(json))
    assert.isTrue(agreeView(json))
  }, { arbitrary: { runs: 500 } })

  it.prop("valid views with one field (or nested field) replaced (values at and around the caps) or removed", [ViewRequest, ViewField, Value, Schema.Boolean], ([body, field, value, remove]) => {
    agreeView(viaJson(withViewField(body, field, value, remove)))
  }, { arbitrary: { runs: 3000 } })

  it.prop("the view's field names with values of any kind", [NearMissView], ([body]) => {
    agreeView(viaJson(body))
  }, { arbitrary: { runs: 2000 } })

  it.prop("any JSON", [Schema.Json], ([body]) => {
    agreeView(viaJson(body))
  }, { arbitrary: { runs: 300 } })

  it.prop("metadata around the 16 KiB cap, before and after contentType / app / duration are merged in", [BigMetadata, Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3 }))], ([size, merged]) => {
    const pad = "x".repeat(size - 8)
    const extra = merged === 0 ? {} : merged === 1 ? { contentType: "article" } : merged === 2 ? { app: "web" } : { duration: 1.5 }
    agreeView({ sessionId: "s", metadata: { p: pad }, ...extra })
  }, { arbitrary: { runs: 60 } })

  it("every field set to every edge value, on a minimal and a full body", () => {
    const edges: ReadonlyArray<unknown> = [...Edge.literals, 0, -1, 1.5, 1_700_000_000_000, true, false, null, [], [1], ["a"], Array(33).fill("a"), {}, { a: 1 }, { a: "x".repeat(16_370) }]
    for (const base of [{ sessionId: "s" }, FULL_VIEW]) {
      assert.isTrue(agreeView(base))
      for (let field = 0; field < VIEW_FIELDS.length; field++) {
        agreeView(withViewField(base, field, undefined, true))
        for (const value of edges) agreeView(viaJson(withViewField(base, field, value, false)))
      }
    }
  })

  it("JSON-only edge cases", () => {
    for (
      const text of [
        `{"sessionId":"s","duration":1e400}`,
        `{"sessionId":"s","clientDevice":{"screenWidth":-1e400}}`,
        `{"sessionId":"s","clientDevice":{"__proto__":{"screenWidth":1},"touchPoints":2}}`,
        `{"sessionId":"s","attribution":{"__proto__":{"utmSource":"x"}}}`,
        `{"sessionId":"s","__proto__":{"pageUrl":"x"}}`,
        `{"sessionId":"s","clientDevice":null}`,
        `{"sessionId":"s","clientDevice":[]}`,
        `{"sessionId":"s","attribution":"x"}`,
        `{"sessionId":"s","metadata":{"__proto__":{"x":1},"a":2},"app":"a"}`
      ]
    ) {
      agreeView(JSON.parse(text))
    }
  })
})
