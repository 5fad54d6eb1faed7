/**
 * A real browser against a real pipeline (issue 13): headless Chromium (Debian's `chromium`,
 * driven by playwright-core, test/support/browser.ts) loads a page from an ALLOWED origin
 * (http://site.test:… on 127.0.0.2, the site's hostname) and one from a DISALLOWED origin
 * (http://evil.test:… on 127.0.0.3); each sends the four ways
 * pages send events — fetch with JSON (preflighted), keepalive fetch with text/plain and
 * sendBeacon with text/plain (both unpreflighted: the server alone can refuse them) and
 * sendBeacon with a JSON Blob (preflighted in credentials mode) — to the collector on
 * http://stats.test:… (127.0.0.1). The allowed page's four events are stored exactly once each in
 * PostgreSQL, the disallowed page's not at all. What the browser saw (every request and
 * preflight, with its status) is printed.
 *
 * Without a browser at CHROMIUM_PATH (default /usr/bin/chromium) the test is skipped, loudly
 * (under CI it fails).
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { browserAvailable, launchChromium } from "./support/browser.ts"
import { SHARED_REDIS } from "./support/collector.ts"
import { type Daemon, startDaemon } from "./support/daemon.ts"
import { addSite, type SitesPipeline, sitesPipeline } from "./support/sites.ts"

const haveBrowser = browserAvailable("the sites real-browser test (test/sites-browser.test.ts)")

/** host names the browser resolves (test/support/browser.ts): the site, another origin, the collector */
const HOSTS = { "site.test": "127.0.0.2", "evil.test": "127.0.0.3", "stats.test": "127.0.0.1" }

const WAYS = ["fetch-json", "keepalive-text", "beacon-text", "beacon-json"] as const

/** The page: sends one event each way, and says what the page itself could see. */
const page = (collector: string, key: string, tag: string) => `<!doctype html>
<html><head><title>${tag}</title></head><body><h1>${tag}</h1><pre id="out"></pre><script>
const C = ${JSON.stringify(collector)}, K = ${JSON.stringify(key)}, TAG = ${JSON.stringify(tag)}
const body = (way) => JSON.stringify({ eventType: TAG + "-" + way, sessionId: "browser-" + TAG, pageUrl: location.href })
const seen = {}
const attempt = async (way, send) => {
  try { seen[way] = await send() } catch (e) { seen[way] = "rejected: " + e.name }
}
window.sent = (async () => {
  await attempt("fetch-json", async () => (await fetch(C + "/track/event", {
    method: "POST", headers: { "content-type": "application/json", "x-write-key": K }, body: body("fetch-json")
  })).status)
  await attempt("keepalive-text", async () => (await fetch(C + "/track/event?writeKey=" + K, {
    method: "POST", keepalive: true, headers: { "content-type": "text/plain" }, body: body("keepalive-text")
  })).status)
  seen["beacon-text"] = "queued: " + navigator.sendBeacon(C + "/track/event?writeKey=" + K, body("beacon-text"))
  seen["beacon-json"] = "queued: " + navigator.sendBeacon(C + "/track/event?writeKey=" + K,
    new Blob([body("beacon-json")], { type: "application/json" }))
  document.getElementById("out").textContent = JSON.stringify(seen, null, 2)
  return seen
})()
</script></body></html>`

const servePage = (name: keyof typeof HOSTS, html: () => string) =>
  new Promise<{ server: Server; origin: string }>((resolve) => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      res.end(html())
    })
    server.listen(0, HOSTS[name], () => {
      const address = server.address()
      resolve({ server, origin: `http://${name}:${typeof address === "object" && address ? address.port : 0}` })
    })
  })

interface Seen {
  method: string
  url: string
  type: string
  status?: number
  failed?: string
}

describe.skipIf(!haveBrowser)("a real browser on an allowed and on a disallowed origin", () => {
  const prefix = `test:browser:${randomUUID().slice(0, 8)}`
  const redis = new Redis(SHARED_REDIS)
  let pipeline: SitesPipeline | undefined
  let daemon: Daemon | undefined
  const servers: Array<Server> = []
  let dataDir = ""

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "spoolway-sites-browser-"))
    pipeline = await sitesPipeline("spoolway_browser", prefix, { SPOOLWAY_DATA_DIR: dataDir })
    daemon = await startDaemon(["serve"], pipeline.env)
  }, 120_000)

  afterAll(async () => {
    for (const server of servers) server.close()
    if (daemon !== undefined) await daemon.stop("SIGTERM")
    await pipeline?.close()
    await redis.del(`${prefix}:events`, `${prefix}:spool`, sitesKey(prefix), sitesVersionKey(prefix), `${prefix}:sites:copy`)
    redis.disconnect()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("stores the allowed page's fetch, keepalive fetch and both beacons exactly once; nothing of the other page", async () => {
    const collector = `http://stats.test:${daemon!.port}`
    let key = ""
    const allowed = await servePage("site.test", () => page(collector, key, "allowed"))
    const disallowed = await servePage("evil.test", () => page(collector, key, "evil"))
    servers.push(allowed.server, disallowed.server)

    // the site: hostname site.test, so its default origins are http(s)://site.test on any port
    key = (await addSite(pipeline!.env, "site.test")).writeKey
    // the collector learns the site from the primary Redis
    const deadline = Date.now() + 10_000
    while (((await (await fetch(`${daemon!.baseUrl}/health`)).json()) as { sites: { mode: string } }).sites.mode !== "sites") {
      if (Date.now() > deadline) throw new Error("the collector never learnt the site")
      await new Promise((r) => setTimeout(r, 50))
    }

    const browser = await launchChromium(HOSTS)
    const context = await browser.newContext()
    const observed: Record<string, Array<Seen>> = {}
    const pageSaw: Record<string, unknown> = {}
    try {
      for (const [tag, origin] of [["evil", disallowed.origin], ["allowed", allowed.origin]] as const) {
        const tab = await context.newPage()
        // every request the browser makes, preflights and beacons included, with its outcome
        const cdp = await context.newCDPSession(tab)
        const requests = new Map<string, Seen>()
        cdp.on("Network.requestWillBeSent", (e: { requestId: string; type?: string; request: { method: string; url: string } }) => {
          if (e.request.url.startsWith(collector)) requests.set(e.requestId, { method: e.request.method, url: e.request.url.replace(/writeKey=[^&]+/, "writeKey=…"), type: e.type ?? "?" })
        })
        cdp.on("Network.responseReceived", (e: { requestId: string; response: { status: number } }) => {
          const r = requests.get(e.requestId)
          if (r) r.status = e.response.status
        })
        cdp.on("Network.loadingFailed", (e: { requestId: string; errorText: string; corsErrorStatus?: { corsError: string } }) => {
          const r = requests.get(e.requestId)
          if (r) r.failed = e.corsErrorStatus?.corsError ?? e.errorText
        })
        await cdp.send("Network.enable")
        await tab.goto(`${origin}/`)
        pageSaw[tag] = await tab.evaluate("window.sent")
        // beacons leave after the page's script: wait until every request has an outcome
        const until = Date.now() + 10_000
        while (
          [...requests.values()].filter((r) => r.method === "POST").length < (tag === "allowed" ? 4 : 2) ||
          [...requests.values()].some((r) => r.status === undefined && r.failed === undefined)
        ) {
          if (Date.now() > until) break
          await new Promise((r) => setTimeout(r, 50))
        }
        observed[tag] = [...requests.values()]
        await tab.screenshot({ path: join(tmpdir(), `spoolway-browser-${tag}.png`) })
        await tab.close()
      }
    } finally {
      await browser.close()
    }
    console.log(`what the browser saw:\n${JSON.stringify({ pageSaw, observed }, null, 2)}`)

    // stored: each of the allowed page's events exactly once, none of the other page's
    const storedTypes = async () =>
      (await Effect.runPromise(
        pipeline!.sql<{ event_type: string; n: number }>`SELECT event_type, count(*)::int AS n FROM raw_events GROUP BY 1 ORDER BY 1`
      )).map((r) => [r.event_type, r.n] as const)
    const waitUntil = Date.now() + 20_000
    while ((await storedTypes()).length < 4 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 100))
    await new Promise((r) => setTimeout(r, 500)) // anything else in flight lands too
    expect(await storedTypes()).toEqual(WAYS.map((way) => [`allowed-${way}`, 1]).sort())
    expect(await redis.xlen(`${prefix}:spool`)).toBe(0)

    // what the browser saw, in short
    const of = (tag: string, method: string) => observed[tag]!.filter((r) => r.method === method)
    expect(of("allowed", "POST").map((r) => r.status)).toEqual([202, 202, 202, 202])
    expect(of("allowed", "OPTIONS").map((r) => r.status)).toEqual([204, 204])
    // the disallowed page: both preflights refused (403, no CORS headers), so the JSON fetch and
    // the JSON beacon never left; the unpreflighted keepalive fetch and text beacon reached the
    // collector and were refused with 403 (the fetch's answer is hidden from the page by CORS)
    expect(of("evil", "OPTIONS").map((r) => r.status)).toEqual([403, 403])
    const evilPosts = of("evil", "POST")
    expect(evilPosts.filter((r) => r.failed === "PreflightMissingAllowOriginHeader")).toHaveLength(2)
    const reached = evilPosts.filter((r) => r.failed !== "PreflightMissingAllowOriginHeader")
    expect(reached).toHaveLength(2)
    for (const r of reached) expect(r.status === 403 || r.failed === "MissingAllowOriginHeader", JSON.stringify(r)).toBe(true)
    const metrics = await (await fetch(`${daemon!.baseUrl}/metrics`)).text()
    expect(metrics).toContain('spoolway_rejected_total{reason="origin_not_allowed"} 2')
    expect(pageSaw["allowed"]).toEqual({
      "fetch-json": 202,
      "keepalive-text": 202,
      "beacon-text": "queued: true",
      "beacon-json": "queued: true"
    })
    expect(pageSaw["evil"]).toMatchObject({ "fetch-json": "rejected: TypeError", "keepalive-text": "rejected: TypeError" })
  }, 120_000)
})
