/**
 * The stats query API through the real processes: `serve --role all` takes views on the
 * tracking API and answers them on `POST /api/v1/query` (the writer's own path into
 * raw_events); `serve --role api` needs no Redis; `spoolway stats` prints a table and JSON.
 */
import { randomUUID } from "node:crypto"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sitesCopyKey, sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { post as postTrack, SHARED_REDIS } from "./support/collector.ts"
import { runCliInProcess } from "./support/cliInProcess.ts"
import { type Daemon, runCli, startDaemon } from "./support/daemon.ts"
import { type AddedSite, addSite, type SitesPipeline, sitesPipeline } from "./support/sites.ts"
import { post } from "./support/stats.ts"

const FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
const redis = new Redis(SHARED_REDIS)
const prefix = `test:stats-e2e:${randomUUID().slice(0, 8)}`
let pipeline: SitesPipeline
let site: AddedSite
const daemons: Array<Daemon> = []

beforeAll(async () => {
  pipeline = await sitesPipeline("spoolway_stats_e2e", prefix)
  site = await addSite(pipeline.env, "stats.test")
}, 120_000)

afterAll(async () => {
  for (const d of daemons) await d.stop()
  await pipeline?.close()
  await redis.del(`${prefix}:events`, `${prefix}:spool`, sitesKey(prefix), sitesVersionKey(prefix), sitesCopyKey(prefix))
  redis.disconnect()
})

const pagesOf = async (baseUrl: string) => {
  const { body, status } = await post(baseUrl, "/api/v1/query", {
    site: "stats.test",
    metrics: ["pageviews"],
    date_range: "day",
    dimensions: ["page"],
    order_by: [["page", "asc"]]
  }, site.serverKey)
  expect(status, JSON.stringify(body)).toBe(200)
  return body.results as Array<{ dimensions: [string]; metrics: [number] }>
}

describe("stats API end to end", () => {
  it("serve --role all: views sent to the tracking API are answered by the query API", async () => {
    const daemon = await startDaemon(["serve", "--role", "all"], pipeline.env)
    daemons.push(daemon)
    const sessionId = randomUUID()
    for (const page of ["/", "/pricing", "/pricing?plan=pro"]) {
      const res = await postTrack(daemon.baseUrl, "/track/view", { sessionId, pageUrl: `https://stats.test${page}` }, {
        headers: { "x-write-key": site.writeKey, origin: "https://stats.test", "user-agent": FIREFOX }
      })
      expect(res.status, await res.text()).toBe(202)
    }
    let pages: Awaited<ReturnType<typeof pagesOf>> = []
    for (let i = 0; i < 200; i++) {
      pages = await pagesOf(daemon.baseUrl)
      if (pages.reduce((n, r) => n + r.metrics[0], 0) >= 3) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(pages).toEqual([{ dimensions: ["/"], metrics: [1] }, { dimensions: ["/pricing"], metrics: [2] }])
    // the visit the writer kept in the same transaction: one visitor, one visit of three views, no bounce
    const totals = await post(daemon.baseUrl, "/api/v1/query", {
      site: "stats.test",
      metrics: ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "events"],
      date_range: "day"
    }, site.serverKey)
    expect(totals.body.results).toEqual([{ dimensions: [], metrics: [1, 1, 3, 3, 0, 3] }])
    const entry = await post(daemon.baseUrl, "/api/v1/query", {
      site: "stats.test", metrics: ["visits"], date_range: "day", dimensions: ["entry_page", "exit_page", "browser"]
    }, site.serverKey)
    expect(entry.body.results).toEqual([{ dimensions: ["/", "/pricing", "Firefox"], metrics: [1] }])
    const health = await (await fetch(`${daemon.baseUrl}/health`)).json() as Record<string, unknown>
    expect(health["database"]).toBe("ok")
    await daemon.stop()
  }, 120_000)

  it("serve --role api: answers without Redis; bad key 401", async () => {
    const { PRIMARY_REDIS_URL: _p, SPOOL_REDIS_URL: _s, ...env } = pipeline.env
    const daemon = await startDaemon(["serve", "--role", "api"], { ...env, PRIMARY_REDIS_URL: "redis://127.0.0.1:1" })
    daemons.push(daemon)
    expect((await pagesOf(daemon.baseUrl)).length).toBeGreaterThan(0)
    expect((await post(daemon.baseUrl, "/api/v1/query", { site: "stats.test", metrics: ["visitors"], date_range: "day" }, "nope")).status)
      .toBe(401)
    const openapi = await (await fetch(`${daemon.baseUrl}/openapi.json`)).json() as { paths: Record<string, unknown> }
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/api/v1/query", "/api/v1/funnel"]))
    await daemon.stop()
  }, 120_000)

  it("spoolway stats: a table by page, JSON, and a clear error for a bad --by", async () => {
    // the table from the real binary; the rest runs the CLI's program in this process (cliInProcess.ts)
    const table = await runCli(["stats", "stats.test", "--range", "day", "--by", "page", "--metrics", "pageviews"], pipeline.env)
    expect(table.code, table.out).toBe(0)
    expect(table.out).toMatch(/page\s+pageviews/)
    expect(table.out).toMatch(/\/pricing\s+2/)
    const json = await runCliInProcess(["stats", "stats.test", "--range", "day", "--json"], pipeline.env)
    expect(json.code, json.out).toBe(0)
    // visitors, visits, pageviews, bounce rate, duration
    expect(JSON.parse(json.out.slice(json.out.indexOf("{"))).results[0].metrics.slice(0, 4)).toEqual([1, 1, 3, 0])
    const bad = await runCliInProcess(["stats", "stats.test", "--by", "planet"], pipeline.env)
    expect(bad.code).not.toBe(0)
    expect(bad.out).toContain("--by")
    expect(bad.out).toContain("country")
    const unknown = await runCliInProcess(["stats", "nosuch.test"], pipeline.env)
    expect(unknown.code).not.toBe(0)
    expect(unknown.out).toContain("nosuch.test")
  }, 120_000)
})
