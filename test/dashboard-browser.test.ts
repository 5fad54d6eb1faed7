/**
 * The dashboard in a real browser against a real pipeline (issue 17): `spoolway serve --role all`
 * (collector, writer and query API in one process) on a fresh database; events sent through the
 * tracking API with the site's server key (each with its visitor's address and User-Agent);
 * headless Chromium (test/support/browser.ts) opens the dashboard.
 *
 * - the key prompt: a wrong key is refused with an error, the right one opens the Overview;
 * - every page renders, and each number shown equals the query API's answer to the same question
 *   (asked here, from the test, not taken from what the page fetched);
 * - clicking a row filters: the URL changes, the numbers change, the filter stays on every page;
 * - CSV export (formula-looking cells quoted as text);
 * - range switching; a view-only share link works, and once revoked it stops (401);
 * - empty and error states: no data → the tracker snippet; API unreachable → the error;
 * - values from the internet (`javascript:` URLs, markup in page paths, referrers and event
 *   names) are shown as text and nothing runs; only http(s) links; a CSP without inline script;
 * - at 375 px no page scrolls sideways; axe-core finds no serious or critical violation;
 * - a page load transfers ≤ 150 KB, all from the dashboard's own origin.
 * Screenshots of the six pages (and the Overview at 375 px) are taken and checked at every run; they
 * replace the committed ones in docs/screenshots/ only with UPDATE_SCREENSHOTS=1 (or when one is
 * missing), otherwise they go to test/.out/screenshots/ (gitignored), so a run leaves the checkout clean.
 *
 * Without a browser at CHROMIUM_PATH (default /usr/bin/chromium) the test is skipped, loudly
 * (under CI it fails).
 */
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { browserAvailable, launchChromium } from "./support/browser.ts"
import { type Daemon, runCli, startDaemon } from "./support/daemon.ts"
import { addSite, type AddedSite, type SitesPipeline, sitesPipeline } from "./support/sites.ts"

// the page's globals, inside page.evaluate (the tests compile without the DOM library)
declare const window: any, document: any, localStorage: any, HTMLAnchorElement: any

const haveBrowser = browserAvailable("the dashboard real-browser test (test/dashboard-browser.test.ts)")

const SITE = "shop.test"
/** the dashboard's host name for the browser (test/support/browser.ts resolves only the names given) */
const DASHBOARD_HOST = "stats.test"
/** the committed screenshots (README.md, docs/dashboard.md), rewritten only with UPDATE_SCREENSHOTS=1 */
const SCREENSHOTS = new URL("../docs/screenshots/", import.meta.url)
/** where a run's screenshots go otherwise (gitignored) */
const SCREENSHOTS_OUT = new URL(".out/screenshots/", import.meta.url)
const UPDATE_SCREENSHOTS = process.env["UPDATE_SCREENSHOTS"] === "1"
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js")

const FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
const ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"

/** Values a visitor controls, each of which would run script if rendered as HTML or used as a link. */
const HOSTILE_PATH = "/<img src=x onerror=\"window.__xss='path'\">"
const HOSTILE_EVENT = "<img src=x onerror=\"window.__xss='event'\">"
const HOSTILE_REFERRER = "javascript:window.__xss='referrer'"
const HOSTILE_PAGE_URL = "javascript:window.__xss='page-url'"
/** what a spreadsheet would run as a formula */
const FORMULA_EVENT = "=HYPERLINK(\"https://evil.example\")"

let pipeline: SitesPipeline
let daemon: Daemon
let site: AddedSite
let browser: Browser
/** where the browser reaches the dashboard: http://stats.test:<port> */
let base: string

type Json = Record<string, unknown>

const track = async (path: string, body: Json, visitor: { ip: string; ua: string }) => {
  const res = await fetch(`${daemon.baseUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${site.serverKey}`,
      "content-type": "application/json",
      "x-forwarded-for": visitor.ip,
      "user-agent": visitor.ua
    },
    body: JSON.stringify(body)
  })
  expect(res.status, await res.clone().text()).toBe(202)
}

interface QueryAnswer {
  readonly results: Array<{ dimensions: Array<string | null>; metrics: Array<number>; comparison?: { change: Array<number | null> } }>
  readonly meta: Json
}

/** The query API, asked from the test. */
const api = async (body: Json, token = site.serverKey, path = "/api/v1/query") => {
  const res = await fetch(`${daemon.baseUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ site: SITE, ...body })
  })
  return { status: res.status, body: (await res.json()) as QueryAnswer & Json }
}
const query = async (body: Json) => {
  const answer = await api(body)
  expect(answer.status, JSON.stringify(answer.body)).toBe(200)
  return answer.body
}

const EXPECTED_PAGEVIEWS = 7

/** A PNG's width and height (its IHDR chunk); throws when the bytes are not a PNG. */
const pngSize = (png: Uint8Array) => {
  const bytes = Buffer.from(png)
  if (!bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) || bytes.toString("latin1", 12, 16) !== "IHDR") {
    throw new Error(`not a PNG (${bytes.length} bytes)`)
  }
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) }
}

/**
 * Takes a full-page screenshot, checks it is a PNG as wide as the viewport and at least as tall, and
 * saves it: into docs/screenshots/ with UPDATE_SCREENSHOTS=1 or when the committed one is missing,
 * otherwise into test/.out/screenshots/.
 */
const screenshot = async (page: Page, name: string) => {
  const png = await page.screenshot({ fullPage: true })
  const viewport = page.viewportSize()!
  const size = pngSize(png)
  expect(size.width, `${name}.png width`).toBe(viewport.width)
  expect(size.height, `${name}.png height`).toBeGreaterThanOrEqual(viewport.height)
  const committed = new URL(`${name}.png`, SCREENSHOTS)
  const dir = UPDATE_SCREENSHOTS || !existsSync(committed) ? SCREENSHOTS : SCREENSHOTS_OUT
  mkdirSync(dir, { recursive: true })
  writeFileSync(new URL(`${name}.png`, dir), png)
}

beforeAll(async () => {
  if (!haveBrowser) return
  pipeline = await sitesPipeline(`spoolway_dashboard_${randomUUID().slice(0, 8)}`, `test:dashboard:${randomUUID().slice(0, 8)}`)
  site = await addSite(pipeline.env, SITE)
  daemon = await startDaemon(["serve", "--role", "all"], pipeline.env)
  const a = { ip: "81.2.69.142", ua: FIREFOX }
  const b = { ip: "8.8.8.8", ua: ANDROID }
  const c = { ip: "81.2.69.160", ua: IPHONE }
  // visitor a: Google → / → /pricing, signs up and buys
  await track("/track/view", { sessionId: "s-a", pageUrl: `https://${SITE}/`, referrer: "https://www.google.com/" }, a)
  await track("/track/view", { sessionId: "s-a", pageUrl: `https://${SITE}/pricing` }, a)
  await track("/track/event", { sessionId: "s-a", eventType: "signup", pageUrl: `https://${SITE}/pricing` }, a)
  await track("/track/conversion", { sessionId: "s-a", conversionType: "purchase", value: 49.9, currency: "EUR" }, a)
  // visitor b: a newsletter campaign → /
  await track("/track/view", {
    sessionId: "s-b",
    pageUrl: `https://${SITE}/`,
    referrer: "https://news.example/item?id=1",
    attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "winter" }
  }, b)
  // visitor c: /pricing only (a bounce)
  await track("/track/view", { sessionId: "s-c", pageUrl: `https://${SITE}/pricing` }, c)
  // visitor d: everything hostile
  const d = { ip: "81.2.69.142", ua: IPHONE }
  await track("/track/view", { sessionId: "s-d", pageUrl: `https://${SITE}${HOSTILE_PATH}`, referrer: HOSTILE_REFERRER }, d)
  await track("/track/view", { sessionId: "s-d", pageUrl: HOSTILE_PAGE_URL }, d)
  await track("/track/event", { sessionId: "s-d", eventType: HOSTILE_EVENT, pageUrl: `https://${SITE}/` }, d)
  await track("/track/view", { sessionId: "s-d", pageUrl: `https://${SITE}/` }, d)
  await track("/track/event", { sessionId: "s-d", eventType: FORMULA_EVENT, pageUrl: `https://${SITE}/` }, d)
  // a bot (curl's User-Agent): counted only as a bot event
  await track("/track/event", { sessionId: "s-bot", eventType: "crawl", pageUrl: `https://${SITE}/` }, { ip: "8.8.4.4", ua: "curl/8.5.0" })

  // stored: the query API sees every view
  const deadline = Date.now() + 30_000
  while (true) {
    const answer = await api({ metrics: ["pageviews"], date_range: "day" })
    if (answer.status === 200 && answer.body.results[0]?.metrics[0] === EXPECTED_PAGEVIEWS) break
    if (Date.now() > deadline) throw new Error(`the views were not stored: ${JSON.stringify(answer.body)}\n${daemon.output()}`)
    await new Promise((r) => setTimeout(r, 200))
  }
  browser = await launchChromium({ [DASHBOARD_HOST]: "127.0.0.1" })
  base = `http://${DASHBOARD_HOST}:${daemon.port}`
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await daemon?.stop()
  await pipeline?.close()
})

/** A new browser context; every page checks that no script from the data ran. */
const open = async (options: { width?: number; height?: number; bypassCSP?: boolean } = {}) => {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
    bypassCSP: options.bypassCSP ?? false
  })
  const page = await context.newPage()
  const problems: Array<string> = []
  page.on("dialog", (dialog) => {
    problems.push(`dialog: ${dialog.message()}`)
    void dialog.dismiss()
  })
  page.on("console", (message) => {
    // 4xx answers are the query API's (401 after a revocation, 400 for a dimension a server does not
    // offer): the tests check what the page says about them
    if (message.type() === "error" && !/the server responded with a status of 4\d\d/.test(message.text())) problems.push(`console: ${message.text()}`)
  })
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
  return { context, page, problems }
}

/** Stores the server key as the prompt would (for the tests that are not about the prompt). */
const withKey = async (context: BrowserContext, hostname = SITE, key = site.serverKey) => {
  await context.addInitScript(([hostname, key]) => {
    if (!localStorage.getItem(`spoolway:key:${hostname}`)) localStorage.setItem(`spoolway:key:${hostname}`, key!)
  }, [hostname, key])
}

const ready = (page: Page) => page.waitForSelector("main[data-state=ready]", { timeout: 20_000 })

const cardValues = (page: Page) =>
  page.$$eval(".card[data-metric]", (cards) =>
    Object.fromEntries(cards.map((c) => [c.getAttribute("data-metric"), Number(c.querySelector(".card-value")!.getAttribute("data-value"))])))

/** Each table on the page: its dimension, and visitors by shown value. */
const tables = (page: Page) =>
  page.$$eval("section[data-dimension]", (sections) =>
    sections.map((s) => ({
      dimension: s.getAttribute("data-dimension")!,
      filters: JSON.parse(s.getAttribute("data-filters") ?? "[]") as Array<unknown>,
      rows: [...s.querySelectorAll("tbody tr")].map((tr) => ({
        value: tr.querySelector("button.filter")!.textContent!,
        visitors: Number(tr.querySelector("td[data-metric=visitors]")?.getAttribute("data-value"))
      })),
      error: s.querySelector(".notice-error")?.textContent ?? null
    })))

const shown = (value: string | null) => (value === null || value === "" ? "(none)" : value)

/** Every table of the page shows what the query API answers for its dimension. */
const expectTablesMatch = async (page: Page, filters: Array<unknown>, dateRange: unknown = "30d") => {
  const seen = await tables(page)
  expect(seen.length).toBeGreaterThan(0)
  for (const table of seen) {
    const answer = await api({
      metrics: ["visitors"],
      dimensions: [table.dimension],
      date_range: dateRange,
      filters: [...filters, ...table.filters],
      limit: 10,
      order_by: [["visitors", "desc"]]
    })
    if (answer.status !== 200) {
      // a dimension this server does not offer (yet): the page says what the API said
      expect(table.error, table.dimension).toContain(String(answer.status))
      continue
    }
    expect(table.error, table.dimension).toBeNull()
    const expected = new Map(answer.body.results.map((r) => [shown(r.dimensions[0] ?? null), r.metrics[0]]))
    expect(new Map(table.rows.map((r) => [r.value, r.visitors])), table.dimension).toEqual(expected)
  }
  return seen
}

const OVERVIEW_METRICS = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]

const expectOverviewMatches = async (page: Page, filters: Array<unknown>, dateRange: unknown = "30d") => {
  const answer = await query({ metrics: OVERVIEW_METRICS, date_range: dateRange, filters, compare: "previous_period" })
  const expected = Object.fromEntries(OVERVIEW_METRICS.map((m, i) => [m, answer.results[0]?.metrics[i] ?? 0]))
  expect(await cardValues(page)).toEqual(expected)
  return expected
}

/** Network: bot events, and the network tables, or one notice where the API has no network dimensions. */
const expectNetworkMatches = async (page: Page) => {
  const totals = await query({ metrics: ["visitors", "bot_events"], date_range: "30d" })
  const cards = await cardValues(page)
  expect(cards["bot_events"]).toBe(totals.results[0]!.metrics[1])
  expect(cards["bot_events"]).toBeGreaterThan(0)
  const probe = await api({ metrics: ["visitors"], dimensions: ["org_type"], date_range: "30d" })
  if (probe.status === 200) {
    const byType = new Map(probe.body.results.map((r) => [r.dimensions[0], r.metrics[0]!]))
    const share = (type: string) => (100 * (byType.get(type) ?? 0)) / totals.results[0]!.metrics[0]!
    expect(cards["datacenter_share"]).toBeCloseTo(share("hosting"))
    expect(cards["vpn_share"]).toBeCloseTo(share("vpn"))
    expect(cards["government_share"]).toBeCloseTo(share("government"))
  }
  if (probe.status === 400) {
    expect(await page.textContent("main")).toContain("No network data on this server yet")
    expect(await tables(page)).toEqual([])
  } else {
    await expectTablesMatch(page, [])
  }
}

describe.skipIf(!haveBrowser)("the dashboard in Chromium", () => {
  it("asks for the server key: a wrong key is refused with an error, the right one opens the Overview with the API's numbers", async () => {
    const { context, page, problems } = await open()
    await page.goto(`${base}/sites/${SITE}`)
    await page.waitForSelector("[data-testid=key-prompt]")
    await page.fill("#key-input", site.writeKey)
    await page.click("[data-testid=key-prompt] button[type=submit]")
    await page.waitForSelector("[data-testid=key-prompt] .notice-error")
    expect(await page.textContent("[data-testid=key-prompt] .notice-error")).toContain("This key was refused")
    expect(await page.evaluate((s) => localStorage.getItem(`spoolway:key:${s}`), SITE)).toBeNull()

    await page.fill("#key-input", site.serverKey)
    await page.click("[data-testid=key-prompt] button[type=submit]")
    await ready(page)
    const numbers = await expectOverviewMatches(page, [])
    expect(numbers["pageviews"]).toBe(EXPECTED_PAGEVIEWS)
    expect(numbers["visitors"]).toBeGreaterThanOrEqual(3)
    // live visitors: the realtime answer
    const live = await query({ metrics: ["visitors"], date_range: "realtime" })
    expect(Number(await page.getAttribute(".live-value", "data-value"))).toBe(live.results[0]?.metrics[0] ?? 0)
    // the chart drew (uPlot's canvas)
    expect(await page.$(".chart canvas")).not.toBeNull()
    // kept: a reload opens the dashboard without asking
    await page.reload()
    await ready(page)
    expect(await page.$("[data-testid=key-prompt]")).toBeNull()
    // `/` opens the last site looked at
    await page.goto(`${base}/`)
    await page.waitForURL((url) => url.pathname === `/sites/${SITE}`)
    await ready(page)
    expect(problems).toEqual([])
    await context.close()
  }, 60_000)

  it("each of the six pages renders the query API's numbers; a screenshot of each", async () => {
    const { context, page, problems } = await open()
    await withKey(context)
    for (const name of ["overview", "pages", "events", "traffic", "audience", "network"]) {
      const path = name === "overview" ? "" : `/${name}`
      await page.goto(`${base}/sites/${SITE}${path}${name === "events" ? "?step=page:/&step=page:/pricing" : ""}`)
      await ready(page)
      expect(await page.getAttribute("nav a[aria-current=page]", "href")).toContain(`/sites/${SITE}${path}`)
      if (name === "overview") await expectOverviewMatches(page, [])
      else if (name === "network") await expectNetworkMatches(page)
      else await expectTablesMatch(page, [])
      if (name === "events") {
        // custom events only: the pageviews are the Pages page's
        const types = (await tables(page)).find((t) => t.dimension === "event_type")!.rows.map((r) => r.value)
        expect(types).toContain("signup")
        expect(types).not.toContain("pageview")
        const funnel = await api({ date_range: "30d", filters: [], steps: [{ page: "/" }, { page: "/pricing" }] }, site.serverKey, "/api/v1/funnel")
        expect(funnel.status).toBe(200)
        const steps = (funnel.body as unknown as { steps: Array<{ visitors: number }> }).steps
        const shownSteps = await page.$$eval("[data-testid=funnel] tbody tr td:nth-of-type(1)", (tds) => tds.map((td) => Number(td.getAttribute("data-value"))))
        expect(shownSteps).toEqual(steps.map((s) => s.visitors))
      }
      await screenshot(page, name)
    }
    expect(problems).toEqual([])
    await context.close()
  }, 120_000)

  it("clicking a row filters every page by it (in the URL); range switching re-asks the API", async () => {
    const { context, page, problems } = await open()
    await withKey(context)
    await page.goto(`${base}/sites/${SITE}/pages`)
    await ready(page)
    const before = await tables(page)
    expect(before.find((t) => t.dimension === "page")!.rows.map((r) => r.value)).toContain("/pricing")
    await page.click("section[data-dimension=page] button.filter >> text=/pricing")
    await page.waitForURL((url) => url.searchParams.get("page") === "/pricing")
    await ready(page)
    const filters = [["is", "page", ["/pricing"]]]
    const after = await expectTablesMatch(page, filters)
    expect(after.find((t) => t.dimension === "page")!.rows.map((r) => r.value)).toEqual(["/pricing"])
    expect(await page.textContent("[data-testid=filters]")).toContain("Page: /pricing")

    // the filter stays on every page
    await page.click("nav >> text=Overview")
    await page.waitForURL((url) => url.pathname === `/sites/${SITE}` && url.searchParams.get("page") === "/pricing")
    await ready(page)
    const filtered = await expectOverviewMatches(page, filters)
    const all = await query({ metrics: ["visitors"], date_range: "30d" })
    expect(filtered["visitors"]).toBeLessThan(all.results[0]!.metrics[0]!)
    await page.click("nav >> text=Audience")
    await page.waitForURL((url) => url.pathname.endsWith("/audience") && url.searchParams.get("page") === "/pricing")
    await ready(page)
    await expectTablesMatch(page, filters)

    // a second filter from another page's row, then the range
    await page.click("section[data-dimension=browser] button.filter >> nth=0")
    await page.waitForURL((url) => url.searchParams.has("browser"))
    await ready(page)
    const browserName = new URL(page.url()).searchParams.get("browser")!
    const both = [["is", "page", ["/pricing"]], ["is", "browser", [browserName]]]
    await expectTablesMatch(page, both)
    await page.selectOption("#range", "7d")
    await page.waitForURL((url) => url.searchParams.get("range") === "7d")
    await ready(page)
    await expectTablesMatch(page, both, "7d")
    await page.selectOption("#range", "day")
    await page.waitForURL((url) => url.searchParams.get("range") === "day")
    await ready(page)
    await expectTablesMatch(page, both, "day")

    // "(none)": the rows without a value, as the API's null
    await page.goto(`${base}/sites/${SITE}/traffic`)
    await ready(page)
    await page.click("section[data-dimension=referrer] button.filter >> text=(none)")
    await page.waitForURL((url) => url.searchParams.get("referrer") === "")
    await ready(page)
    const unknown = await expectTablesMatch(page, [["is", "referrer", [null]]])
    expect(unknown.find((t) => t.dimension === "referrer")!.rows.map((r) => r.value)).toEqual(["(none)"])
    expect(await page.textContent("[data-testid=filters]")).toContain("Referrer: (none)")
    await page.goto(`${base}/sites/${SITE}/audience?range=day&page=%2Fpricing&browser=${encodeURIComponent(browserName)}`)
    await ready(page)

    // a custom range: today alone, as dates
    const today = new Date().toISOString().slice(0, 10)
    await page.selectOption("#range", "custom")
    await page.fill("#from", today)
    await page.fill("#to", today)
    await page.click(".custom-range button[type=submit]")
    await page.waitForURL((url) => url.searchParams.get("range") === "custom" && url.searchParams.get("from") === today)
    await ready(page)
    await expectTablesMatch(page, both, [today, today])
    await page.selectOption("#range", "day")
    await page.waitForURL((url) => url.searchParams.get("range") === "day")
    await ready(page)

    // removing a filter, and the browser's back button
    await page.click("[data-testid=filters] .chip[data-dimension=page] button")
    await page.waitForURL((url) => !url.searchParams.has("page") && url.searchParams.has("browser"))
    await ready(page)
    await expectTablesMatch(page, [["is", "browser", [browserName]]], "day")
    await page.goBack()
    await page.waitForURL((url) => url.searchParams.get("page") === "/pricing")
    await ready(page)
    await expectTablesMatch(page, both, "day")
    expect(problems).toEqual([])
    await context.close()
  }, 120_000)

  it("CSV export of a table: every row of the API's answer, formula-looking cells quoted as text", async () => {
    const { context, page, problems } = await open()
    await withKey(context)
    await page.goto(`${base}/sites/${SITE}/traffic`)
    await ready(page)
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("section[data-dimension=referrer] .panel-head button")])
    expect(download.suggestedFilename()).toMatch(/^shop\.test-referrer-.*\.csv$/)
    const csv = readFileSync(await download.path(), "utf8")
    const answer = await query({ metrics: ["visitors", "visits"], dimensions: ["referrer"], date_range: "30d", order_by: [["visitors", "desc"]], limit: 10_000 })
    const lines = csv.trimEnd().split("\r\n")
    expect(lines[0]).toBe("referrer,visitors,visits")
    expect(lines.length - 1).toBe(answer.results.length)
    expect(csv).toContain("https://www.google.com/,1,1")

    await page.goto(`${base}/sites/${SITE}/events`)
    await ready(page)
    const [events] = await Promise.all([page.waitForEvent("download"), page.click("section[data-dimension=event_type] .panel-head button")])
    const eventsCsv = readFileSync(await events.path(), "utf8")
    expect(eventsCsv.split("\r\n")[0]).toBe("event_type,visitors,events,conversions,revenue")
    expect(eventsCsv).toContain(`"'=HYPERLINK(""https://evil.example"")",1,1,0,0\r\n`)
    expect(problems).toEqual([])
    await context.close()
  }, 60_000)

  it("serve --role api serves the dashboard beside the query API (no Redis needed)", async () => {
    const { DATABASE_URL, STREAM_PREFIX } = pipeline.env
    const api = await startDaemon(["serve", "--role", "api"], { DATABASE_URL: DATABASE_URL!, STREAM_PREFIX: STREAM_PREFIX!, PRIMARY_REDIS_URL: "redis://127.0.0.1:1" })
    try {
      const shell = await fetch(`${api.baseUrl}/sites/${SITE}/traffic`)
      expect(shell.status).toBe(200)
      expect(shell.headers.get("content-security-policy")).toContain("script-src 'self'")
      expect(await shell.text()).toContain("/dashboard/app.js")
      expect((await fetch(`${api.baseUrl}/dashboard/pages.js`)).status).toBe(200)
      const answer = await fetch(`${api.baseUrl}/api/v1/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${site.serverKey}`, "content-type": "application/json" },
        body: JSON.stringify({ site: SITE, metrics: ["pageviews"], date_range: "day" })
      })
      expect(await answer.json()).toMatchObject({ results: [{ metrics: [EXPECTED_PAGEVIEWS] }] })
    } finally {
      await api.stop()
    }
  }, 60_000)

  it("a view-only share link opens the dashboard without a key; once revoked it stops working (401)", async () => {
    const made = await runCli(["sites", "share", SITE, "--base-url", base, "--json"], pipeline.env)
    expect(made.code, made.out).toBe(0)
    const share = JSON.parse(made.out.slice(made.out.indexOf("{"))) as { id: number; link: string; token: string }
    const { context, page, problems } = await open()
    await page.goto(share.link)
    await ready(page)
    expect(await page.textContent(".badge")).toContain("view-only")
    await expectOverviewMatches(page, [])
    // the token left the address bar
    expect(page.url()).not.toContain("sw_shr_")
    await page.click("nav >> text=Traffic")
    await ready(page)
    await expectTablesMatch(page, [])
    // the token reads, and only its own site
    expect((await api({ metrics: ["visitors"], date_range: "day" }, share.token)).status).toBe(200)
    expect((await api({ metrics: ["visitors"], date_range: "day", site: "other.test" }, share.token)).status).toBeGreaterThanOrEqual(400)

    const revoked = await runCli(["sites", "share", "revoke", SITE, String(share.id)], pipeline.env)
    expect(revoked.code, revoked.out).toBe(0)
    expect((await api({ metrics: ["visitors"], date_range: "day" }, share.token)).status).toBe(401)
    await page.reload()
    await page.waitForSelector("main[data-state=revoked]")
    expect(await page.textContent("main")).toContain("no longer works")
    // and the link itself, opened anew
    const fresh = await context.newPage()
    await fresh.goto(share.link)
    await fresh.waitForSelector("main[data-state=revoked]")
    expect(problems).toEqual([])
    await context.close()
  }, 60_000)

  it("empty and error states say what to do: no data → the tracker snippet, API unreachable → the error", async () => {
    const empty = await addSite(pipeline.env, "empty.test")
    const { context, page, problems } = await open()
    await withKey(context, "empty.test", empty.serverKey)
    await page.goto(`${base}/sites/empty.test`)
    await ready(page)
    const text = await page.textContent("main")
    expect(text).toContain("No data yet for empty.test")
    expect(text).toContain(`<script defer data-key="YOUR_SITE_WRITE_KEY" src="${base}/sw.js"></script>`)
    expect(await page.textContent(".chart")).toContain("nothing to chart")
    expect(problems).toEqual([])

    // the query API cannot be reached: every table says so, none is silently blank
    await withKey(context)
    await page.route("**/api/v1/**", (route) => route.abort("connectionrefused"))
    await page.goto(`${base}/sites/${SITE}/pages`)
    await ready(page)
    const seen = await tables(page)
    expect(seen.length).toBe(3)
    for (const table of seen) expect(table.error, table.dimension).toContain("The query API cannot be reached")
    await page.goto(`${base}/sites/${SITE}`)
    await ready(page)
    expect(await page.textContent(".cards")).toContain("The query API cannot be reached")
    await context.close()
  }, 60_000)

  it("values from the internet are text: no script runs, only http(s) links, a CSP without inline script", async () => {
    const { context, page, problems } = await open()
    await withKey(context)
    const response = await page.goto(`${base}/sites/${SITE}/pages`)
    const csp = response!.headers()["content-security-policy"]!
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toContain("unsafe-inline")
    await ready(page)
    const pages = (await tables(page)).find((t) => t.dimension === "page")!.rows.map((r) => r.value)
    expect(pages).toContain(HOSTILE_PATH)
    for (const name of ["traffic", "events", "audience", "network", ""]) {
      await page.goto(`${base}/sites/${SITE}${name ? `/${name}` : ""}`)
      await ready(page)
    }
    await page.goto(`${base}/sites/${SITE}/events`)
    await ready(page)
    expect((await tables(page)).find((t) => t.dimension === "event_type")!.rows.map((r) => r.value)).toContain(HOSTILE_EVENT)
    await page.goto(`${base}/sites/${SITE}/traffic`)
    await ready(page)
    const referrers = (await tables(page)).find((t) => t.dimension === "referrer")
    if (referrers !== undefined && referrers.error === null) expect(referrers.rows.map((r) => r.value)).toContain(HOSTILE_REFERRER)
    expect(await page.evaluate(() => window.__xss)).toBeUndefined()
    expect(await page.$$("main img")).toEqual([])
    const hrefs = await page.$$eval("a[href]", (links) => links.map((a) => a.href))
    for (const href of hrefs) expect(href).toMatch(/^https?:\/\//)
    const external = await page.$$eval("a[target=_blank]", (links) => links.map((a) => a.getAttribute("rel")))
    for (const rel of external) expect(rel).toBe("noopener noreferrer")
    // a click on the hostile value filters by it, as text
    await page.goto(`${base}/sites/${SITE}/pages`)
    await ready(page)
    await page.click(`section[data-dimension=page] button.filter >> text=${JSON.stringify(HOSTILE_PATH)}`)
    await page.waitForURL((url) => url.searchParams.get("page") === HOSTILE_PATH)
    await ready(page)
    expect(await page.evaluate(() => window.__xss)).toBeUndefined()
    expect(problems).toEqual([])
    await context.close()
  }, 60_000)

  it("at 375 px no page scrolls sideways; axe-core finds no serious or critical violation", async () => {
    const { context, page, problems } = await open({ width: 375, height: 800, bypassCSP: true })
    await withKey(context)
    const axe = readFileSync(AXE, "utf8")
    const violations: Array<string> = []
    for (const name of ["", "pages", "events", "traffic", "audience", "network"]) {
      await page.goto(`${base}/sites/${SITE}${name ? `/${name}` : ""}?page=%2F`)
      await ready(page)
      const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }))
      expect(scroll, `${name || "overview"} at 375 px`).toBeLessThanOrEqual(width)
      if (name === "") await screenshot(page, "overview-375")
      await page.evaluate(axe)
      const found = await page.evaluate(async () => {
        const result = await (window as unknown as { axe: { run: (o: unknown) => Promise<{ violations: Array<{ id: string; impact: string; nodes: Array<{ target: unknown }> }> }> } })
          .axe.run({ resultTypes: ["violations"] })
        if (!Array.isArray(result.violations)) throw new Error("axe-core did not run")
        return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.id} (${v.impact}): ${JSON.stringify(v.nodes.slice(0, 3).map((n) => n.target))}`)
      })
      violations.push(...found.map((v) => `${name || "overview"}: ${v}`))
    }
    expect(violations).toEqual([])
    expect(problems).toEqual([])
    await context.close()
  }, 120_000)

  it("a page load transfers at most 150 KB, every request to the dashboard's own origin; keyboard reaches the filters", async () => {
    const { context, page, problems } = await open()
    await withKey(context)
    const requests: Array<{ url: string; bytes: Promise<number> }> = []
    page.on("requestfinished", (request) => {
      requests.push({ url: request.url(), bytes: request.sizes().then((s) => s.responseBodySize + s.responseHeadersSize, () => 0) })
    })
    await page.goto(`${base}/sites/${SITE}`)
    await ready(page)
    const total = (await Promise.all(requests.map((r) => r.bytes))).reduce((a, b) => a + b, 0)
    expect(requests.length).toBeGreaterThan(3)
    for (const r of requests) expect(new URL(r.url).origin).toBe(base)
    expect(total).toBeLessThanOrEqual(150 * 1024)
    console.log(`dashboard: Overview load ${requests.length} requests, ${(total / 1024).toFixed(1)} KB transferred`)

    // keyboard only: Tab to the first row of the Pages page, Enter filters by it
    await page.goto(`${base}/sites/${SITE}/pages`)
    await ready(page)
    let focused = ""
    for (let i = 0; i < 40 && !focused.startsWith("filter:"); i++) {
      await page.keyboard.press("Tab")
      focused = await page.evaluate(() => {
        const el = document.activeElement
        return el?.classList.contains("filter") ? `filter:${el.textContent}` : el?.tagName ?? ""
      })
    }
    expect(focused).toMatch(/^filter:/)
    await page.keyboard.press("Enter")
    await page.waitForURL((url) => url.searchParams.has("page"))
    expect(problems).toEqual([])
    await context.close()
  }, 60_000)
})
