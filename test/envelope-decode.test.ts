/**
 * The writer's fast envelope decoder (src/domain/EnvelopeDecode.ts) gives exactly what the
 * shared Schema decoder gives: the same decoded value (deep-equal, same key order) for every
 * envelope the Schema accepts, the same failure for everything else — and it takes the fast
 * path for the well-formed envelopes (otherwise it would be correct but pointless).
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Cause, Exit, Schema } from "effect"
import { decodeEnvelopeJson, RawEventEnvelope } from "../src/domain/Envelope.ts"
import { decodeEnvelope, fastDecode } from "../src/domain/EnvelopeDecode.ts"
import { MAX_METADATA_BYTES } from "../src/domain/Limits.ts"

/** Both decoders agree on `json`; returns whether the Schema accepted it. */
const agree = (json: string): boolean => {
  const fast = decodeEnvelope(json)
  const reference = decodeEnvelopeJson(json)
  if (Exit.isSuccess(reference)) {
    assert.isTrue(Exit.isSuccess(fast), `fast decoder failed where the Schema succeeded: ${json.slice(0, 300)}`)
    if (Exit.isSuccess(fast)) {
      assert.deepStrictEqual(fast.value, reference.value)
      assert.strictEqual(JSON.stringify(fast.value), JSON.stringify(reference.value)) // key order too
    }
    return true
  }
  assert.isTrue(Exit.isFailure(fast), `fast decoder succeeded where the Schema failed: ${json.slice(0, 300)}`)
  if (Exit.isFailure(fast)) assert.strictEqual(Cause.pretty(fast.cause), Cause.pretty(reference.cause))
  return false
}

/** Takes the fast path (does not fall back to the Schema). */
const fastPathTaken = (json: string) => fastDecode(JSON.parse(json)) !== undefined

// receivedAt's filter (Date.parse) has no generator of its own: valid dates in several forms
const ReceivedAt = Schema.Literals([
  "2026-11-29T12:00:00.000Z",
  "2026-11-29T23:59:59.999+01:00",
  "2026-11-29",
  "Sun, 29 Nov 2026 12:00:00 GMT",
  "0001-01-01T00:00:00.000Z",
  "+275760-09-13T00:00:00.000Z"
])
const ValidEnvelope = RawEventEnvelope.mapFields((fields) => ({ ...fields, receivedAt: ReceivedAt }))

const near = (names: ReadonlyArray<string>, nested: Record<string, Schema.Codec<unknown>> = {}) =>
  Schema.Struct(Object.fromEntries(
    names.map((name) => [name, Schema.optionalKey(nested[name] ?? Schema.Json)])
  )) as Schema.Codec<unknown>

/** The envelope's field names at every level, values of any JSON type. */
const NearMiss = near(["v", "eventId", "kind", "receivedAt", "edge", "payload", "extra"], {
  v: Schema.Union([Schema.Literal(1), Schema.Json]),
  eventId: Schema.Union([Schema.Literal("6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10"), Schema.Json]),
  kind: Schema.Union([Schema.Literals(["view", "conversion"]), Schema.Json]),
  receivedAt: Schema.Union([ReceivedAt, Schema.Json]),
  edge: Schema.Union([
    near(["ip", "ua", "lang", "headers"], { headers: Schema.Union([near(["origin", "referer", "host"]), Schema.Json]) }),
    Schema.Json
  ]),
  payload: Schema.Union([
    near(["eventType", "sessionId", "userId", "pageUrl", "referrer", "metadata", "timestamp", "isView", "clientDevice", "attribution"], {
      clientDevice: Schema.Union([
        near(["screenWidth", "viewportWidth", "pixelRatio", "language", "languages", "timezone", "touchPoints", "cookiesEnabled", "doNotTrack"]),
        Schema.Json
      ]),
      attribution: Schema.Union([near(["utmSource", "utmMedium", "utmCampaign", "utmContent", "utmTerm", "referrer"]), Schema.Json])
    }),
    Schema.Json
  ])
})

/** A valid envelope with one field at any depth replaced by any JSON value (or removed). */
const paths = [
  ["v"], ["eventId"], ["kind"], ["receivedAt"], ["edge"], ["payload"], ["edge", "ip"], ["edge", "ua"], ["edge", "lang"],
  ["edge", "headers"], ["edge", "headers", "origin"], ["edge", "headers", "host"], ["payload", "eventType"],
  ["payload", "sessionId"], ["payload", "userId"], ["payload", "pageUrl"], ["payload", "referrer"], ["payload", "metadata"],
  ["payload", "timestamp"], ["payload", "isView"], ["payload", "clientDevice"], ["payload", "attribution"],
  ["payload", "clientDevice", "viewportWidth"], ["payload", "clientDevice", "languages"],
  ["payload", "clientDevice", "doNotTrack"], ["payload", "clientDevice", "cookiesEnabled"],
  ["payload", "attribution", "utmSource"], ["payload", "attribution", "referrer"]
] as const
const mutate = (envelope: unknown, path: ReadonlyArray<string>, value: unknown, remove: boolean): unknown => {
  const copy = structuredClone(envelope) as Record<string, unknown>
  let target: Record<string, unknown> = copy
  for (const key of path.slice(0, -1)) {
    const next = target[key]
    if (typeof next !== "object" || next === null) return copy
    target = next as Record<string, unknown>
  }
  const last = path[path.length - 1]!
  if (remove) delete target[last]
  else target[last] = value
  return copy
}

describe("decodeEnvelope ≡ decodeEnvelopeJson", () => {
  it.prop(
    "valid envelopes (from the Schema): same value, fast path taken",
    [ValidEnvelope],
    ([envelope]) => {
      const json = JSON.stringify(envelope)
      assert.isTrue(agree(json))
      assert.isTrue(fastPathTaken(json), json.slice(0, 300))
    },
    { arbitrary: { runs: 500 } }
  )

  it.prop(
    "valid envelopes with one field replaced or removed",
    [
      ValidEnvelope,
      Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: paths.length - 1 })),
      Schema.Json,
      Schema.Boolean
    ],
    ([envelope, which, value, remove]) => {
      agree(JSON.stringify(mutate(envelope, paths[which]!, value, remove)))
    },
    { arbitrary: { runs: 1000 } }
  )

  it.prop("the envelope's field names with values of any JSON type", [NearMiss], ([value]) => {
    agree(JSON.stringify(value))
  }, { arbitrary: { runs: 1000 } })

  it.prop("any JSON", [Schema.Json], ([value]) => {
    agree(JSON.stringify(value))
  }, { arbitrary: { runs: 300 } })

  it.prop("any string", [Arbitrary.schema(Schema.String)], ([text]) => {
    agree(text)
  }, { arbitrary: { runs: 300 } })

  const base = {
    v: 1,
    eventId: "6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10",
    kind: "view",
    receivedAt: "2026-11-29T12:00:00.000Z",
    edge: { ip: "81.2.69.160", headers: { origin: "https://shop.example.com" } },
    payload: { eventType: "pageview", sessionId: "s1", isView: true }
  }
  const withPayload = (payload: Record<string, unknown>) => JSON.stringify({ ...base, payload: { ...base.payload, ...payload } })

  it("edge cases", () => {
    const cases = [
      JSON.stringify(base),
      // key order and unknown keys
      `{"payload":{"isView":true,"sessionId":"s1","eventType":"pageview","x":1},"edge":{"headers":{},"y":2},"receivedAt":"2026-11-29","kind":"view","eventId":"6F1C1B9E-6B7A-4C1E-9A57-3C1F0C9E2A10","v":1,"z":[]}`,
      JSON.stringify({ ...base, eventId: "00000000-0000-0000-0000-000000000000" }),
      JSON.stringify({ ...base, eventId: "ffffffff-ffff-ffff-ffff-ffffffffffff" }),
      JSON.stringify({ ...base, eventId: "6f1c1b9e-6b7a-9c1e-9a57-3c1f0c9e2a10" }), // version 9
      JSON.stringify({ ...base, receivedAt: "yesterday" }),
      JSON.stringify({ ...base, v: 2 }),
      JSON.stringify({ ...base, v: "1" }),
      JSON.stringify([base]),
      "null",
      "{",
      "",
      // metadata: __proto__, sizes around the 16 KiB limit (ASCII and multi-byte), deep nesting
      withPayload({ metadata: JSON.parse(`{"__proto__":{"a":1},"b":2}`) }),
      `{"v":1,"eventId":"6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10","kind":"view","receivedAt":"2026-11-29","edge":{"headers":{}},"payload":{"eventType":"e","sessionId":"s","isView":false,"metadata":{"__proto__":[1]}}}`,
      withPayload({ metadata: { a: "x".repeat(MAX_METADATA_BYTES - 8) } }), // exactly 16384 bytes
      withPayload({ metadata: { a: "x".repeat(MAX_METADATA_BYTES - 7) } }),
      withPayload({ metadata: { a: "é".repeat((MAX_METADATA_BYTES - 8) / 2) } }),
      withPayload({ metadata: { a: "é".repeat((MAX_METADATA_BYTES - 8) / 2 + 1) } }),
      withPayload({ metadata: { a: "€".repeat(5000) } }),
      withPayload({ metadata: { n: 1e21, m: -0, big: 123456789012345680000 } }),
      `{"v":1,"eventId":"6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10","kind":"view","receivedAt":"2026-11-29","edge":{"headers":{}},"payload":{"eventType":"e","sessionId":"s","isView":true,"metadata":${"[".repeat(20_000)}${"]".repeat(20_000)}}}`,
      `{"v":1,"eventId":"6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10","kind":"view","receivedAt":"2026-11-29","edge":{"headers":{}},"payload":{"eventType":"e","sessionId":"s","isView":true,"metadata":{"a":${"[".repeat(200_000)}${"]".repeat(200_000)}}}}`,
      withPayload({ metadata: [] }),
      withPayload({ metadata: null }),
      // numbers: JSON allows literals beyond float range
      `{"v":1,"eventId":"6f1c1b9e-6b7a-4c1e-9a57-3c1f0c9e2a10","kind":"view","receivedAt":"2026-11-29","edge":{"headers":{}},"payload":{"eventType":"e","sessionId":"s","isView":true,"timestamp":1e400}}`,
      withPayload({ timestamp: -0 }),
      // bounds
      withPayload({ eventType: "e".repeat(100) }),
      withPayload({ eventType: "e".repeat(101) }),
      withPayload({ eventType: "" }),
      withPayload({ sessionId: "s".repeat(128), userId: "u".repeat(128) }),
      withPayload({ userId: "" }),
      withPayload({ userId: "u".repeat(129) }),
      withPayload({ pageUrl: "", referrer: "r".repeat(4096) }),
      withPayload({ pageUrl: "p".repeat(4097) }),
      withPayload({ clientDevice: { languages: Array.from({ length: 32 }, () => "en") } }),
      withPayload({ clientDevice: { languages: Array.from({ length: 33 }, () => "en") } }),
      withPayload({ clientDevice: { languages: ["l".repeat(513)] } }),
      withPayload({ clientDevice: { doNotTrack: null, cookiesEnabled: false, touchPoints: 0 } }),
      withPayload({ clientDevice: { doNotTrack: "1", timezone: "t".repeat(512) } }),
      withPayload({ clientDevice: { doNotTrack: 1 } }),
      withPayload({ clientDevice: [] }),
      withPayload({ attribution: { utmSource: "", referrer: "https://t.co/" } }),
      withPayload({ attribution: { utmTerm: "t".repeat(513) } }),
      withPayload({ attribution: null }),
      JSON.stringify({ ...base, edge: { headers: null } }),
      JSON.stringify({ ...base, edge: { ip: 1, headers: {} } }),
      JSON.stringify({ ...base, edge: { ua: "x".repeat(100_000), lang: "", headers: { host: "" } } })
    ]
    for (const json of cases) agree(json)
    assert.isTrue(fastPathTaken(cases[0]!))
    assert.isTrue(fastPathTaken(cases[1]!))
  })
})
