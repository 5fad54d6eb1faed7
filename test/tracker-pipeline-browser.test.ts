/**
 * The tracker end to end (issue 16): headless Chromium (Debian's `chromium`, test/support/browser.ts)
 * loads fixture pages carrying the one script tag from the REAL pipeline — `spoolway serve` (collector
 * and writer) on the suite's Redis and a PostgreSQL database of its own, with a site registered by
 * `spoolway sites add` (test/support/sites.ts) — and the rows in PostgreSQL are what the pages did.
 *
 * - `site.test` (127.0.0.2) is the site's hostname, so its pages are on an allowed origin;
 *   `evil.test` (127.0.0.3) is not; the collector is `stats.test` (127.0.0.1). The script is the
 *   collector's own `/sw.full.js`, posting to the default `track` endpoint next to it.
 * - A visit with a normal desktop Chrome User-Agent: first page view (referrer, UTM), a SPA
 *   navigation, custom events through `spoolway.track` (one with revenue: a conversion) and
 *   `spoolway.funnel`, a download and an outbound click, back to the first page, and the engagement
 *   event the tracker sends when the page is closed (`pagehide`) — each stored once, none a bot's,
 *   all in ONE server-assigned session (the tracker sends no sessionId, stores nothing on the device).
 * - The same with Chromium's own headless User-Agent (`HeadlessChrome/…`): stored, flagged is_bot —
 *   automation is a bot to Spoolway (src/domain/Device.ts).
 * - A page on the disallowed origin: the collector refuses its requests (403), nothing is stored.
 *
 * Rows checked: raw_events (each event once, its page, referrer, metadata, session, is_bot), the
 * session's first touch (session_fingerprints) and its visit (visits: pageviews, events, engaged,
 * entry and exit page, referrer, UTM).
 *
 * The tags carry `data-allow-automation`: under playwright `navigator.webdriver` is true, and the
 * tracker would otherwise send nothing (test/tracker-browser.test.ts covers that opt-out).
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { Redis } from "ioredis"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { browserAvailable, fixturePages, launchChromium } from "./support/browser.ts"
import { SHARED_REDIS } from "./support/collector.ts"
import { type Daemon, startDaemon } from "./support/daemon.ts"
import { type AddedSite, addSite, type SitesPipeline, sitesPipeline } from "./support/sites.ts"

// page.evaluate callbacks run in the page (this project's tsconfig has no DOM library)
declare const window: any, history: any, navigator: any

const available = browserAvailable("the tracker's end-to-end browser test (test/tracker-pipeline-browser.test.ts)")


const HOSTS = { "site.test": "127.0.0.2", "evil.test": "127.0.0.3", "stats.test": "127.0.0.1" }

interface Row {
  readonly kind: string
  readonly event_type: string
  readonly session_id: string
  readonly page_url: string | null
  readonly referrer: string | null
  readonly is_bot: boolean
  readonly metadata: Record<string, any> | null
  readonly domain_id: number | null
  readonly received_at: string
  /** the daily visitor id, hex */
  readonly visitor: string | null
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!available)("the tracker on a real pipeline", () => {
  const prefix = `test:tracker-e2e:${randomUUID().slice(0, 8)}`
  const redis = new Redis(SHARED_REDIS)
  const pages = new Map<string, string>()
  const servers: Array<Server> = []
  let dataDir = ""
  let pipeline: SitesPipeline
  let daemon: Daemon
  let site: AddedSite
  let browser: Browser
  let SITE = ""
  let EVIL = ""
  let STATS = ""

  /** The fixture pages, the same on both origins: the one script tag and a body. */
  const serve = (host: keyof typeof HOSTS) =>
    new Promise<string>((resolve) => {
      const server = createServer(fixturePages(pages))
      servers.push(server)
      server.listen(0, HOSTS[host], () => resolve(`http://${host}:${(server.address() as AddressInfo).port}`))
    })

  const fixture = (title: string, attrs = "", body = "") =>
    `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<script defer data-key="${site.writeKey}" data-allow-automation ${attrs} src="${STATS}/sw.full.js"></script>
</head><body><h1>${title}</h1>${body}</body></html>`

  const rows = async (where: string): Promise<ReadonlyArray<Row>> =>
    Effect.runPromise(
      pipeline.sql<Row>`SELECT kind, event_type, session_id, page_url, referrer, is_bot, metadata, domain_id,
          received_at::text AS received_at, encode(visitor_id_daily, 'hex') AS visitor
        FROM raw_events WHERE page_url LIKE ${`${where}%`} ORDER BY "timestamp", event_type`
    )

  /** Waits (bounded) until `count` rows whose page starts with `where` are stored, then a little longer for one too many. */
  const stored = async (where: string, count: number): Promise<ReadonlyArray<Row>> => {
    const deadline = Date.now() + 20_000
    while ((await rows(where)).length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} rows for ${where}, got ${JSON.stringify(await rows(where))}`)
      await sleep(100)
    }
    await sleep(500)
    return rows(where)
  }

  const rejectedOrigins = async () => {
    const metrics = await (await fetch(`${daemon.baseUrl}/metrics`)).text()
    return Number(/spoolway_rejected_total\{reason="origin_not_allowed"\} (\d+)/.exec(metrics)?.[1] ?? 0)
  }

  interface Visit {
    readonly context: BrowserContext
    readonly page: Page
    readonly errors: Array<string>
    /** the tracker's answers from the collector: status per request path */
    readonly answers: Array<string>
  }

  const open = async (userAgent?: string): Promise<Visit> => {
    const context = await browser.newContext(userAgent === undefined ? {} : { userAgent })
    const page = await context.newPage()
    const errors: Array<string> = []
    const answers: Array<string> = []
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text())
    })
    page.on("pageerror", (error) => errors.push(String(error)))
    page.on("response", (response) => {
      const url = new URL(response.url())
      if (url.pathname.startsWith("/track/")) answers.push(`${response.status()} ${url.pathname}`)
    })
    return { context, page, errors, answers }
  }

  /** Waits until the page has sent the request for its first view (the script ran). */
  const firstView = (page: Page) => page.waitForRequest((r) => r.url().startsWith(`${STATS}/track/view`))

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "spoolway-tracker-e2e-"))
    pipeline = await sitesPipeline("spoolway_tracker_e2e", prefix, { SPOOLWAY_DATA_DIR: dataDir })
    daemon = await startDaemon(["serve"], pipeline.env)
    site = await addSite(pipeline.env, "site.test")
    // the collector learns the site from the primary Redis
    const deadline = Date.now() + 10_000
    while (((await (await fetch(`${daemon.baseUrl}/health`)).json()) as { sites: { mode: string } }).sites.mode !== "sites") {
      if (Date.now() > deadline) throw new Error("the collector never learnt the site")
      await sleep(50)
    }
    SITE = await serve("site.test")
    EVIL = await serve("evil.test")
    STATS = `http://stats.test:${daemon.port}`
    browser = await launchChromium(HOSTS)
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    for (const server of servers) server.close()
    await daemon?.stop("SIGTERM")
    await pipeline?.close()
    await redis.del(`${prefix}:events`, `${prefix}:spool`, sitesKey(prefix), sitesVersionKey(prefix), `${prefix}:sites:copy`)
    redis.disconnect()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("a visit with a desktop Chrome User-Agent: views, SPA navigation, back, custom events, download, outbound link, engagement on pagehide — each stored once, in one session", async () => {
    pages.set(
      "/landing",
      fixture(
        "landing",
        "data-outbound data-downloads",
        `<a id="dl" href="/files/report.pdf">report</a> <a id="out" href="${EVIL}/away" target="_blank">elsewhere</a>`
      )
    )
    pages.set("/away", "<!doctype html><title>away</title><p>another site, no tracker</p>")
    // what a visitor's Chrome says: the browser's own User-Agent without "Headless"
    const probe = await browser.newPage()
    const desktop = (await probe.evaluate(() => navigator.userAgent as string)).replace("HeadlessChrome/", "Chrome/")
    await probe.close()
    expect(desktop).toMatch(/^Mozilla\/5\.0 \(X11; Linux x86_64\) .* Chrome\/\d/)

    const visit = await open(desktop)
    const { context, page } = visit
    const utm = "utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    const sent = firstView(page)
    await page.goto(`${SITE}/landing?${utm}`, { referer: "https://www.google.com/" })
    await sent
    const shown = Date.now()
    // the first view is stored before the page moves on
    expect((await stored(`${SITE}/landing`, 1)).map((r) => r.kind)).toEqual(["view"])
    await page.evaluate(() => history.pushState({}, "", "/app/pricing"))
    await page.evaluate(() => {
      const spoolway = window.spoolway
      spoolway.track("signup", { props: { plan: "pro" } })
      spoolway.track("purchase", { props: { sku: "A-1" }, revenue: { amount: 49.9, currency: "EUR" } })
      spoolway.funnel("checkout", "cart", 1)
    })
    await page.click("#dl")
    const popup = context.waitForEvent("page")
    await page.click("#out")
    await (await popup).close()
    // back to the landing page: a view again
    await page.evaluate(() => history.back())
    await page.waitForURL(`${SITE}/landing?${utm}`)
    // every request so far was answered 202 (the page waits for none of them; collect them here)
    const deadline = Date.now() + 10_000
    while (visit.answers.filter((a) => a.endsWith("/track/view")).length < 3 || visit.answers.length < 8) {
      if (Date.now() > deadline) throw new Error(`answers: ${JSON.stringify(visit.answers)}`)
      await sleep(50)
    }
    expect(visit.answers.every((a) => a.startsWith("202 "))).toBe(true)
    // engaged for more than 3 s, then the visitor closes the tab: pagehide sends the engagement
    await sleep(3300)
    const closing = Date.now()
    await page.close({ runBeforeUnload: true })

    const landing = `/landing?${utm}`
    const until = Date.now() + 20_000
    while (!(await rows(SITE)).some((r) => r.event_type === "engagement" && r.page_url === `${SITE}${landing}`)) {
      if (Date.now() > until) throw new Error(`no engagement event stored for the landing page: ${JSON.stringify(await rows(SITE))}`)
      await sleep(100)
    }
    await sleep(500)
    const all = await rows(SITE)
    const line = (r: Row) => `${r.kind} ${r.event_type} ${r.page_url?.replace(SITE, "")}`
    // every event once; requests sent in the same moment may arrive in any order. A page the
    // loaded machine kept for 3 s before its next step adds an engagement event: set apart.
    const engagements = all.filter((r) => r.event_type === "engagement")
    expect(all.filter((r) => r.event_type !== "engagement").map(line).sort()).toEqual(
      [
        `view pageview ${landing}`,
        "view pageview /app/pricing",
        "event signup /app/pricing",
        "conversion conversion /app/pricing",
        "funnel funnel_step /app/pricing",
        "event download /app/pricing",
        "event outbound /app/pricing",
        `view pageview ${landing}`
      ].sort()
    )
    expect(engagements.at(-1)!.page_url).toBe(`${SITE}${landing}`)
    // one session, assigned by the server (the tracker has no id to send), of the site, no bot
    // (on failure: which events went to which session, when, with which daily visitor id — it
    // hashes the IP, User-Agent and Accept-Language, so a request sent with other ones starts
    // another visitor's session)
    const sessions = [...new Set(all.map((r) => r.session_id))]
    expect(sessions.length, JSON.stringify(all.map((r) => [sessions.indexOf(r.session_id), line(r), r.received_at, r.visitor, r.domain_id, r.session_id]))).toBe(1)
    expect(all.every((r) => r.domain_id === site.id && r.is_bot === false)).toBe(true)
    const views = all.filter((r) => r.kind === "view")
    // the document's first view has the referrer; navigations inside the site have none
    expect(views.map((r) => r.referrer)).toEqual(["https://www.google.com/", null, null])
    const by = (type: string) => all.find((r) => r.event_type === type)!.metadata
    expect(by("signup")).toEqual({ plan: "pro" })
    expect(by("conversion")).toEqual({ sku: "A-1", conversionType: "purchase", value: 49.9, currency: "EUR" })
    expect(by("funnel_step")).toEqual({ funnelId: "checkout", stepId: "cart", stepOrder: 1 })
    expect(by("download")).toEqual({ url: `${SITE}/files/report.pdf` })
    expect(by("outbound")).toEqual({ url: `${EVIL}/away` })
    // engaged time: the page was visible from its first view until it was closed, the last stretch ≥ 3 s
    // (generous upper tolerance: a loaded machine)
    const engaged = engagements.map((r) => r.metadata!["engagedMs"] as number)
    expect(engaged.at(-1)).toBeGreaterThanOrEqual(3000)
    expect(engaged.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(closing - shown + 1000)
    for (const r of engagements) expect(r.metadata!["scrollDepth"]).toBe(100)

    // the session's first touch: the landing page's UTM parameters
    const [session] = await Effect.runPromise(
      pipeline.sql<{ utm_source: string; utm_medium: string; utm_campaign: string }>`
        SELECT utm_source, utm_medium, utm_campaign FROM session_fingerprints WHERE session_id = ${all[0]!.session_id}`
    )
    expect(session).toEqual({ utm_source: "newsletter", utm_medium: "email", utm_campaign: "spring" })

    // the visit the writer keeps: one, not a bounce (engaged), entered and left on the landing page
    const visits = await Effect.runPromise(
      pipeline.sql`SELECT session_id, pageviews, events, engaged, is_bot, entry_page, exit_page, referrer,
          utm_source, utm_medium, utm_campaign
        FROM visits WHERE site_id = ${site.id}`
    )
    expect(visits).toEqual([{
      session_id: all[0]!.session_id,
      pageviews: 3,
      events: all.length,
      engaged: true,
      is_bot: false,
      entry_page: "/landing",
      exit_page: "/landing",
      referrer: "https://www.google.com/",
      utm_source: "newsletter",
      utm_medium: "email",
      utm_campaign: "spring"
    }])
    expect(visit.errors).toEqual([])
    await visit.context.close()
  }, 60_000)
  it("with Chromium's headless User-Agent the same events are stored, flagged is_bot", async () => {
    pages.set("/headless", fixture("headless"))
    const visit = await open()
    const { page } = visit
    expect(await page.evaluate(() => navigator.userAgent as string)).toContain("HeadlessChrome/")
    const sent = firstView(page)
    await page.goto(`${SITE}/headless`)
    await sent
    await page.evaluate(() => window.spoolway.track("signup", { props: { plan: "free" } }))
    const stored2 = await stored(`${SITE}/headless`, 2)
    expect(stored2.map((r) => [r.kind, r.event_type, r.is_bot])).toEqual([["view", "pageview", true], ["event", "signup", true]])
    expect(new Set(stored2.map((r) => r.session_id)).size).toBe(1)
    const visits = await Effect.runPromise(
      pipeline.sql`SELECT pageviews, is_bot FROM visits WHERE session_id = ${stored2[0]!.session_id}`
    )
    expect(visits).toEqual([{ pageviews: 1, is_bot: true }])
    expect(visit.errors).toEqual([])
    await visit.context.close()
  }, 60_000)

  it("a page with the tag on a disallowed origin stores nothing: the collector refuses its requests", async () => {
    pages.set("/evil", fixture("evil"))
    const before = await rejectedOrigins()
    const visit = await open()
    const { page } = visit
    const sent = firstView(page)
    await page.goto(`${EVIL}/evil`)
    await sent
    await page.evaluate(() => window.spoolway.track("signup", { props: { plan: "stolen" } }))
    // both requests reached the collector and were refused with 403 (the page cannot read the answer)
    const deadline = Date.now() + 10_000
    while ((await rejectedOrigins()) < before + 2) {
      if (Date.now() > deadline) throw new Error(`the collector refused ${(await rejectedOrigins()) - before} requests, not 2`)
      await sleep(50)
    }
    await visit.context.close()
    // a later event of the allowed site is stored; the refused ones never entered the stream
    pages.set("/after", fixture("after"))
    const after = await open()
    await after.page.goto(`${SITE}/after`)
    await stored(`${SITE}/after`, 1)
    await after.context.close()
    expect(await rows(EVIL)).toEqual([])
    expect(await rows("http://evil.test")).toEqual([])
    expect(await rejectedOrigins()).toBe(before + 2)
  }, 60_000)
})
