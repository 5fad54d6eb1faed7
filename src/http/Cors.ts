/**
 * CORS for the tracking endpoints (issue 13). CORS only decides what a browser lets a page
 * READ; what the collector STORES is decided by the key and origin check (src/domain/Site.ts
 * `admit`), which also covers the requests a browser sends without a preflight (sendBeacon
 * text/plain, keepalive fetch, forms).
 *
 * - An allowed origin gets `Access-Control-Allow-Origin: <that origin>` (never `*`, never
 *   another origin), `Access-Control-Allow-Credentials: true` (a `sendBeacon` with a JSON
 *   Blob is preflighted in credentials mode and dropped silently without it; the collector
 *   sets no cookies and reads none, so credentials grant nothing) and
 *   `Access-Control-Expose-Headers: Retry-After` (so a page can honour a 429/503).
 * - Any other origin gets no CORS header at all. Every answer says `Vary: Origin`.
 * - Allowed: with sites, an origin of any site (the request's own site is checked by `admit`);
 *   without sites, CORS_ORIGINS (`*` = any origin).
 * - Preflights are answered on the tracking paths only (others are 404, like any unknown path).
 */
import { HttpServerResponse } from "effect/http"
import { memoizeString } from "../domain/Memo.ts"
import { normalizeOrigin, requestOrigin, type SiteIndex } from "../domain/Site.ts"
import { errorResponse } from "./Responses.ts"

export const ALLOWED_METHODS = "POST, OPTIONS"
const ALLOWED_HEADERS = "Content-Type, X-Write-Key"

const VARY_ONLY: Readonly<Record<string, string>> = { vary: "Origin" }

export interface CorsPolicy {
  /** `origin` (the request's Origin header) may read the answers */
  readonly allowed: (index: SiteIndex, origin: string | undefined) => boolean
  /** the CORS headers of an answer to a request with this Origin header */
  readonly headers: (index: SiteIndex, origin: string | undefined) => Readonly<Record<string, string>>
  /** the answer to an OPTIONS request on a tracking path */
  readonly preflight: (index: SiteIndex, origin: string | undefined) => HttpServerResponse.HttpServerResponse
}

export const makeCors = (corsOrigins: ReadonlyArray<string>): CorsPolicy => {
  const anyOrigin = corsOrigins.includes("*")
  const listed = new Set(corsOrigins.flatMap((o) => normalizeOrigin(o) ?? []))

  const allowed = (index: SiteIndex, origin: string | undefined): boolean => {
    if (origin === undefined) return false
    const parsed = requestOrigin(origin, undefined)
    if (parsed === null) return false
    if (!index.open) return index.anySiteAllows(parsed)
    return anyOrigin || listed.has(parsed.origin)
  }

  // one immutable header set per origin (origins repeat: a site has a handful)
  const allowedHeaders = memoizeString((origin: string): Readonly<Record<string, string>> => ({
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    "access-control-expose-headers": "Retry-After",
    vary: "Origin"
  }), 1000)

  const preflightHeaders = memoizeString((origin: string): Readonly<Record<string, string>> => ({
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    "access-control-allow-methods": ALLOWED_METHODS,
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": "86400",
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
  }), 1000)

  return {
    allowed,
    headers: (index, origin) => (origin !== undefined && allowed(index, origin) ? allowedHeaders(origin) : VARY_ONLY),
    preflight: (index, origin) => {
      // not a CORS preflight (no Origin): say what the path takes
      if (origin === undefined) return HttpServerResponse.empty({ status: 204, headers: { allow: ALLOWED_METHODS } })
      if (!allowed(index, origin)) {
        return errorResponse(403, "origin_not_allowed", "this origin may not send events here", { vary: "Origin" })
      }
      return HttpServerResponse.empty({ status: 204, headers: preflightHeaders(origin) })
    }
  }
}
