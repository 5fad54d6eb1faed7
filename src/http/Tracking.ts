/**
 * The tracking endpoints: rate limit (429) → write key (401) → content type (415) →
 * body size (413) → JSON (400) → validation (400) → capture → 202, or 503 when
 * neither primary nor spool took the event. Bad input never reaches Redis.
 */
import { ByteSize, Clock, Effect, Layer, Metric, Option } from "effect"
import { HttpIncomingMessage, type HttpServerRequest } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { EdgeInfo, EventKind } from "../domain/Envelope.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import * as Metrics from "../layers/Metrics.ts"
import { capture } from "../programs/Capture.ts"
import { Api } from "./Api.ts"
import { clientIp, makeTrustedProxies } from "./ClientIp.ts"
import { makeRateLimiter } from "./RateLimiter.ts"
import { errorResponse, invalidResponse, json } from "./Responses.ts"
import { makeWriteKeyCheck } from "./WriteKeys.ts"

const utf8 = new TextDecoder("utf-8", { fatal: true })

const header = (request: HttpServerRequest.HttpServerRequest, name: string): string | undefined => {
  const value = request.headers[name]
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
  const mime = contentType.split(";")[0]!.trim().toLowerCase()
  return mime === "application/json" || mime === "text/plain" || (mime.startsWith("application/") && mime.endsWith("+json"))
}

const edgeOf = (request: HttpServerRequest.HttpServerRequest, ip: string | undefined): EdgeInfo => {
  const headers: { origin?: string; referer?: string; host?: string } = {}
  const origin = header(request, "origin")
  const referer = header(request, "referer")
  const host = header(request, "host")
  if (origin !== undefined) headers.origin = origin
  if (referer !== undefined) headers.referer = referer
  if (host !== undefined) headers.host = host
  const edge: { ip?: string; ua?: string; lang?: string; headers: typeof headers } = { headers }
  if (ip !== undefined) edge.ip = ip
  const ua = header(request, "user-agent")
  if (ua !== undefined) edge.ua = ua
  const lang = header(request, "accept-language")
  if (lang !== undefined) edge.lang = lang
  return edge
}

/**
 * A request that reached Redis must get its answer: shutdown waits for it instead of
 * cutting the connection (a cut answer makes the client retry and store a twin).
 */
const uninterruptible = { uninterruptible: true } as const

export const TrackingHandlers = HttpApiBuilder.group(
  Api,
  "tracking",
  Effect.fn(function*(handlers) {
    const config = yield* AppConfig
    const trusted = makeTrustedProxies(config.trustedProxies)
    const writeKeys = makeWriteKeyCheck(config.writeKeys)
    const limiter = makeRateLimiter(config.rateLimitPerMinute)
    const maxBody = ByteSize.bytes(config.maxBodyBytes)
    const retryAfter = String(Math.max(1, Math.ceil(config.probeIntervalMs / 1000)))
    if (writeKeys.open) {
      yield* Effect.logWarning(
        "COLLECTOR_WRITE_KEYS is empty: the tracking API is OPEN — anyone who can reach it can send events"
      )
    }

    const rejectedBy = new Map<string, Metric.Counter<number>>()
    const reject = (reason: string, response: ReturnType<typeof json>) => {
      let counter = rejectedBy.get(reason)
      if (counter === undefined) rejectedBy.set(reason, counter = Metrics.rejected(reason))
      return Effect.as(Metric.update(counter, 1), response)
    }

    const timed = <E, R>(handler: Effect.Effect<ReturnType<typeof json>, E, R>) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeNanos
        const response = yield* handler
        const end = yield* Clock.currentTimeNanos
        yield* Metric.update(Metrics.requestDuration, Number(end - start) / 1e9)
        return response
      })

    const track = (kind: EventKind) => (raw: { readonly request: HttpServerRequest.HttpServerRequest }) => timed(handle(kind, raw))

    const handle = (kind: EventKind, { request }: { readonly request: HttpServerRequest.HttpServerRequest }) =>
      Effect.gen(function*() {
        const ip = clientIp(
          Option.getOrUndefined(request.remoteAddress),
          header(request, "x-forwarded-for"),
          header(request, "x-real-ip"),
          trusted
        )
        const decision = limiter.take(ip ?? "unknown", yield* Clock.currentTimeMillis)
        if (!decision.allowed) {
          return yield* reject("rate_limited", errorResponse(429, "rate_limited", "too many requests from this client", {
            "retry-after": String(decision.retryAfterSeconds)
          }))
        }
        if (!writeKeys.open && !writeKeys.accepts(header(request, "x-write-key") ?? queryParam(request.url, "writeKey"))) {
          return yield* reject("unauthorized", errorResponse(401, "unauthorized", "missing or invalid write key"))
        }
        if (!acceptedContentType(header(request, "content-type"))) {
          return yield* reject("unsupported_media_type", errorResponse(
            415,
            "unsupported_media_type",
            "send application/json, or text/plain holding JSON"
          ))
        }
        const declared = Number(header(request, "content-length"))
        if (Number.isFinite(declared) && declared > config.maxBodyBytes) {
          return yield* reject("payload_too_large", errorResponse(413, "payload_too_large", `body exceeds ${config.maxBodyBytes} bytes`))
        }
        const bytes = yield* request.arrayBuffer.pipe(
          Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
          Effect.result
        )
        if (bytes._tag === "Failure") {
          const cause = bytes.failure.reason
          return yield* cause._tag === "RequestParseError" && cause.reason === "BodyTooLarge"
            ? reject("payload_too_large", errorResponse(413, "payload_too_large", `body exceeds ${config.maxBodyBytes} bytes`))
            : reject("malformed_body", errorResponse(400, "malformed_body", "the request body could not be read"))
        }
        let body: unknown
        try {
          body = JSON.parse(utf8.decode(bytes.success))
        } catch {
          return yield* reject("malformed_json", errorResponse(400, "malformed_json", "the body is not valid UTF-8 JSON"))
        }
        const result = yield* capture(kind, body, edgeOf(request, ip), config.maxBatchEvents).pipe(Effect.result)
        if (result._tag === "Failure") {
          const error = result.failure
          if (error._tag === "InvalidRequest") return yield* reject("invalid_request", invalidResponse(error.issues))
          // the queue already counted the rejected events by reason
          return errorResponse(503, "unavailable", "the event was not accepted; retry later", { "retry-after": retryAfter })
        }
        const outcome = result.success
        return outcome._tag === "Single"
          ? json(202, { success: true, eventId: outcome.eventId })
          : json(202, { success: true, count: outcome.count })
      })

    return handlers
      .handleRaw("view", track("view"), uninterruptible)
      .handleRaw("engagement", track("engagement"), uninterruptible)
      .handleRaw("interaction", track("interaction"), uninterruptible)
      .handleRaw("event", track("event"), uninterruptible)
      .handleRaw("batch", track("batch"), uninterruptible)
      .handleRaw("conversion", track("conversion"), uninterruptible)
      .handleRaw("funnel", track("funnel"), uninterruptible)
      .handleRaw("registrationFunnel", track("registration-funnel"), uninterruptible)
  })
)

export type TrackingHandlersLayer = Layer.Success<typeof TrackingHandlers>
