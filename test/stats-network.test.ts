/**
 * The network dimensions of the stats query API (issue 15, docs/network.md): `asn`, `org` and
 * `org_type` of a visit (its entry view's network, as the writer stores it — see
 * test/writer-network.test.ts), as dimensions and filters, on visit queries and on event
 * queries (joined to the visit); an unknown network dimension is a 400 that lists them.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { addTestSite, insertEvents, insertVisits, post, rebuildVisitRollups, startStatsApi, type StatsApi, type TestSite } from "./support/stats.ts"

let api: StatsApi
let site: TestSite

const RANGE = ["2026-11-02", "2026-11-03"]

/** session → its visit's network (the columns of migration 0005_network) */
const NETWORKS: Record<string, readonly [number | null, string | null, string | null]> = {
  dc1: [14061, "DigitalOcean, LLC", "hosting"],
  dc2: [14061, "DigitalOcean, LLC", "hosting"],
  isp1: [7922, "Comcast Cable Communications, LLC", "isp"],
  isp2: [3320, "Deutsche Telekom AG", "isp"],
  none: [null, null, null]
}

beforeAll(async () => {
  api = await startStatsApi()
  site = await api.run(addTestSite("net.example", "UTC"))
  const sessions = Object.keys(NETWORKS)
  await api.run(insertVisits(site.id, sessions.map((session, i) => ({
    session,
    visitor: session,
    start: `2026-11-02T1${i}:00:00Z`,
    durationS: 10,
    pageviews: session === "dc1" ? 3 : 1,
    events: session === "dc1" ? 3 : 1,
    country: "DE"
  }))))
  // a bot's visit from a datacenter: never counted by the human metrics
  await api.run(insertVisits(site.id, [{ session: "bot", visitor: "bot", start: "2026-11-02T15:00:00Z", pageviews: 1, events: 1, bot: true }]))
  NETWORKS["bot"] = [14061, "DigitalOcean, LLC", "hosting"]
  for (const [session, [asn, org, orgType]] of Object.entries(NETWORKS)) {
    await api.run(Effect.asVoid(
      api.sql`UPDATE visits SET asn = ${asn}, org = ${org}, org_type = ${orgType},
                is_datacenter = ${orgType === null ? null : orgType === "hosting"}
              WHERE site_id = ${site.id} AND session_id = ${session}`
    ))
  }
  await api.run(rebuildVisitRollups)
  await api.run(insertEvents(site.id, [
    { session: "dc1", visitor: "dc1", at: "2026-11-02T10:00:00Z", page: "/" },
    { session: "dc1", visitor: "dc1", at: "2026-11-02T10:00:05Z", page: "/pricing" },
    { session: "dc1", visitor: "dc1", at: "2026-11-02T10:00:10Z", page: "/pricing" },
    { session: "dc2", visitor: "dc2", at: "2026-11-02T11:00:00Z", page: "/pricing" },
    { session: "isp1", visitor: "isp1", at: "2026-11-02T12:00:00Z", page: "/" },
    { session: "isp2", visitor: "isp2", at: "2026-11-02T13:00:00Z", page: "/pricing" },
    { session: "none", visitor: "none", at: "2026-11-02T14:00:00Z", page: "/" }
  ]))
}, 60_000)

afterAll(async () => {
  await api?.close()
})

const query = (body: Record<string, unknown>) =>
  post(api.baseUrl, "/api/v1/query", { site: "net.example", date_range: RANGE, ...body }, site.serverKey)

const rows = (body: { results: ReadonlyArray<{ dimensions: ReadonlyArray<unknown>; metrics: ReadonlyArray<number> }> }) =>
  body.results.map((r) => [...r.dimensions, ...r.metrics])

describe("network dimensions", () => {
  it("org_type, asn and org as dimensions (asn as text; no AS data → null); bots left out", async () => {
    const byType = await query({ metrics: ["visits", "pageviews"], dimensions: ["org_type"], order_by: [["visits", "desc"], ["org_type", "asc"]] })
    expect(byType.status, JSON.stringify(byType.body)).toBe(200)
    expect(rows(byType.body)).toEqual([["hosting", 2, 4], ["isp", 2, 2], [null, 1, 1]])

    const byAs = await query({ metrics: ["visitors"], dimensions: ["asn", "org"], order_by: [["visitors", "desc"], ["asn", "asc"]] })
    expect(byAs.status, JSON.stringify(byAs.body)).toBe(200)
    expect(rows(byAs.body)).toEqual([
      ["14061", "DigitalOcean, LLC", 2],
      ["3320", "Deutsche Telekom AG", 1],
      ["7922", "Comcast Cable Communications, LLC", 1],
      [null, null, 1]
    ])
  })

  it.each([
    ["is org_type", ["is", "org_type", ["hosting"]], 2],
    ["is_not org_type (no AS data included)", ["is_not", "org_type", ["hosting"]], 3],
    ["is asn (as text)", ["is", "asn", ["7922", "3320"]], 2],
    ["contains org (case-insensitive)", ["contains", "org", ["comcast"]], 1],
    ["matches org", ["matches", "org", ["^Deutsche"]], 1],
    ["not datacenter and known", ["and", [["not", ["is", "org_type", ["hosting"]]], ["is", "org_type", ["isp", "business"]]]], 2]
  ])("filter %s", async (_name, filter, visits) => {
    const { body, status } = await query({ metrics: ["visits"], filters: [filter] })
    expect(status, JSON.stringify(body)).toBe(200)
    expect(body.results).toEqual([{ dimensions: [], metrics: [visits] }])
  })

  it("event queries take the network of the event's visit: pageviews by page of datacenter visits", async () => {
    const { body, status } = await query({
      metrics: ["pageviews"],
      dimensions: ["page", "org_type"],
      filters: [["is", "org_type", ["hosting"]]],
      order_by: [["page", "asc"]]
    })
    expect(status, JSON.stringify(body)).toBe(200)
    expect(rows(body)).toEqual([["/", "hosting", 1], ["/pricing", "hosting", 3]])
  })

  it("an unknown network dimension is a 400 that lists asn, org and org_type", async () => {
    for (const body of [{ metrics: ["visits"], dimensions: ["asn_name"] }, { metrics: ["visits"], filters: [["is", "network", ["x"]]] }]) {
      const response = await query(body)
      expect(response.status).toBe(400)
      expect(response.body.allowed).toEqual(expect.arrayContaining(["asn", "org", "org_type"]))
    }
  })
})
