/**
 * The Spoolway tracker: `<script defer data-key="…" src="https://stats.example.com/sw.js">`.
 *
 * Built by tracker/build.ts into the variants of tracker/dist (docs/tracker.md). The feature
 * constants below are replaced at build time and every feature's state and functions sit at
 * module level, so esbuild drops what a variant does not use. The code is written for size
 * (every byte is gzipped into every page view of every site): globals instead of `window.`,
 * no classes, one `send`.
 *
 * Rules it keeps: nothing is stored on the device (no cookie, no storage, no id — the
 * collector assigns visits server-side), nothing it does throws into the page, and a page that
 * opted out sends nothing (the API still exists there and does nothing).
 */
import { DOWNLOADS, endpoint, isDownload, isLocal, MAX_URL, pageKey, pageUrl, type Place, utm } from "./url.ts"

/** Engagement events (engaged time, scroll depth) on pagehide / visibilitychange / navigation. */
declare const ENGAGEMENT: boolean
/** `data-outbound`: clicks on links to other hosts. */
declare const OUTBOUND: boolean
/** `data-downloads`: clicks on links to files. */
declare const DOWNLOAD: boolean
/** `window.spoolway`: track, conversion, funnel. */
declare const API: boolean

type Props = Record<string, unknown>
interface Options {
  readonly props?: Props
  readonly revenue?: { readonly amount: number; readonly currency?: string }
}
type Method = "track" | "conversion" | "funnel"

/** `f`, swallowing anything it throws: the page never sees the tracker fail. */
const safe = <A extends Array<any>>(f: (...args: A) => unknown) => (...args: A) => {
  try {
    f(...args)
  } catch {}
}

const d = document
const nav = navigator
const loc = location as Place & Location
/** The script's `data-*` attributes (`data-allow-automation` is `allowAutomation`). */
let data: DOMStringMap
let url: (kind: string) => string
let ignored: unknown
/** `data-hash`: `#/routes` are pages (hash routing). */
let hash: boolean | undefined
/** The page of the last view: every event is sent with it. */
let page: string | undefined
/** What makes a view a new page (pageKey). */
let key: string | undefined

/** `text/plain` JSON (no preflight, no cookie), kept alive past the page's end. */
const send = (kind: string, body: object) => {
  if (ignored) return
  const json = JSON.stringify({ pageUrl: page, ...body })
  try {
    // `safe` doubles as a handler that does nothing: no unhandled rejection on a network error
    fetch(url(kind), { method: "POST", keepalive: true, body: json }).catch(safe)
  } catch {
    nav.sendBeacon(url(kind), json)
  }
}
const event = (eventType: string, metadata?: Props) => send("event", { eventType, metadata })

// engagement: visible time since the last engagement event of this page, and how far down
// the page the viewport's bottom edge has been
let engaged = 0
let since = 0
let maxPx = 0
let sentPx = 0
const now = () => performance.now()
const bottom = () => scrollY + innerHeight
/** Adds the visible time up to now; the clock runs only while the page is visible. */
const tick = () => {
  if (since) engaged += now() - since
  since = d.visibilityState == "visible" ? now() : 0
}
/** The engagement event of the current page, when there is something new to say. */
const flush = () => {
  tick()
  if (page && (engaged >= 3000 || maxPx > sentPx)) {
    event("engagement", {
      engagedMs: Math.round(engaged),
      scrollDepth: Math.min(100, Math.round(maxPx * 100 / d.documentElement.scrollHeight))
    })
    engaged = 0
    sentPx = maxPx
  }
}

const view = safe(() => {
  const next = pageKey(loc, hash)
  if (next == key) return
  if (ENGAGEMENT) flush()
  key = next
  send("view", {
    // only the document's first view has a referrer: later views are navigations inside the site
    referrer: page ? undefined : d.referrer.slice(0, MAX_URL) || undefined,
    pageUrl: page = pageUrl(loc, hash),
    attribution: utm(loc.search),
    clientDevice: {
      screenWidth: screen.width,
      screenHeight: screen.height,
      viewportWidth: innerWidth,
      viewportHeight: innerHeight,
      language: nav.language,
      touchPoints: nav.maxTouchPoints
    }
  })
  if (ENGAGEMENT) {
    engaged = since = 0
    tick()
    sentPx = maxPx = bottom()
  }
})

const click = (e: MouseEvent) => {
  const link = (e.target as Element).closest("a")
  if (!link || (e.type == "auxclick" && e.button != 1) || !/^https?:/.test(link.protocol)) return
  const files = data.downloads
  if (DOWNLOAD && files != null && isDownload(link.pathname, files || DOWNLOADS)) event("download", { url: link.href })
  else if (OUTBOUND && data.outbound != null && link.host != loc.host) event("outbound", { url: link.href })
}

const conversion = (conversionType: string, o?: Options) =>
  send("conversion", { conversionType, value: o?.revenue?.amount, currency: o?.revenue?.currency, metadata: o?.props })
const api: Record<Method, (...args: Array<any>) => void> = {
  /** A custom event; with `revenue` it is a conversion (the API's only place for money). */
  track: /* @__PURE__ */ safe((name: string, o?: Options) => o?.revenue ? conversion(name, o) : event(name, o?.props)),
  conversion: /* @__PURE__ */ safe(conversion),
  funnel: /* @__PURE__ */ safe((funnelId: string, stepId: string, stepOrder: number, o?: Options) =>
    send("funnel", { funnelId, stepId, stepOrder, metadata: o?.props })
  )
}
/** Calls made before the script ran, queued by the stub in docs/tracker.md: [method, arguments]. */
let queued: Array<[Method, ArrayLike<unknown>]> | undefined

/** The first view, then the queued calls, so that they carry its page. */
const start = () => {
  view()
  for (const [method, args] of queued || []) api[method]?.(...Array.from(args))
}

try {
  if (API) {
    const global = window as { spoolway?: { q?: typeof queued } | typeof api }
    queued = (global.spoolway as { q?: typeof queued } | undefined)?.q
    global.spoolway = api
  }
  const script = d.currentScript as HTMLScriptElement
  data = script.dataset
  url = endpoint(script.src || loc.href, data.api, data.key)
  hash = data.hash != null
  try {
    // read only: a site owner sets it in the console to leave out their own visits
    ignored = localStorage.spoolway_ignore == "true"
  } catch {}
  ignored ||= (data.local == null && isLocal(loc.hostname, loc.protocol)) ||
    (data.allowAutomation == null && nav.webdriver) ||
    (data.respectDnt != null && (nav.doNotTrack == "1" || (nav as { globalPrivacyControl?: boolean }).globalPrivacyControl))

  // SPA navigation: history.pushState / replaceState, back and forward
  const methods = history as unknown as Record<string, (...args: Array<unknown>) => unknown>
  for (const method of ["pushState", "replaceState"]) {
    const original = methods[method]!
    // both return undefined: nothing to pass on
    methods[method] = function(this: unknown, ...args: Array<unknown>) {
      original.apply(this, args)
      view()
    }
  }
  addEventListener("popstate", view)
  if (hash) addEventListener("hashchange", view)
  // a page restored from the back/forward cache is a new view of it
  addEventListener("pageshow", (e) => {
    if (e.persisted) {
      key = undefined
      // the time spent in the cache was not engaged (pagehide may have left the clock running)
      if (ENGAGEMENT) since = 0
      view()
    }
  })
  if (ENGAGEMENT) {
    addEventListener("scroll", () => maxPx = Math.max(maxPx, bottom()), { passive: true })
    d.addEventListener("visibilitychange", safe(() => d.visibilityState == "hidden" ? flush() : tick()))
    addEventListener("pagehide", safe(flush))
  }
  if (OUTBOUND || DOWNLOAD) {
    d.addEventListener("click", safe(click))
    d.addEventListener("auxclick", safe(click))
  }
  // a prerendered page counts when the visitor actually opens it
  ;(d as { prerendering?: boolean }).prerendering ? d.addEventListener("prerenderingchange", API ? start : view) : (API ? start : view)()
} catch {}
