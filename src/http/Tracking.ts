/**
 * The tracking endpoints: rate limit (429) → key (401) and origin (403) → content type (415) →
 * body size (413) → JSON (400) → validation (400) → capture → 202, or 503 when
 * neither primary nor spool took the event and neither can have stored it (a write in doubt is
 * awaited: EventQueue.ts, docs/operations.md "What 503 means"). Bad input never reaches Redis.
 *
 * Keys and origins (issue 13, src/domain/Site.ts `admit`): with sites defined, a request needs
 * a site's key — `X-Write-Key`, `Authorization: Bearer …` or `?writeKey=` (beacons) — and,
 * with a write key, an `Origin` (else `Referer`) of that site. With the site's server key the
 * origin is not checked and, for that request only, the client IP is the first address of
 * `X-Forwarded-For` as the caller sends it (server-side tracking on behalf of a visitor; the
 * User-Agent is always the header as sent). The site's id travels in the envelope (`edge.site`).
 * CORS (Cors.ts) is answered on these paths only; other methods get 405 with `Allow`.
 *
 * They are plain router routes; the `TrackingApi` group in Api.ts documents them
 * (/openapi.json, /docs). This is the collector's hot path (issue 2), so a request costs
 * three Effect steps — read the body, store the events, answer — and everything else
 * (header checks, JSON, validation, envelopes, metrics) is synchronous code that
 * allocates as little as it can: per-request allocation sets the GC pauses behind p99.
 */
import { Clock, Effect, Metric } from "effect"
import { type Headers, HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { type EdgeInfo, EventKind } from "../domain/Envelope.ts"
import { admit, type Rejected } from "../domain/Site.ts"
import type { InvalidRequest } from "../domain/Validation.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { EventQueue, type QueueUnavailable } from "../layers/EventQueue.ts"
import * as Metrics from "../layers/Metrics.ts"
import { SiteRegistry } from "../layers/SiteRegistry.ts"
import { capture, type CaptureResult } from "../programs/Capture.ts"
import { type BodyResult, makeBodyReader } from "./Body.ts"
import { firstForwardedIp, makeClientIpResolver, makeTrustedProxies } from "./ClientIp.ts"
import { ALLOWED_METHODS, makeCors } from "./Cors.ts"
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

const bearer = (authorization: string | undefined): string | undefined =>
  authorization !== undefined && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === "bearer "
    ? authorization.slice(7).trim()
    : undefined

/** The key of a request: `X-Write-Key`, else `Authorization: Bearer …`, else `?writeKey=`. */
const keyOf = (headers: Headers.Headers, url: string): string | undefined =>
  header(headers, "x-write-key") ?? bearer(header(headers, "authorization")) ?? queryParam(url, "writeKey")

/** `application/json`, any `+json` type, or `text/plain` (sendBeacon). */
export const acceptedContentType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  if (contentType === "application/json") return true
  const mime = contentType.split(";")[0]!.trim().toLowerCase()
  return mime === "application/json" || mime === "text/plain" || (mime.startsWith("application/") && mime.endsWith("+json"))
}

const edgeOf = (headers: Headers.Headers, ip: string | undefined, site: number | undefined): EdgeInfo => {
  const edgeHeaders: { origin?: string; referer?: string; host?: string } = {}
  const origin = header(headers, "origin")
  const referer = header(headers, "referer")
  const host = header(headers, "host")
  if (origin !== undefined) edgeHeaders.origin = origin
  if (referer !== undefined) edgeHeaders.referer = referer
  if (host !== undefined) edgeHeaders.host = host
  const edge: { ip?: string; ua?: string; lang?: string; headers: typeof edgeHeaders; site?: number } = { headers: edgeHeaders }
  if (ip !== undefined) edge.ip = ip
  const ua = header(headers, "user-agent")
  if (ua !== undefined) edge.ua = ua
  const lang = header(headers, "accept-language")
  if (lang !== undefined) edge.lang = lang
  if (site !== undefined) edge.site = site
  return edge
}

/** The routes, as a layer on the `HttpRouter` (needs AppConfig, EventQueue and SiteRegistry). */
export const TrackingRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    const queue = yield* EventQueue
    const registry = yield* SiteRegistry
    const resolveIp = makeClientIpResolver(makeTrustedProxies(config.trustedProxies))
    // the legacy global keys; the registry logs whether the API is open
    const writeKeys = makeWriteKeyCheck(config.writeKeys)
    const cors = makeCors(config.corsOrigins)
    const limiter = makeRateLimiter(config.rateLimitPerMinute)
    const readBody = makeBodyReader(config.maxBodyBytes)
    const retryAfter = String(Math.max(1, Math.ceil(config.probeIntervalMs / 1000)))

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
      /** the site the request was admitted for (edge.site) */
      readonly site: number | undefined
      /** the CORS headers of its answer */
      readonly cors: Readonly<Record<string, string>>
      readonly clock: Clock.Clock
      readonly context: Parameters<Metric.Counter<number>["updateUnsafe"]>[1]
      readonly startNanos: bigint
    }

    const record = (p: Pending, rejectedReason?: string) => {
      if (rejectedReason !== undefined) rejectedCounter(rejectedReason).updateUnsafe(1, p.context)
      Metrics.requestDuration.updateUnsafe(Number(p.clock.currentTimeNanosUnsafe() - p.startNanos) / 1e9, p.context)
    }

    /** Records the request and adds the CORS headers to its answer. */
    const finish = (p: Pending, response: HttpServerResponse.HttpServerResponse, rejectedReason?: string) => {
      record(p, rejectedReason)
      return HttpServerResponse.setHeaders(response, p.cors)
    }

    const tooLarge = () => errorResponse(413, "payload_too_large", `body exceeds ${config.maxBodyBytes} bytes`)

    /** The checks that need no body: a rejection, or undefined to go on. */
    const gate = (p: Pending, refused: Rejected | undefined): HttpServerResponse.HttpServerResponse | undefined => {
      const decision = limiter.take(p.ip ?? "unknown", p.clock.currentTimeMillisUnsafe())
      if (!decision.allowed) {
        return finish(
          p,
          errorResponse(429, "rate_limited", "too many requests from this client", { "retry-after": String(decision.retryAfterSeconds) }),
          "rate_limited"
        )
      }
      if (refused !== undefined) return finish(p, errorResponse(refused.status, refused.error, refused.message), refused.error)
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

    // the common answer: built with its CORS headers at once (adding them copies the response)
    const onCaptured = (p: Pending) => (outcome: CaptureResult) => {
      record(p)
      return outcome._tag === "Single" ? accepted(outcome.eventId, p.cors) : batchAccepted(outcome.count, p.cors)
    }

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
      const edge = edgeOf(p.headers, p.ip, p.site)
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
        const index = registry.current()
        const origin = header(headers, "origin")
        const forwardedFor = header(headers, "x-forwarded-for")
        const admission = admit(index, writeKeys, {
          key: keyOf(headers, request.url),
          origin,
          referer: header(headers, "referer"),
          nowMs: clock.currentTimeMillisUnsafe()
        })
        // a server-key caller forwards its visitor's address (for this request only)
        const forwarded = admission.ok && admission.server ? firstForwardedIp(forwardedFor) : undefined
        const p: Pending = {
          kind,
          headers,
          ip: forwarded ?? resolveIp(remote._tag === "Some" ? remote.value : undefined, forwardedFor, header(headers, "x-real-ip")),
          site: admission.ok ? admission.site : undefined,
          cors: cors.headers(index, origin),
          clock,
          context: fiber.context,
          startNanos: clock.currentTimeNanosUnsafe()
        }
        const rejected = gate(p, admission.ok ? undefined : admission)
        if (rejected !== undefined) return Effect.succeed(rejected)
        return Effect.flatMap(readBody(request), withBody(p))
      })

    const preflight = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.sync(() => cors.preflight(registry.current(), header(request.headers, "origin")))
    const methodNotAllowed = Effect.sync(() =>
      errorResponse(405, "method_not_allowed", "tracking endpoints take POST (and OPTIONS for CORS preflights)", { allow: ALLOWED_METHODS })
    )

    // uninterruptible: a request that reached Redis must get its answer; shutdown waits for it
    // instead of cutting the connection (a cut answer makes the client retry and store a twin)
    yield* router.addAll(TRACKING_PATHS.flatMap(([kind, path]) => [
      HttpRouter.route("POST", path, handler(kind), { uninterruptible: true }),
      HttpRouter.route("OPTIONS", path, preflight),
      ...(["GET", "PUT", "PATCH", "DELETE"] as const).map((method) => HttpRouter.route(method, path, methodNotAllowed))
    ]))
  })
)
