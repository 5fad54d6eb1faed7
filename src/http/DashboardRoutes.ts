/**
 * The web dashboard (docs/dashboard.md): static files from `dashboard/` (plain ES modules, no
 * build step) and uPlot from node_modules, read and compressed once at start, served from
 * memory. It reads its data only through the query API on the same origin.
 *
 * - `GET /`, `/sites`, `/sites/<hostname>[/<page>]`: the page shell (index.html); the script
 *   draws the page the URL names.
 * - `GET /dashboard/<file>`: its scripts and styles; `/dashboard/vendor/…`: uPlot.
 *
 * Every answer carries a Content-Security-Policy without inline scripts or styles and with
 * connections to this origin only (everything the dashboard shows came from the internet: page
 * URLs, referrers, event names — it renders them as text). Caching: `no-cache` with a strong
 * ETag per encoding (a 304 after a revalidation), so a new release is picked up at once.
 */
import { readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { Effect } from "effect"
import { type Headers, HttpRouter, HttpServerResponse } from "effect/http"
import { AppConfig } from "../layers/AppConfig.ts"
import { chooseEncoding, etagMatches, makeTrackerAsset, type TrackerAsset } from "./TrackerRoute.ts"

export const DASHBOARD_DIR = new URL("../../dashboard/", import.meta.url)

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'"
].join("; ")

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-cache"
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  html: "text/html; charset=utf-8"
}

interface StaticFile {
  readonly asset: TrackerAsset
  readonly contentType: string
}

const file = (source: Uint8Array, name: string): StaticFile => ({
  asset: makeTrackerAsset(source),
  contentType: CONTENT_TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream"
})

const header = (headers: Headers.Headers, name: string) => {
  const value = headers[name]
  return typeof value === "string" ? value : undefined
}

/** The answer to one GET of `file`: brotli/gzip when accepted, 304 on a matching ETag. */
export const serveStatic = (file: StaticFile, headers: Headers.Headers): HttpServerResponse.HttpServerResponse => {
  const encoding = chooseEncoding(header(headers, "accept-encoding"))
  const { body, etag } = file.asset[encoding]
  const common: Record<string, string> = { ...SECURITY_HEADERS, etag, vary: "Accept-Encoding" }
  if (etagMatches(header(headers, "if-none-match"), etag)) return HttpServerResponse.empty({ status: 304, headers: common })
  if (encoding !== "identity") common["content-encoding"] = encoding
  return HttpServerResponse.uint8Array(body, { contentType: file.contentType, headers: common })
}

/** The dashboard's files by URL path (index.html with the tracker's path filled in). */
export const dashboardFiles = (trackerPath: string): ReadonlyMap<string, StaticFile> => {
  const files = new Map<string, StaticFile>()
  for (const name of readdirSync(DASHBOARD_DIR)) {
    if (!/\.(js|css)$/.test(name)) continue
    files.set(`/dashboard/${name}`, file(readFileSync(new URL(name, DASHBOARD_DIR)), name))
  }
  const uplot = createRequire(import.meta.url).resolve("uplot/dist/uPlot.iife.min.js").replace(/uPlot\.iife\.min\.js$/, "")
  for (const name of ["uPlot.iife.min.js", "uPlot.min.css"]) {
    files.set(`/dashboard/vendor/${name}`, file(readFileSync(uplot + name), name))
  }
  const html = readFileSync(new URL("index.html", DASHBOARD_DIR), "utf8").replace("{{TRACKER_PATH}}", escapeAttribute(trackerPath))
  files.set("/", file(new TextEncoder().encode(html), "index.html"))
  return files
}

const escapeAttribute = (s: string) => s.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`)

/** The page shell's paths: the app draws the page the URL names. */
const SHELL_PATHS = ["/", "/sites/*"] as const

/** The dashboard's routes (needs AppConfig). A missing file stops the start. */
export const DashboardRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const { trackerPath } = yield* AppConfig
    const files = yield* Effect.try({
      try: () => dashboardFiles(trackerPath),
      catch: (cause) => new Error("the dashboard's files (dashboard/, node_modules/uplot) cannot be read", { cause })
    }).pipe(Effect.orDie)
    const shell = files.get("/")!
    for (const path of SHELL_PATHS) {
      yield* router.add("GET", path, (request) => Effect.succeed(serveStatic(shell, request.headers)))
    }
    for (const [path, asset] of files) {
      if (path === "/") continue
      yield* router.add("GET", path as `/${string}`, (request) => Effect.succeed(serveStatic(asset, request.headers)))
    }
  })
)
