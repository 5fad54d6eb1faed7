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
import { post, type RunningCollector, testCollectors, TRACKING_PATHS } from "./support/collector.ts"

const { redis, start } = testCollectors()
let c: RunningCollector
beforeAll(async () => {
  c = await start({ rateLimitPerMinute: 0 })
})

/** Each endpoint's request Schema (the valid bodies). */
const SCHEMAS: Record<typeof TRACKING_PATHS[number], Schema.Top> = {
  "/track/view": ViewRequest,
  "/track/engagement": EngagementRequest,
  "/track/interaction": InteractionRequest,
  "/track/event": EventRequest,
  "/track/batch": BatchRequest,
  "/track/conversion": ConversionRequest,
  "/track/funnel": FunnelRequest,
  "/track/registration-funnel": RegistrationFunnelRequest
}

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

/** Whichever body on endpoint `which`: never a 5xx, and a 4xx stores nothing. */
const neverServerError = ({ body, which }: { readonly body: unknown; readonly which: number }) =>
  Effect.gen(function*() {
    const before = yield* eventCount(null)
    const status = yield* send(TRACKING_PATHS[which]!, body)
    expect(status).toBeLessThan(500)
    if (status >= 400) expect(yield* eventCount(null)).toBe(before)
  })
const Which = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: TRACKING_PATHS.length - 1 }))

describe("arbitrary bodies never produce a 5xx", () => {
  it.effect.prop("random JSON on every endpoint", { body: Schema.Json, which: Which }, neverServerError, { timeout: 60_000, arbitrary: { runs: 300 } })

  it.effect.prop("field names right, values random", { body: NearMiss, which: Which }, neverServerError, { timeout: 60_000, arbitrary: { runs: 300 } })

  for (const path of TRACKING_PATHS) {
    it.effect.prop(`schema-valid bodies on ${path} are accepted`, [SCHEMAS[path] as Schema.Schema<unknown>], ([body]) =>
      Effect.gen(function*() {
        const status = yield* send(path, body)
        expect(status).toBe(202)
      }), { timeout: 60_000, arbitrary: { runs: 40 } })
  }
})
