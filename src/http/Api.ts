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

export class Api extends HttpApi.make("spoolway")
  .add(TrackingApi)
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
