/**
 * The tracking endpoints: rate limit (429) → write key (401) → content type (415) →
 * body size (413) → JSON (400) → validation (400) → capture → 202, or 503 when
 * neither primary nor spool took the event. Bad input never reaches Redis.
 *
 * They are plain router routes; the `TrackingApi` group in Api.ts documents them
 * (/openapi.json, /docs). This is the collector's hot path (issue 2), so a request costs
 * three Effect steps — read the body, store the events, answer — and everything else
 * (header checks, JSON, validation, envelopes, metrics) is synchronous code that
 * allocates as little as it can: per-request allocation sets the GC pauses behind p99.
 */
import { Clock, Effect, Metric } from "effect"
import { type Headers, HttpRouter, type HttpServerRequest, type HttpServerResponse } from "effect/http"
import { type EdgeInfo, EventKind } from "../domain/Envelope.ts"
import type { InvalidRequest } from "../domain/Validation.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { EventQueue, type QueueUnavailable } from "../layers/EventQueue.ts"
import * as Metrics from "../layers/Metrics.ts"
import { capture, type CaptureResult } from "../programs/Capture.ts"
import { type BodyResult, makeBodyReader } from "./Body.ts"
import { makeClientIpResolver, makeTrustedProxies } from "./ClientIp.ts"
import { makeRateLimiter } from "./RateLimiter.ts"
import { accepted, batchAccepted, errorResponse, invalidResponse } from "./Responses.ts"
import { makeWriteKeyCheck } from "./WriteKeys.ts"

/** Every kind has its endpoint at `/track/<kind>` (docs/api.md). */
export const TRACKING_PATHS: ReadonlyArray<readonly [EventKind, `/${string}`]> = EventKind.literals.map((kind) => [kind, `/track/${kind}`])

const utf8 = new TextDecoder("utf-8", { fatal: true })

const header = (headers: Headers.Headers, name: string): string | undefined => {
  const value = headers[name]
  return typeof value === "string" ? value : undefined
}

const queryParam = (url: string, name: string): string | undefined => {
  const q = url.indexOf("?")
  if (q < 0) return undefined
  return new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined
}

/** `application/json`, any `+json` type, or `text/plain` (sendBeacon). */
export const acceptedContentType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  if (contentType === "application/json") return true
  const mime = contentType.split(";")[0]!.trim().toLowerCase()
  return mime === "application/json" || mime === "text/plain" || (mime.startsWith("application/") && mime.endsWith("+json"))
}

const edgeOf = (headers: Headers.Headers, ip: string | undefined): EdgeInfo => {
  const edgeHeaders: { origin?: string; referer?: string; host?: string } = {}
  const origin = header(headers, "origin")
  const referer = header(headers, "referer")
  const host = header(headers, "host")
  if (origin !== undefined) edgeHeaders.origin = origin
  if (referer !== undefined) edgeHeaders.referer = referer
  if (host !== undefined) edgeHeaders.host = host
  const edge: { ip?: string; ua?: string; lang?: string; headers: typeof edgeHeaders } = { headers: edgeHeaders }
  if (ip !== undefined) edge.ip = ip
  const ua = header(headers, "user-agent")
  if (ua !== undefined) edge.ua = ua
  const lang = header(headers, "accept-language")
  if (lang !== undefined) edge.lang = lang
  return edge
}

/** The routes, as a layer on the `HttpRouter` (needs AppConfig and EventQueue). */
export const TrackingRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    const queue = yield* EventQueue
    const resolveIp = makeClientIpResolver(makeTrustedProxies(config.trustedProxies))
    const writeKeys = makeWriteKeyCheck(config.writeKeys)
    const limiter = makeRateLimiter(config.rateLimitPerMinute)
    const readBody = makeBodyReader(config.maxBodyBytes)
    const retryAfter = String(Math.max(1, Math.ceil(config.probeIntervalMs / 1000)))
    if (writeKeys.open) {
      yield* Effect.logWarning(
        "COLLECTOR_WRITE_KEYS is empty: the tracking API is OPEN — anyone who can reach it can send events"
      )
    }

    const rejectedBy = new Map<string, Metric.Counter<number>>()
    const rejectedCounter = (reason: string) => {
      let counter = rejectedBy.get(reason)
      if (counter === undefined) rejectedBy.set(reason, counter = Metrics.rejected(reason))
      return counter
    }

    /** One request's state between its steps. */
    interface Pending {
      readonly kind: EventKind
      readonly headers: Headers.Headers
      readonly ip: string | undefined
      readonly clock: Clock.Clock
      readonly context: Parameters<Metric.Counter<number>["updateUnsafe"]>[1]
      readonly startNanos: bigint
    }

    const finish = (p: Pending, response: HttpServerResponse.HttpServerResponse, rejectedReason?: string) => {
      if (rejectedReason !== undefined) rejectedCounter(rejectedReason).updateUnsafe(1, p.context)
      Metrics.requestDuration.updateUnsafe(Number(p.clock.currentTimeNanosUnsafe() - p.startNanos) / 1e9, p.context)
      return response
    }

    const tooLarge = () => errorResponse(413, "payload_too_large", `body exceeds ${config.maxBodyBytes} bytes`)

    /** The checks that need no body: a rejection, or undefined to go on. */
    const gate = (request: HttpServerRequest.HttpServerRequest, p: Pending): HttpServerResponse.HttpServerResponse | undefined => {
      const decision = limiter.take(p.ip ?? "unknown", p.clock.currentTimeMillisUnsafe())
      if (!decision.allowed) {
        return finish(
          p,
          errorResponse(429, "rate_limited", "too many requests from this client", { "retry-after": String(decision.retryAfterSeconds) }),
          "rate_limited"
        )
      }
      if (!writeKeys.open && !writeKeys.accepts(header(p.headers, "x-write-key") ?? queryParam(request.url, "writeKey"))) {
        return finish(p, errorResponse(401, "unauthorized", "missing or invalid write key"), "unauthorized")
      }
      if (!acceptedContentType(header(p.headers, "content-type"))) {
        return finish(
          p,
          errorResponse(415, "unsupported_media_type", "send application/json, or text/plain holding JSON"),
          "unsupported_media_type"
        )
      }
      const declared = Number(header(p.headers, "content-length"))
      if (Number.isFinite(declared) && declared > config.maxBodyBytes) return finish(p, tooLarge(), "payload_too_large")
      return undefined
    }

    const onCaptureFailure = (p: Pending) => (error: InvalidRequest | QueueUnavailable) =>
      error._tag === "InvalidRequest"
        ? finish(p, invalidResponse(error.issues), "invalid_request")
        // the queue already counted the rejected events by reason
        : finish(p, errorResponse(503, "unavailable", "the event was not accepted; retry later", { "retry-after": retryAfter }))

    const onCaptured = (p: Pending) => (outcome: CaptureResult) =>
      finish(p, outcome._tag === "Single" ? accepted(outcome.eventId) : batchAccepted(outcome.count))

    const withBody = (p: Pending) => (bytes: BodyResult): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
      if (bytes === "too_large") return Effect.succeed(finish(p, tooLarge(), "payload_too_large"))
      if (bytes === "unreadable") {
        return Effect.succeed(finish(p, errorResponse(400, "malformed_body", "the request body could not be read"), "malformed_body"))
      }
      let body: unknown
      try {
        body = JSON.parse(utf8.decode(bytes))
      } catch {
        return Effect.succeed(finish(p, errorResponse(400, "malformed_json", "the body is not valid UTF-8 JSON"), "malformed_json"))
      }
      const edge = edgeOf(p.headers, p.ip)
      return Effect.match(capture(queue, p.kind, body, edge, config.maxBatchEvents, p.clock.currentTimeMillisUnsafe()), {
        onFailure: onCaptureFailure(p),
        onSuccess: onCaptured(p)
      })
    }

    const handler = (kind: EventKind) => (request: HttpServerRequest.HttpServerRequest) =>
      Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        const headers = request.headers
        const remote = request.remoteAddress
        const p: Pending = {
          kind,
          headers,
          ip: resolveIp(remote._tag === "Some" ? remote.value : undefined, header(headers, "x-forwarded-for"), header(headers, "x-real-ip")),
          clock,
          context: fiber.context,
          startNanos: clock.currentTimeNanosUnsafe()
        }
        const rejected = gate(request, p)
        if (rejected !== undefined) return Effect.succeed(rejected)
        return Effect.flatMap(readBody(request), withBody(p))
      })

    // uninterruptible: a request that reached Redis must get its answer; shutdown waits for it
    // instead of cutting the connection (a cut answer makes the client retry and store a twin)
    yield* router.addAll(TRACKING_PATHS.map(([kind, path]) => HttpRouter.route("POST", path, handler(kind), { uninterruptible: true })))
  })
)
