/**
 * Sites end to end (issue 13) through the real `spoolway serve` (collector + writer), sites added
 * with the CLI:
 * - bots on non-view events in the rollups: a headless browser's view, its beacons and a
 *   server-side conversion for its session (sent later, without a User-Agent) are bot events —
 *   stored with `is_bot`, counted only as `bot_events`; a human session's are not;
 * - a server-key event is stored for the key's site whatever its headers say: no Origin at all,
 *   or the Origin of another site;
 * - a tracker's events without sessionId: sessions assigned by the writer, one visit per visitor.
 */
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sitesCopyKey, sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { post, SHARED_REDIS } from "./support/collector.ts"
import { type Daemon, startDaemon } from "./support/daemon.ts"
import { type AddedSite, addSite, type SitesPipeline, sitesPipeline } from "./support/sites.ts"

const HEADLESS =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
const FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

const redis = new Redis(SHARED_REDIS)
const prefix = `test:sites-e2e:${randomUUID().slice(0, 8)}`
let pipeline: SitesPipeline
let daemon: Daemon
let site: AddedSite
let other: AddedSite

beforeAll(async () => {
  pipeline = await sitesPipeline("spoolway_sites_e2e", prefix)
  site = await addSite(pipeline.env, "shop.test")
  other = await addSite(pipeline.env, "other.test")
  daemon = await startDaemon(["serve"], pipeline.env)
  // the collector enforces the sites (it read the registry at start)
  const health = (await (await fetch(`${daemon.baseUrl}/health`)).json()) as { sites: { mode: string; sites: number } }
  expect(health.sites).toMatchObject({ mode: "sites", sites: 2 })
}, 120_000)

afterAll(async () => {
  await daemon?.stop()
  await pipeline?.close()
  await redis.del(`${prefix}:events`, `${prefix}:spool`, sitesKey(prefix), sitesVersionKey(prefix), sitesCopyKey(prefix))
  redis.disconnect()
})

const q = <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.runPromise(pipeline.sql.unsafe<A>(text, params as Array<unknown>))

/** Sends one event and returns its eventId (202 expected). */
const send = async (path: string, body: unknown, headers: Record<string, string>, contentType = "application/json") => {
  const res = await post(daemon.baseUrl, path, body, { headers, contentType })
  const text = await res.text()
  expect(res.status, text).toBe(202)
  return (JSON.parse(text) as { eventId: string }).eventId
}

/** The stored rows of these events, once all of them are stored. */
const stored = async (ids: ReadonlyArray<string>) => {
  for (let i = 0; i < 200; i++) {
    const rows = await q<{ id: string; is_bot: boolean; domain_id: number | null; event_type: string }>(
      `SELECT id::text AS id, is_bot, domain_id, event_type FROM raw_events WHERE id = ANY($1::uuid[])`,
      [ids]
    )
    if (rows.length === ids.length) return new Map(rows.map((r) => [r.id, r]))
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`not all of ${ids.length} events were stored`)
}

const dayTotals = async (domainId: number) => {
  const [daily] = await q<Record<string, number>>(
    `SELECT coalesce(sum(pageviews), 0)::int AS pageviews, coalesce(sum(sessions), 0)::int AS sessions,
            coalesce(sum(events), 0)::int AS events, coalesce(sum(conversions), 0)::int AS conversions,
            coalesce(sum(bot_events), 0)::int AS "botEvents"
     FROM daily_metrics WHERE domain_id = $1::int4`,
    [domainId]
  )
  const metrics = await q<{ metric: string; n: number }>(
    `SELECT metric, sum(value)::int AS n FROM aggregated_metrics
     WHERE domain_id = $1::int4 AND granularity = 'day' AND dimension = 'total' GROUP BY metric`,
    [domainId]
  )
  return { daily, metrics: Object.fromEntries(metrics.map((m) => [m.metric, m.n])) }
}

describe("sites end to end", () => {
  it("bots on non-view events in the rollups: a headless session's view, beacons and later server-side conversion are bot events", async () => {
    const page = { origin: `https://${site.hostname}`, "x-write-key": site.writeKey }
    const server = { authorization: `Bearer ${site.serverKey}`, "user-agent": "" }
    const bot = `e2e-bot-${randomUUID().slice(0, 8)}`
    const human = `e2e-human-${randomUUID().slice(0, 8)}`
    const pageUrl = `https://${site.hostname}/pricing`

    // from the pages: the headless session and a human one — a view, a beacon (text/plain, key in
    // the query string) and an engagement each, with the browser's own User-Agent
    const fromPages: Array<string> = []
    for (const [session, ua] of [[bot, HEADLESS], [human, FIREFOX]] as const) {
      fromPages.push(await send("/track/view", { sessionId: session, pageUrl }, { ...page, "user-agent": ua }))
      fromPages.push(
        await send(
          `/track/event?writeKey=${site.writeKey}`,
          { eventType: "exit", sessionId: session, pageUrl },
          { origin: page.origin, "user-agent": ua },
          "text/plain"
        )
      )
      fromPages.push(
        await send("/track/engagement", { userId: session, metricType: "like", targetId: "post-1" }, { ...page, "user-agent": ua })
      )
    }
    const pageRows = await stored(fromPages)

    // later, from the shop's server: a conversion per session, no User-Agent, no Origin
    const botConversion = await send(
      "/track/conversion",
      { conversionType: "purchase", sessionId: bot, value: 20, currency: "EUR" },
      server
    )
    const humanConversion = await send(
      "/track/conversion",
      { conversionType: "purchase", sessionId: human, value: 30, currency: "EUR" },
      server
    )
    const serverRows = await stored([botConversion, humanConversion])

    const [botView, botBeacon, botEngagement, humanView, humanBeacon, humanEngagement] = fromPages.map((id) => pageRows.get(id)!)
    for (const row of [botView, botBeacon, botEngagement]) expect(row, row!.event_type).toMatchObject({ is_bot: true })
    for (const row of [humanView, humanBeacon, humanEngagement]) expect(row, row!.event_type).toMatchObject({ is_bot: false })
    expect(serverRows.get(botConversion)).toMatchObject({ is_bot: true, domain_id: site.id })
    expect(serverRows.get(humanConversion)).toMatchObject({ is_bot: false, domain_id: site.id })
    for (const row of pageRows.values()) expect(row.domain_id).toBe(site.id)

    const totals = await dayTotals(site.id)
    expect(totals.daily).toEqual({ pageviews: 1, sessions: 1, events: 4, conversions: 1, botEvents: 4 })
    expect(totals.metrics).toMatchObject({ pageviews: 1, sessions: 1, events: 4, conversions: 1, conversion_value: 30, bot_events: 4 })
  })

  it("a tracker's events without sessionId: the writer builds one visit per visitor (site, daily visitor id)", async () => {
    const page = (ip: string) => ({ origin: `https://${other.hostname}`, "x-write-key": other.writeKey, "user-agent": FIREFOX, "x-forwarded-for": ip })
    const url = (path: string) => `https://${other.hostname}${path}`
    const first = [
      await send("/track/view", { pageUrl: url("/a?x=1") }, page("81.2.69.160")),
      await send("/track/view", { pageUrl: url("/b") }, page("81.2.69.160")),
      await send("/track/event", { eventType: "engagement", pageUrl: url("/b"), metadata: { engagedMs: 4000 } }, page("81.2.69.160"))
    ]
    const second = await send("/track/view", { pageUrl: url("/x") }, page("89.160.20.112"))
    await stored([...first, second])
    const sessions = await q<{ id: string; session_id: string }>(
      `SELECT id::text AS id, session_id FROM raw_events WHERE id = ANY($1::uuid[])`,
      [[...first, second]]
    )
    const sessionOf = new Map(sessions.map((r) => [r.id, r.session_id]))
    const visitorA = sessionOf.get(first[0]!)!
    expect(first.map((id) => sessionOf.get(id))).toEqual([visitorA, visitorA, visitorA])
    expect(first.map((id) => `~${id}`)).toContain(visitorA)
    expect(sessionOf.get(second)).toBe(`~${second}`)
    const visits = await q<Record<string, unknown>>(
      `SELECT session_id, pageviews, events, engaged, (pageviews <= 1 AND NOT engaged) AS bounce, entry_page, exit_page, hostname
       FROM visits WHERE site_id = $1::int4 AND session_id LIKE '~%' ORDER BY entry_page`,
      [other.id]
    )
    expect(visits).toEqual([
      { session_id: visitorA, pageviews: 2, events: 3, engaged: true, bounce: false, entry_page: "/a", exit_page: "/b", hostname: other.hostname },
      { session_id: `~${second}`, pageviews: 1, events: 1, engaged: false, bounce: true, entry_page: "/x", exit_page: "/x", hostname: other.hostname }
    ])
  })

  it("a server-key event is stored for the key's site whatever its headers say", async () => {
    const session = `e2e-server-${randomUUID().slice(0, 8)}`
    const body = { eventType: "invoice_paid", sessionId: session }
    const key = { authorization: `Bearer ${site.serverKey}`, "user-agent": "" }
    const ids = [
      await send("/track/event", body, key), // no Origin, no Referer
      await send("/track/event", body, { ...key, origin: `https://${other.hostname}` }), // another site's Origin
      await send("/track/event", body, { ...key, referer: `https://${other.hostname}/page` })
    ]
    const rows = await stored(ids)
    for (const id of ids) expect(rows.get(id)).toMatchObject({ domain_id: site.id, is_bot: false })
    // the other site's write key with its own Origin: that site
    const own = await send("/track/event", body, { origin: `https://${other.hostname}`, "x-write-key": other.writeKey, "user-agent": FIREFOX })
    expect((await stored([own])).get(own)).toMatchObject({ domain_id: other.id })
  })
})
