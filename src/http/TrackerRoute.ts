/**
 * GET TRACKER_PATH (default `/sw.js`): the tracker script, and its full variant at the same
 * path with `.full` before the `.js` (`/sw.full.js`). The files are the committed build in
 * tracker/dist (docs/tracker.md): read and compressed once at start, served from memory.
 *
 * Caching: `Cache-Control: public, max-age=86400, stale-while-revalidate=604800` and a strong
 * ETag per encoding; `If-None-Match` gets a 304. Not a year and `immutable`: the URL is the one
 * pasted into every site's pages and carries no version, so a new release must reach visitors
 * by itself — within a day, and revalidation costs a 304 without a body.
 */
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { brotliCompressSync, constants, gzipSync } from "node:zlib"
import { Effect } from "effect"
import { type Headers, HttpRouter, HttpServerResponse } from "effect/http"
import { AppConfig } from "../layers/AppConfig.ts"

export const TRACKER_DIST = new URL("../../tracker/dist/", import.meta.url)

/** The variants the collector serves: dist file and where, relative to TRACKER_PATH. */
export const trackerFiles = (trackerPath: string): ReadonlyArray<readonly [path: string, file: string]> => [
  [trackerPath, "core.js"],
  [trackerPath.replace(/(\.js)?$/, ".full$1"), "full.js"]
]

export const CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"

type Encoding = "br" | "gzip" | "identity"

interface Representation {
  readonly body: Uint8Array
  readonly etag: string
}

export type TrackerAsset = Readonly<Record<Encoding, Representation>>

/** The three encodings of one script, each with its own strong ETag (RFC 9110 §8.8.3). */
export const makeTrackerAsset = (source: Uint8Array): TrackerAsset => {
  const hash = createHash("sha256").update(source).digest("base64url").slice(0, 22)
  return {
    identity: { body: source, etag: `"${hash}"` },
    gzip: { body: gzipSync(source, { level: 9 }), etag: `"${hash}-gz"` },
    br: {
      body: brotliCompressSync(source, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: source.length } }),
      etag: `"${hash}-br"`
    }
  }
}

/** The q-value `accept-encoding` gives `coding` (RFC 9110 §12.5.3), 0 when not listed. */
const qValue = (acceptEncoding: string, coding: string): number => {
  let star = 0
  for (const part of acceptEncoding.split(",")) {
    const [name, ...params] = part.split(";")
    const token = name!.trim().toLowerCase()
    if (token !== coding && token !== "*") continue
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith("q="))
    const value = q === undefined ? 1 : Number(q.slice(2))
    const weight = Number.isFinite(value) ? value : 0
    if (token === coding) return weight
    star = weight
  }
  return star
}

/** The encoding to answer with: brotli, else gzip, when the client accepts it; else none. */
export const chooseEncoding = (acceptEncoding: string | undefined): Encoding => {
  if (acceptEncoding === undefined) return "identity"
  if (qValue(acceptEncoding, "br") > 0) return "br"
  if (qValue(acceptEncoding, "gzip") > 0) return "gzip"
  return "identity"
}

/** Whether `If-None-Match` names `etag` (weak comparison, as §13.1.2 asks; `*` matches). */
export const etagMatches = (ifNoneMatch: string | undefined, etag: string): boolean => {
  if (ifNoneMatch === undefined) return false
  return ifNoneMatch.split(",").some((tag) => {
    const t = tag.trim()
    return t === "*" || (t.startsWith("W/") ? t.slice(2) : t) === etag
  })
}

const header = (headers: Headers.Headers, name: string) => {
  const value = headers[name]
  return typeof value === "string" ? value : undefined
}

/** The answer to one GET/HEAD of `asset`. */
export const serveTracker = (asset: TrackerAsset, headers: Headers.Headers): HttpServerResponse.HttpServerResponse => {
  const encoding = chooseEncoding(header(headers, "accept-encoding"))
  const { body, etag } = asset[encoding]
  const common: Record<string, string> = {
    etag,
    "cache-control": CACHE_CONTROL,
    vary: "Accept-Encoding",
    "x-content-type-options": "nosniff",
    // sites that isolate themselves (Cross-Origin-Embedder-Policy) may still load it
    "cross-origin-resource-policy": "cross-origin"
  }
  if (etagMatches(header(headers, "if-none-match"), etag)) return HttpServerResponse.empty({ status: 304, headers: common })
  if (encoding !== "identity") common["content-encoding"] = encoding
  return HttpServerResponse.uint8Array(body, { contentType: "text/javascript; charset=utf-8", headers: common })
}

/** The tracker routes (needs AppConfig); a missing build or a bad TRACKER_PATH stops the start. */
export const TrackerRoute = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const { trackerPath } = yield* AppConfig
    if (!trackerPath.startsWith("/") || trackerPath.startsWith("/track/")) {
      return yield* Effect.die(new Error(`TRACKER_PATH must be a path starting with "/" outside /track/ (got "${trackerPath}")`))
    }
    for (const [path, file] of trackerFiles(trackerPath)) {
      const asset = yield* Effect.try({
        try: () => makeTrackerAsset(readFileSync(new URL(file, TRACKER_DIST))),
        catch: (cause) => new Error(`the tracker build tracker/dist/${file} cannot be read (npm run build:tracker)`, { cause })
      }).pipe(Effect.orDie)
      yield* router.add("GET", path as `/${string}`, (request) => Effect.succeed(serveTracker(asset, request.headers)))
    }
  })
)
