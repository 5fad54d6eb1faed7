/**
 * The tracking API (docs/api.md) as an `HttpApi`: the source of `/openapi.json` and `/docs`.
 * The tracking endpoints themselves are plain router routes (Tracking.ts: they read their
 * bodies themselves so that `text/plain` beacons, 413/415 and the 400 body format are exactly
 * what docs/api.md says, and they are the hot path); the `HttpApiBuilder` serves the health group.
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import {
  BatchRequest,
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionRequest,
  RegistrationFunnelRequest,
  ViewRequest
} from "../domain/Requests.ts"
import { DATE_RANGES, DIMENSIONS, FILTER_DIMENSIONS, FILTER_OPERATORS, MAX_LIMIT, METRICS } from "../domain/StatsQuery.ts"
import { VERSION } from "../domain/Version.ts"

export const Accepted = Schema.Struct({ success: Schema.Literal(true), eventId: Schema.String }).pipe(
  HttpApiSchema.status(202)
)
export const BatchAccepted = Schema.Struct({ success: Schema.Boolean, count: Schema.Int }).pipe(HttpApiSchema.status(202))

const errorBody = (status: number, description: string) =>
  Schema.Struct({
    error: Schema.String,
    message: Schema.optionalKey(Schema.String),
    issues: Schema.optionalKey(
      Schema.Array(Schema.Struct({ path: Schema.Array(Schema.Union([Schema.String, Schema.Number])), message: Schema.String }))
    )
  }).pipe(HttpApiSchema.status(status), Schema.annotate({ description }))

const trackingErrors = [
  errorBody(400, "invalid_request (every bad field by path) or malformed_json"),
  errorBody(401, "missing or wrong key (X-Write-Key, Authorization: Bearer, or ?writeKey=)"),
  errorBody(403, "origin_not_allowed: a write key from an origin that is not its site's (see docs/sites.md)"),
  errorBody(413, "body larger than MAX_BODY_BYTES"),
  errorBody(415, "content type other than application/json or text/plain"),
  errorBody(429, "rate limited; see Retry-After"),
  errorBody(503, "neither the primary nor the spool would take the event; retry after Retry-After")
] as const

const track = <Name extends string, Path extends `/${string}`, P extends Schema.Top>(
  name: Name,
  path: Path,
  payload: P,
  success: typeof Accepted | typeof BatchAccepted,
  description: string
) =>
  HttpApiEndpoint.post(name, path, { payload, success, error: trackingErrors }).annotateMerge(
    OpenApi.annotations({ description })
  )

export class TrackingApi extends HttpApiGroup.make("tracking", { topLevel: true })
  .add(
    track("view", "/track/view", ViewRequest, Accepted, "A page or content view (isView: true)."),
    track("engagement", "/track/engagement", EngagementRequest, Accepted, "A user-scoped engagement (like, comment, …)."),
    track("interaction", "/track/interaction", InteractionRequest, BatchAccepted, "Clicks, scrolls, funnel steps: one event each."),
    track("event", "/track/event", EventRequest, Accepted, "A custom event."),
    track("batch", "/track/batch", BatchRequest, BatchAccepted, "Up to MAX_BATCH_EVENTS custom events, all or nothing."),
    track("conversion", "/track/conversion", ConversionRequest, Accepted, "A conversion with optional value and ISO 4217 currency."),
    track("funnel", "/track/funnel", FunnelRequest, Accepted, "A funnel step."),
    track(
      "registrationFunnel",
      "/track/registration-funnel",
      RegistrationFunnelRequest,
      Accepted,
      "A registration funnel step (visit, signup, profile, conversion)."
    )
  )
  .annotateMerge(OpenApi.annotations({
    title: "Tracking",
    description: "Bodies are JSON (application/json, or text/plain holding JSON for navigator.sendBeacon). " +
      "Send the site's write key as X-Write-Key or ?writeKey= (pages: the request's Origin must be one of the site's), " +
      "or its server key as Authorization: Bearer (server-side; X-Forwarded-For and User-Agent are the visitor's). " +
      "202 means durably accepted."
  }))
{}

const HealthBody = Schema.Struct({
  status: Schema.String,
  primaryHealthy: Schema.Boolean,
  spoolDepth: Schema.NullOr(Schema.Number),
  oldestSpooledAgeMs: Schema.NullOr(Schema.Number)
})

export class HealthApi extends HttpApiGroup.make("health", { topLevel: true })
  .add(
    HttpApiEndpoint.get("health", "/health", { success: HealthBody }),
    HttpApiEndpoint.get("live", "/health/live", { success: Schema.Struct({ status: Schema.String }) }),
    HttpApiEndpoint.get("ready", "/health/ready", {
      success: Schema.Struct({ status: Schema.String }),
      error: Schema.Struct({ status: Schema.String }).pipe(HttpApiSchema.status(503))
    })
  )
  .annotateMerge(OpenApi.annotations({ title: "Health" }))
{}

const VALUE_OPS = FILTER_OPERATORS.slice(0, 4).join(", ")

const describe = <S extends Schema.Top>(schema: S, description: string) => schema.pipe(Schema.annotate({ description }))

const DateRange = describe(
  Schema.Union([Schema.Literals(DATE_RANGES), Schema.Tuple([Schema.String, Schema.String])]),
  "A named range in the site's time zone (realtime = the last 5 minutes), or [from, to]: ISO dates (whole days, both " +
    "included) or date-times (to excluded; without an offset: site-local)."
)
const Filters = describe(
  Schema.Array(Schema.Unknown),
  `Each filter: [op, dimension, values] with op in ${VALUE_OPS}, dimension in ${FILTER_DIMENSIONS.join(", ")}; ` +
    `or ["and"|"or", [filters]]; or ["not", filter]. null among the values of is / is_not: an unknown value. ` +
    `Filters in the list are and-ed.`
)

const StatsErrors = [
  describe(
    Schema.Struct({ error: Schema.String, field: Schema.String, allowed: Schema.Array(Schema.String), message: Schema.String }).pipe(
      HttpApiSchema.status(400)
    ),
    "invalid_query: `field` names the first invalid field (e.g. filters[0][1]), `allowed` lists what it takes"
  ),
  errorBody(401, "missing or invalid server key (Authorization: Bearer <server key>)"),
  errorBody(403, "forbidden: the body's site is not the key's site"),
  errorBody(413, "body larger than 64 KiB"),
  errorBody(503, "the database did not answer; retry later")
] as const

const QueryRequest = Schema.Struct({
  site: describe(Schema.String, "the site's hostname (one of the key's site's hostnames)"),
  metrics: Schema.Array(Schema.Literals(METRICS)),
  date_range: DateRange,
  dimensions: Schema.optionalKey(describe(Schema.Array(Schema.Literals(DIMENSIONS)), "at most one time dimension")),
  filters: Schema.optionalKey(Filters),
  order_by: Schema.optionalKey(
    describe(Schema.Array(Schema.Tuple([Schema.String, Schema.Literals(["asc", "desc"])])), "metrics or dimensions of the query")
  ),
  limit: Schema.optionalKey(describe(Schema.Int, `1–${MAX_LIMIT}, default 100`)),
  offset: Schema.optionalKey(Schema.Int),
  compare: Schema.optionalKey(Schema.NullOr(Schema.Literal("previous_period")))
})

const Range = Schema.Tuple([Schema.String, Schema.String])
const QueryAnswer = Schema.Struct({
  results: Schema.Array(Schema.Struct({
    dimensions: Schema.Array(Schema.NullOr(Schema.String)),
    metrics: Schema.Array(Schema.Number),
    comparison: Schema.optionalKey(
      Schema.Struct({ metrics: Schema.Array(Schema.Number), change: Schema.Array(Schema.NullOr(Schema.Number)) })
    )
  })),
  meta: Schema.Struct({
    site: Schema.String,
    metrics: Schema.Array(Schema.String),
    dimensions: Schema.Array(Schema.String),
    date_range: Range,
    timezone: Schema.String,
    comparison_date_range: Schema.optionalKey(Range)
  })
})

const FunnelStep = Schema.Union([
  Schema.Struct({ page: describe(Schema.String, "a page path; * matches any characters") }),
  Schema.Struct({ event_type: Schema.String }),
  Schema.Struct({ funnel_id: Schema.String, step_id: Schema.String })
])
const FunnelQueryRequest = Schema.Struct({
  site: Schema.String,
  date_range: DateRange,
  window_minutes: Schema.optionalKey(describe(Schema.Int, "all steps within this many minutes of the first; default 1440")),
  steps: describe(Schema.Array(FunnelStep), "2–8 steps, in order"),
  filters: Schema.optionalKey(Filters)
})
const FunnelAnswer = Schema.Struct({
  steps: Schema.Array(Schema.Struct({
    step: Schema.Int,
    label: Schema.String,
    visitors: Schema.Int,
    conversion_rate: describe(Schema.Number, "percent of the first step's visitors"),
    conversion_rate_step: describe(Schema.Number, "percent of the previous step's visitors"),
    drop_off: describe(Schema.Int, "visitors of the previous step who did not reach this one")
  })),
  meta: Schema.Struct({ site: Schema.String, date_range: Range, timezone: Schema.String, window_minutes: Schema.Int })
})

export class StatsApi extends HttpApiGroup.make("stats", { topLevel: true })
  .add(
    HttpApiEndpoint.post("statsQuery", "/api/v1/query", { payload: QueryRequest, success: QueryAnswer, error: StatsErrors }).annotateMerge(
      OpenApi.annotations({ description: "Metrics by dimensions over a date range (docs/api.md, Stats query API)." })
    ),
    HttpApiEndpoint.post("statsFunnel", "/api/v1/funnel", { payload: FunnelQueryRequest, success: FunnelAnswer, error: StatsErrors })
      .annotateMerge(OpenApi.annotations({ description: "Visitors per ordered step within a window." }))
  )
  .annotateMerge(OpenApi.annotations({
    title: "Stats",
    description: "Read a site's numbers with its server key (Authorization: Bearer <server key>). Served by serve --role api and --role all."
  }))
{}

export class Api extends HttpApi.make("spoolway")
  .add(TrackingApi)
  .add(StatsApi)
  .add(HealthApi)
  .annotateMerge(OpenApi.annotations({
    title: "Spoolway tracking API",
    version: VERSION,
    description: "Durable, exactly-once analytics ingestion. A 2xx means the event is stored exactly once."
  }))
{}

/**
 * Health only: the writer role's whole API, and what the collector's `HttpApiBuilder`
 * serves (its tracking routes are Tracking.ts). The same API id as `Api` so the one health
 * implementation serves both.
 */
export class WriterApi extends HttpApi.make("spoolway")
  .add(HealthApi)
  .annotateMerge(OpenApi.annotations({ title: "Spoolway writer" }))
{}
