/**
 * The tracker in a real browser (headless Chromium, playwright-core): fixture pages on their own
 * origin (`site.test` → 127.0.0.2) load the script from the real collector (`stats.test` →
 * 127.0.0.1) and post, through `data-api`, to a recording server (`api.test` → 127.0.0.3) — so
 * the test sees exactly what a page sent: every request, its URL, headers and body.
 *
 * What the page does → what must arrive: page views (first one with referrer and UTM), SPA
 * navigation (pushState / replaceState / back), hash routing, a bfcache restore, engagement
 * (time and scroll depth, only when ≥ 3 s or the page was scrolled further), outbound link and
 * download clicks, the JS API; every event exactly once, no sessionId, no preflight, no cookie,
 * nothing stored on the device, no console error. Opted-out pages send nothing.
 *
 * Headless Chromium keeps every page "visible" (other tabs, minimised windows: still visible),
 * so one test drives `visibilitychange` through an overridden `document.visibilityState`; the
 * others hide pages the real way (navigation, close, SPA route change).
 *
 * The bodies decode as the API's requests without a sessionId: the writer assigns the session
 * (docs/visits.md).
 */
import { readFileSync } from "node:fs"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Schema } from "effect"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { ConversionRequest, EventRequest, FunnelRequest, ViewRequest } from "../src/domain/Requests.ts"
import { CACHE_CONTROL } from "../src/http/TrackerRoute.ts"
import { browserAvailable, fixturePages, launchChromium } from "./support/browser.ts"
import { type RunningCollector, startCollector } from "./support/collector.ts"

// the callbacks given to page.evaluate / addInitScript run in the page: its globals, loosely typed
// (this project's tsconfig has no DOM library)
declare const window: any, document: any, history: any, location: any, screen: any, navigator: any, Navigator: any
declare const localStorage: any, sessionStorage: any, indexedDB: any, innerWidth: number, innerHeight: number
declare const scrollTo: (x: number, y: number) => void

const WRITE_KEY = "pk_browser_test"
const available = browserAvailable("tracker browser tests")

interface Hit {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: IncomingHttpHeaders
  readonly raw: string
  readonly body: Record<string, any>
  /** Date.now() when the request arrived */
  readonly at: number
}

const hits: Array<Hit> = []
/** How many of `hits` a test has taken with `next` */
let seen = 0
const pages = new Map<string, string>()
let browser: Browser
let collector: RunningCollector
let recorder: Server
let site: Server
let local: Server
let SITE: string
let API: string
let STATS: string
let OTHER: string
let LOCAL_PORT: number

const listen = (server: Server, host: string) =>
  new Promise<number>((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)))

/** The recording endpoint, also the outbound link's destination (GET). */
const recordingServer = () =>
  createServer((req, res) => {
    let raw = ""
    req.setEncoding("utf8")
    req.on("data", (chunk) => (raw += chunk))
    req.on("end", () => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>away</title><p>elsewhere</p>")
        return
      }
      const url = new URL(req.url!, "http://api.test")
      let body: Record<string, any> = {}
      try {
        body = JSON.parse(raw)
      } catch {}
      hits.push({ method: req.method!, path: url.pathname, query: url.searchParams, headers: req.headers, raw, body, at: Date.now() })
      // what the collector answers an allowed origin
      res.writeHead(req.method === "OPTIONS" ? 204 : 202, {
        "access-control-allow-origin": req.headers.origin ?? "*",
        vary: "Origin",
        "content-type": "application/json"
      }).end(`{"success":true}`)
    })
  })

/** The fixture site: pages registered in `pages` by path, a PDF download, 404 else. */
const siteServer = () => createServer(fixturePages(pages))

interface Fixture {
  readonly script?: "sw.js" | "sw.full.js"
  readonly attrs?: string
  readonly automation?: boolean
  readonly key?: boolean
  readonly body?: string
}

const fixture = ({ script = "sw.full.js", attrs = "", automation = true, key = true, body = "" }: Fixture = {}) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>fixture</title>
<script defer ${key ? `data-key="${WRITE_KEY}"` : ""} data-api="${API}/track" ${automation ? "data-allow-automation" : ""} ${attrs} src="${STATS}/${script}"></script>
</head><body>${body}</body></html>`

/** A tall page, so that there is something to scroll. */
const TALL = `<main style="height:6000px"><h1>fixture</h1></main>`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until `count` requests have arrived (and a little longer, to catch one too many). */
const waitForHits = async (count: number, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (hits.length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} requests, got ${hits.length}: ${JSON.stringify(hits.map(summary))}`)
    await sleep(25)
  }
  await sleep(150)
  expect(hits.map(summary)).toHaveLength(count)
}

/**
 * The requests one action sent (the next `count`), as sorted summaries: requests sent in the same
 * moment travel on separate connections and may arrive in any order.
 */
const next = async (count: number) => {
  const from = seen
  seen += count
  await waitForHits(seen)
  return hits.slice(from).map(summary).sort()
}

/** The one request with this summary. */
const one = (line: string): Hit => {
  const found = hits.filter((hit) => summary(hit) === line)
  expect(found, line).toHaveLength(1)
  return found[0]!
}

/** One line per request: what a reader of the test compares. */
const summary = (hit: Hit) => {
  const b = hit.body
  const page = String(b["pageUrl"]).replace(SITE, "")
  switch (hit.path) {
    case "/track/view":
      return `view ${page}`
    case "/track/event":
      return `${b["eventType"]} ${page}`
    case "/track/conversion":
      return `conversion ${b["conversionType"]} ${page}`
    case "/track/funnel":
      return `funnel ${b["funnelId"]}/${b["stepId"]}#${b["stepOrder"]} ${page}`
    default:
      return `${hit.method} ${hit.path}`
  }
}

interface Visit {
  readonly context: BrowserContext
  readonly page: Page
  readonly errors: Array<string>
}

const open = async (init?: () => void): Promise<Visit> => {
  const context = await browser.newContext()
  if (init) await context.addInitScript(init)
  const page = await context.newPage()
  const errors: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text())
  })
  page.on("pageerror", (error) => errors.push(String(error)))
  return { context, page, errors }
}

/** Every request a page sends must look like this, whatever the event. */
const expectWellFormed = (hit: Hit) => {
  expect(hit.method).toBe("POST")
  expect(hit.path).toMatch(/^\/track\/(view|event|conversion|funnel)$/)
  // a simple request: text/plain needs no CORS preflight
  expect(hit.headers["content-type"]).toBe("text/plain;charset=UTF-8")
  expect(hit.query.get("writeKey")).toBe(WRITE_KEY)
  expect(hit.headers.origin).toBe(SITE)
  expect(hit.headers.cookie).toBeUndefined()
  // sessions are assigned server-side: the tracker has no id to send
  expect(hit.raw).not.toMatch(/session/i)
}

/** The body decodes as the API's request, as sent: without a sessionId (the server assigns the session). */
const decodesAs = (hit: Hit) => {
  const schema = { "/track/view": ViewRequest, "/track/event": EventRequest, "/track/conversion": ConversionRequest, "/track/funnel": FunnelRequest }[
    hit.path as "/track/view"
  ]
  expect(Schema.decodeUnknownExit(schema as typeof ViewRequest)(hit.body)._tag).toBe("Success")
}

/** Nothing on the device: no cookie, no storage of any kind (asked from the page and the browser). */
const expectNothingStored = async ({ context, page }: Visit) => {
  expect(await page.evaluate(() => [document.cookie, localStorage.length, sessionStorage.length])).toEqual(["", 0, 0])
  expect(await page.evaluate(async () => (await indexedDB.databases()).length)).toBe(0)
  expect(await context.cookies()).toEqual([])
}

describe.skipIf(!available)("tracker in Chromium", () => {
  beforeAll(async () => {
    collector = await startCollector()
    recorder = recordingServer()
    site = siteServer()
    local = siteServer()
    const apiPort = await listen(recorder, "127.0.0.3")
    const sitePort = await listen(site, "127.0.0.2")
    LOCAL_PORT = await listen(local, "127.0.0.1")
    SITE = `http://site.test:${sitePort}`
    API = `http://api.test:${apiPort}`
    OTHER = `http://other.test:${apiPort}`
    STATS = `http://stats.test:${new URL(collector.baseUrl).port}`
    browser = await launchChromium({ "site.test": "127.0.0.2", "api.test": "127.0.0.3", "other.test": "127.0.0.3", "stats.test": "127.0.0.1" })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    for (const server of [recorder, site, local]) server?.close()
    await collector?.close()
  })

  beforeEach(() => {
    hits.length = 0
    seen = 0
  })

  it("a visit: views, SPA navigation, engagement, the JS API, a download and an outbound link — each sent once, exactly", async () => {
    pages.set(
      "/landing",
      fixture({
        attrs: "data-outbound data-downloads",
        body: `${TALL}<a id="dl" href="/files/report.pdf" style="position:fixed;top:0">report</a>
<a id="out" href="${OTHER}/away" style="position:fixed;top:40px">elsewhere</a>`
      })
    )
    const visit = await open()
    const { page, errors } = visit
    const scriptResponse = page.waitForResponse(`${STATS}/sw.full.js`)
    const utm = "utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_content=hero&utm_term=red+shoes"
    await page.goto(`${SITE}/landing?${utm}`, { referer: "https://www.google.com/" })

    // the collector served the script, cacheable and compressed
    const served = await scriptResponse
    expect(served.status()).toBe(200)
    const headers = served.headers()
    expect(headers["cache-control"]).toBe(CACHE_CONTROL)
    expect(headers["etag"]).toMatch(/^"[\w-]{22}-(gz|br)"$/)
    expect(headers["content-encoding"]).toMatch(/^(gzip|br)$/)
    expect(headers["content-type"]).toBe("text/javascript; charset=utf-8")
    expect((await served.body()).toString()).toBe(readFileSync(new URL("../tracker/dist/full.js", import.meta.url), "utf8"))

    const landing = `/landing?${utm}`
    expect(await next(1)).toEqual([`view ${landing}`])
    await sleep(3300)
    // a route change: the landing page's engagement (≥ 3 s), then the new view
    await page.evaluate(() => history.pushState({}, "", "/app/pricing"))
    expect(await next(2)).toEqual([`engagement ${landing}`, "view /app/pricing"])
    // only state and query change: not a new page
    await page.evaluate(() => history.replaceState({ tab: 2 }, "", "/app/pricing?tab=2"))
    // a short stay without scrolling: no engagement event
    await page.evaluate(() => history.pushState({}, "", "/app/checkout"))
    expect(await next(1)).toEqual(["view /app/checkout"])
    await page.evaluate(() => history.back())
    expect(await next(1)).toEqual(["view /app/pricing?tab=2"])
    // scrolling further makes the next engagement event, however short the stay
    await page.evaluate(() => scrollTo(0, document.documentElement.scrollHeight))
    await sleep(200)
    await page.evaluate(() => history.pushState({}, "", "/app/docs"))
    expect(await next(2)).toEqual(["engagement /app/pricing?tab=2", "view /app/docs"])
    await page.evaluate(() => {
      const spoolway = window.spoolway
      spoolway.track("signup", { props: { plan: "pro" } })
      spoolway.track("purchase", { props: { sku: "A-1" }, revenue: { amount: 49.9, currency: "EUR" } })
      spoolway.conversion("lead")
      spoolway.funnel("checkout", "cart", 1, { props: { coupon: false } })
    })
    expect(await next(4)).toEqual(["conversion lead /app/docs", "conversion purchase /app/docs", "funnel checkout/cart#1 /app/docs", "signup /app/docs"])
    await page.click("#dl")
    expect(await next(1)).toEqual(["download /app/docs"])
    await expectNothingStored(visit)
    const geometry = await page.evaluate(() => ({
      screenWidth: screen.width,
      screenHeight: screen.height,
      viewportWidth: innerWidth,
      viewportHeight: innerHeight,
      language: navigator.language,
      touchPoints: navigator.maxTouchPoints,
      scrollHeight: document.documentElement.scrollHeight
    }))
    await sleep(3200)
    // leaving the site: the outbound click, then the page's engagement as it goes away
    await Promise.all([page.waitForURL(`${OTHER}/away`), page.click("#out")])
    expect(await next(2)).toEqual(["engagement /app/docs", "outbound /app/docs"])

    for (const hit of hits) {
      expectWellFormed(hit)
      decodesAs(hit)
    }
    const first = one(`view ${landing}`)
    const docs = one("view /app/docs")
    const { scrollHeight, ...device } = geometry
    expect(first.body).toEqual({
      pageUrl: `${SITE}${landing}`,
      referrer: "https://www.google.com/",
      attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "spring", utmContent: "hero", utmTerm: "red shoes" },
      clientDevice: device
    })
    // later views: no referrer, no attribution (navigations inside the site), same device fields
    for (const view of hits.filter((h) => h.path === "/track/view" && h !== first)) {
      expect(Object.keys(view.body).sort()).toEqual(["clientDevice", "pageUrl"])
      expect(view.body["clientDevice"]).toEqual(device)
    }
    // engaged time: the time the page was shown, within the test's timing tolerance
    const tolerance = 500
    const engaged1 = one(`engagement ${landing}`).body["metadata"]
    expect(engaged1["engagedMs"]).toBeGreaterThanOrEqual(3000)
    expect(Math.abs(engaged1["engagedMs"] - (one(`engagement ${landing}`).at - first.at))).toBeLessThan(tolerance)
    expect(engaged1["scrollDepth"]).toBe(Math.round(device.viewportHeight * 100 / scrollHeight))
    const engaged2 = one("engagement /app/pricing?tab=2").body["metadata"]
    expect(engaged2["engagedMs"]).toBeLessThan(3000)
    expect(engaged2["scrollDepth"]).toBe(100)
    const engaged3 = one("engagement /app/docs")
    expect(engaged3.body["metadata"]["engagedMs"]).toBeGreaterThanOrEqual(3000)
    expect(Math.abs(engaged3.body["metadata"]["engagedMs"] - (engaged3.at - docs.at))).toBeLessThan(tolerance)
    // the custom events' bodies as the API defines them
    const onDocs = `${SITE}/app/docs`
    expect(one("signup /app/docs").body).toEqual({ pageUrl: onDocs, eventType: "signup", metadata: { plan: "pro" } })
    expect(one("conversion purchase /app/docs").body).toEqual({
      pageUrl: onDocs,
      conversionType: "purchase",
      value: 49.9,
      currency: "EUR",
      metadata: { sku: "A-1" }
    })
    expect(one("conversion lead /app/docs").body).toEqual({ pageUrl: onDocs, conversionType: "lead" })
    expect(one("funnel checkout/cart#1 /app/docs").body).toEqual({
      pageUrl: onDocs,
      funnelId: "checkout",
      stepId: "cart",
      stepOrder: 1,
      metadata: { coupon: false }
    })
    expect(one("download /app/docs").body).toEqual({ pageUrl: onDocs, eventType: "download", metadata: { url: `${SITE}/files/report.pdf` } })
    expect(one("outbound /app/docs").body).toEqual({ pageUrl: onDocs, eventType: "outbound", metadata: { url: `${OTHER}/away` } })
    expect(errors).toEqual([])
    await visit.context.close()
  }, 60_000)

  it("hash routing is opt-in: with data-hash each #/route is a page, without it fragments are not", async () => {
    pages.set("/hash", fixture({ attrs: "data-hash" }))
    pages.set("/plain", fixture({ body: `<p id="a">a</p><p id="b">b</p>` }))
    const visit = await open()
    await visit.page.goto(`${SITE}/hash#/inbox`)
    await waitForHits(1)
    await visit.page.evaluate(() => (location.hash = "#/settings"))
    await waitForHits(2)
    // back to the first route: popstate and hashchange both fire, one view
    await visit.page.evaluate(() => history.back())
    await waitForHits(3)
    await visit.page.goto(`${SITE}/plain#a`)
    await waitForHits(4)
    await visit.page.evaluate(() => (location.hash = "#b"))
    await sleep(500)
    expect(hits.map(summary)).toEqual(["view /hash#/inbox", "view /hash#/settings", "view /hash#/inbox", "view /plain"])
    hits.forEach(expectWellFormed)
    expect(visit.errors).toEqual([])
    await visit.context.close()
  })

  it("a page restored from the back/forward cache is a new view", async () => {
    pages.set("/one", fixture({ body: `<a id="next" href="/two">two</a>` }))
    pages.set("/two", fixture())
    const visit = await open()
    await visit.page.goto(`${SITE}/one`)
    await waitForHits(1)
    await visit.page.evaluate(() => (window.marker = "still here"))
    await Promise.all([visit.page.waitForURL(`${SITE}/two`), visit.page.click("#next")])
    await waitForHits(2)
    await visit.page.goBack({ waitUntil: "commit" })
    await waitForHits(3)
    // the same document, not a reload: it came from the bfcache
    expect(await visit.page.evaluate(() => window.marker)).toBe("still here")
    expect(hits.map(summary)).toEqual(["view /one", "view /two", "view /one"])
    hits.forEach(expectWellFormed)
    expect(visit.errors).toEqual([])
    await visit.context.close()
  })

  it("engaged time counts only while the page is visible, and closing the page sends the rest", async () => {
    pages.set("/read", fixture())
    // headless Chromium never hides a page: drive document.visibilityState from the test
    const visit = await open(() => {
      window.__hidden = false
      Object.defineProperty(document, "visibilityState", { get: () => (window.__hidden ? "hidden" : "visible") })
    })
    const setHidden = (hidden: boolean) =>
      visit.page.evaluate((h) => {
        window.__hidden = h
        document.dispatchEvent(new Event("visibilitychange"))
      }, hidden)
    await visit.page.goto(`${SITE}/read`)
    await waitForHits(1)
    const shown = Date.now()
    await sleep(1500)
    // 1.5 s visible: too short to count on its own
    await setHidden(true)
    const hiddenAt = Date.now()
    await sleep(500)
    expect(hits).toHaveLength(1)
    await sleep(1500)
    await setHidden(false)
    const shownAgain = Date.now()
    await sleep(2000)
    await setHidden(true)
    const visibleMs = hiddenAt - shown + (Date.now() - shownAgain)
    await waitForHits(2)
    // 1.5 s + 2 s visible, the 2 s hidden in between not counted
    expect(Math.abs(hits[1]!.body["metadata"]["engagedMs"] - visibleMs)).toBeLessThan(500)
    await setHidden(false)
    const lastShown = Date.now()
    await sleep(3100)
    const closing = Date.now()
    await visit.page.close({ runBeforeUnload: true })
    await waitForHits(3)
    expect(hits.map(summary)).toEqual(["view /read", "engagement /read", "engagement /read"])
    expect(Math.abs(hits[2]!.body["metadata"]["engagedMs"] - (closing - lastShown))).toBeLessThan(500)
    hits.forEach(expectWellFormed)
    expect(visit.errors).toEqual([])
    await visit.context.close()
  }, 30_000)

  it("the core script: views and SPA navigation, no engagement, no API", async () => {
    pages.set("/core", fixture({ script: "sw.js", attrs: "data-outbound data-downloads", body: `${TALL}<a id="dl" href="/files/x.pdf">x</a>` }))
    const visit = await open()
    await visit.page.goto(`${SITE}/core?utm_source=ads&utm_medium=cpc`)
    await waitForHits(1)
    await sleep(3100)
    await visit.page.evaluate(() => scrollTo(0, 3000))
    await visit.page.evaluate(() => history.pushState({}, "", "/core/next"))
    await waitForHits(2)
    await visit.page.click("#dl")
    await sleep(500)
    expect(hits.map(summary)).toEqual(["view /core?utm_source=ads&utm_medium=cpc", "view /core/next"])
    expect(hits[0]!.body["attribution"]).toEqual({ utmSource: "ads", utmMedium: "cpc" })
    expect(await visit.page.evaluate(() => typeof window.spoolway)).toBe("undefined")
    hits.forEach(expectWellFormed)
    expect(visit.errors).toEqual([])
    await visit.context.close()
  })

  it("queued calls made before the script ran are sent after the first view", async () => {
    const stub = `<script>window.spoolway=window.spoolway||{q:[]};["track","conversion","funnel"].forEach(function(m){spoolway[m]=spoolway[m]||function(){spoolway.q.push([m,arguments])}});spoolway.track("early",{props:{n:1}});spoolway.funnel("f","s",0)</script>`
    pages.set("/early", fixture().replace("<script defer", `${stub}<script defer`))
    const visit = await open()
    await visit.page.goto(`${SITE}/early`)
    // the queued calls carry the page: the view went first
    expect(await next(3)).toEqual(["early /early", "funnel f/s#0 /early", "view /early"])
    expect(visit.errors).toEqual([])
    await visit.context.close()
  })

  /** The page loads, navigates, calls the API, clicks; nothing may arrive. */
  const expectSilent = async (url: string, init?: () => void) => {
    const visit = await open(init)
    await visit.page.goto(url)
    await visit.page.evaluate(() => {
      history.pushState({}, "", "/elsewhere")
      window.spoolway.track("x")
      window.spoolway.conversion("y", { revenue: { amount: 1, currency: "EUR" } })
    })
    await sleep(800)
    expect(hits.map(summary)).toEqual([])
    expect(visit.errors).toEqual([])
    await visit.context.close()
  }

  /** The positive control of an opt-out case: the same setup without the opt-out sends a view. */
  const expectSends = async (url: string, init?: () => void) => {
    const visit = await open(init)
    await visit.page.goto(url)
    await waitForHits(1)
    hits.length = 0
    await visit.context.close()
  }

  it("opt-outs send nothing: spoolway_ignore, automation, Do-Not-Track and GPC with data-respect-dnt", async () => {
    pages.set("/plain", fixture())
    pages.set("/robot", fixture({ automation: false }))
    pages.set("/dnt", fixture({ attrs: "data-respect-dnt" }))
    await expectSends(`${SITE}/plain`)
    await expectSilent(`${SITE}/plain`, () => localStorage.setItem("spoolway_ignore", "true"))
    // navigator.webdriver is true under playwright
    await expectSilent(`${SITE}/robot`)
    await expectSends(`${SITE}/dnt`)
    await expectSilent(`${SITE}/dnt`, () => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" }))
    await expectSilent(`${SITE}/dnt`, () => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }))
    // without data-respect-dnt the signals are not read
    await expectSends(`${SITE}/plain`, () => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" }))
  }, 30_000)

  it("local pages send nothing unless data-local", async () => {
    pages.set("/dev", fixture())
    pages.set("/dev-local", fixture({ attrs: "data-local" }))
    await expectSilent(`http://localhost:${LOCAL_PORT}/dev`)
    await expectSilent(`http://127.0.0.2:${new URL(SITE).port}/dev`)
    await expectSends(`http://localhost:${LOCAL_PORT}/dev-local`)
  }, 30_000)
})
