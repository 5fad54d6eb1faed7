/**
 * Property: whatever JSON arrives on whatever endpoint, the collector answers 2xx or
 * 4xx — never 5xx — and a 4xx writes nothing. Valid bodies (generated from the
 * endpoint's own Schema) are always accepted.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  BatchRequest,
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionRequest,
  RegistrationFunnelRequest,
  ViewRequest
} from "../src/domain/Requests.ts"
import { post, type RunningCollector, testCollectors } from "./support/collector.ts"

const { redis, start } = testCollectors()
let c: RunningCollector
beforeAll(async () => {
  c = await start({ rateLimitPerMinute: 0 })
})

const paths = [
  "/track/view",
  "/track/engagement",
  "/track/interaction",
  "/track/event",
  "/track/batch",
  "/track/conversion",
  "/track/funnel",
  "/track/registration-funnel"
] as const

/** Objects with the endpoints' own field names but values of any JSON type. */
const NearMiss = Schema.Struct(Object.fromEntries(
  [
    "sessionId", "userId", "pageUrl", "contentId", "eventType", "metricType", "events", "metadata", "timestamp",
    "conversionType", "value", "currency", "funnelId", "stepId", "stepOrder", "event", "clientDevice", "attribution"
  ].map((k) => [k, Schema.optionalKey(Schema.Json)])
))

const eventCount = (u: unknown) => Effect.promise(() => redis.xlen(`${c.prefix}:events`))

const send = (path: string, body: unknown) =>
  Effect.promise(async () => {
    const res = await post(c.baseUrl, path, body)
    await res.arrayBuffer()
    return res.status
  })

describe("arbitrary bodies never produce a 5xx", () => {
  it.effect.prop("random JSON on every endpoint", { body: Schema.Json, which: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 7 })) }, ({ body, which }) =>
    Effect.gen(function*() {
      const before = yield* eventCount(null)
      const status = yield* send(paths[which]!, body)
      expect(status).toBeLessThan(500)
      if (status >= 400) expect(yield* eventCount(null)).toBe(before)
    }), { timeout: 60_000, arbitrary: { runs: 300 } })

  it.effect.prop("field names right, values random", { body: NearMiss, which: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 7 })) }, ({ body, which }) =>
    Effect.gen(function*() {
      const before = yield* eventCount(null)
      const status = yield* send(paths[which]!, body)
      expect(status).toBeLessThan(500)
      if (status >= 400) expect(yield* eventCount(null)).toBe(before)
    }), { timeout: 60_000, arbitrary: { runs: 300 } })

  const valid: Array<[string, Schema.Top]> = [
    ["/track/view", ViewRequest],
    ["/track/engagement", EngagementRequest],
    ["/track/interaction", InteractionRequest],
    ["/track/event", EventRequest],
    ["/track/batch", BatchRequest],
    ["/track/conversion", ConversionRequest],
    ["/track/funnel", FunnelRequest],
    ["/track/registration-funnel", RegistrationFunnelRequest]
  ]
  for (const [path, schema] of valid) {
    it.effect.prop(`schema-valid bodies on ${path} are accepted`, [schema as Schema.Schema<unknown>], ([body]) =>
      Effect.gen(function*() {
        const status = yield* send(path, body)
        expect(status).toBe(202)
      }), { timeout: 60_000, arbitrary: { runs: 40 } })
  }
})
