/**
 * Network enrichment through the writer (issue 15), on the real data set
 * (`@ip-location-db/asn`, NetworkLookup.layerWith()) and PostgreSQL: each session's first-touch
 * view stores its network (asn, org, org_type, the flags, proxy_type, response_tier) on
 * `session_fingerprints`; pageviews and sessions are rolled up by org_type; and a site's
 * `datacenterTraffic` setting (count | flag | exclude) decides how datacenter traffic counts.
 *
 * Addresses (checked against the data set by `spoolway network lookup`):
 * - 104.131.0.1: AS14061 DigitalOcean, LLC — hosting (a datacenter);
 * - 73.0.0.1: AS7922 Comcast Cable Communications, LLC — isp;
 * - 2003::1: AS3320 Deutsche Telekom AG — isp, IPv6;
 * - 5.255.255.5: AS13238 YANDEX LLC — an AS no rule classifies (`unknown`);
 * - 13.0.3.232: public, in no published range — every field null.
 */
import { randomUUID } from "node:crypto"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type DatacenterTraffic, hashKey } from "../src/domain/Site.ts"
import { Domains } from "../src/layers/Domains.ts"
import { NetworkLookup } from "../src/layers/NetworkLookup.ts"
import { SiteStore } from "../src/layers/SiteStore.ts"
import { cleanupKeys, eventEnvelope, makeWriter, metricsOf, query, streamKeys, viewEnvelope, writerTestLayer, xadd } from "./writerSupport.ts"

const DATACENTER = "104.131.0.1"
const ISP = "73.0.0.1"
const ISP_V6 = "2003::1"
const UNKNOWN_ORG = "5.255.255.5"
const NO_RANGE = "13.0.3.232"

const NETWORK_COLUMNS = `asn::int AS asn, org, org_type, is_datacenter, is_vpn, is_government, is_tor, proxy_type, response_tier`

const network = (sessionId: string) =>
  Effect.map(
    query<Record<string, unknown>>(`SELECT ${NETWORK_COLUMNS}, is_bot FROM session_fingerprints WHERE session_id = $1`, [sessionId]),
    (rows) => rows[0]
  )

/** the network columns of a session's visit */
const visitNetwork = (sessionId: string) =>
  Effect.map(
    query<Record<string, unknown>>(`SELECT ${NETWORK_COLUMNS}, is_bot FROM visits WHERE session_id = $1`, [sessionId]),
    (rows) => rows[0]
  )

const hosting = {
  asn: 14061,
  org: "DigitalOcean, LLC",
  org_type: "hosting",
  is_datacenter: true,
  is_vpn: false,
  is_government: false,
  is_tor: null,
  proxy_type: "hosting",
  response_tier: "flag"
}
const comcast = {
  asn: 7922,
  org: "Comcast Cable Communications, LLC",
  org_type: "isp",
  is_datacenter: false,
  is_vpn: false,
  is_government: false,
  is_tor: null,
  proxy_type: null,
  response_tier: "allow"
}
const nothing = {
  asn: null,
  org: null,
  org_type: null,
  is_datacenter: null,
  is_vpn: null,
  is_government: null,
  is_tor: null,
  proxy_type: null,
  response_tier: null
}

/** A site with the given setting, the writer's tenant table reloaded. */
const siteWith = (name: string, datacenterTraffic?: DatacenterTraffic) =>
  Effect.gen(function*() {
    const store = yield* SiteStore
    const hostname = `${name}-${randomUUID().slice(0, 8)}.example.com`
    const site = yield* store.add({
      hostname,
      aliases: [],
      corp: undefined,
      timezone: "UTC",
      origins: null,
      datacenterTraffic,
      writeKeyHash: hashKey(`sw_pub_${hostname}`),
      serverKeyHash: hashKey(`sw_sec_${hostname}`)
    }).pipe(Effect.orDie)
    yield* Effect.flatMap(Domains, (d) => d.refresh).pipe(Effect.orDie)
    return { id: site.id, hostname, origin: `https://${hostname}`, datacenterTraffic: site.datacenterTraffic }
  })

const at = (second: number) => new Date(Date.parse("2026-06-20T10:00:00.000Z") + second * 1000).toISOString()

const botFlags = (ids: ReadonlyArray<string>) =>
  Effect.map(
    query<{ id: string; is_bot: boolean }>(`SELECT id::text AS id, is_bot FROM raw_events WHERE id = ANY($1::uuid[])`, [ids]),
    (rows) => Object.fromEntries(rows.map((r) => [r.id, r.is_bot]))
  )

const TestLayer = SiteStore.layer.pipe(
  Layer.provideMerge(writerTestLayer(undefined, { network: Layer.orDie(NetworkLookup.layerWith()) }))
)

layer(TestLayer, { excludeTestServices: true, timeout: "60 seconds" })("network enrichment in the writer", (it) => {
  it.effect("a datacenter, an ISP, IPv6, an unclassified AS and an address in no range: stored on the session's first touch, rolled up by org_type", () =>
    Effect.gen(function*() {
      const keys = streamKeys("network")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* siteWith("network")
      const edge = { headers: { origin: site.origin } }
      const session = (name: string) => `net-${name}-${site.id}`
      const view = (name: string, ip: string, second: number) =>
        viewEnvelope({ receivedAt: at(second), edge: { ...edge, ip }, payload: { sessionId: session(name) } })
      yield* xadd(keys.streamKey, [
        view("dc", DATACENTER, 1),
        view("isp", ISP, 2),
        view("v6", ISP_V6, 3),
        view("yandex", UNKNOWN_ORG, 4),
        view("none", NO_RANGE, 5),
        // first touch wins: the session's later view from a datacenter changes nothing
        view("isp", DATACENTER, 6),
        // a non-view event is not looked up on a `flag` site: nothing changes for it
        eventEnvelope({ receivedAt: at(7), edge: { ...edge, ip: DATACENTER }, payload: { eventType: "click", sessionId: session("isp") } })
      ])
      const writer = yield* makeWriter({ ...keys, consumer: "net-a", batchSize: 100 })
      yield* writer.drain

      assert.strictEqual(site.datacenterTraffic, "flag")
      assert.deepStrictEqual(yield* network(session("dc")), { ...hosting, is_bot: false })
      assert.deepStrictEqual(yield* network(session("isp")), { ...comcast, is_bot: false })
      assert.deepStrictEqual(yield* network(session("v6")), {
        ...comcast,
        asn: 3320,
        org: "Deutsche Telekom AG",
        is_bot: false
      })
      assert.deepStrictEqual(yield* network(session("yandex")), {
        ...comcast,
        asn: 13238,
        org: "YANDEX LLC",
        org_type: "unknown",
        is_bot: false
      })
      assert.deepStrictEqual(yield* network(session("none")), { ...nothing, is_bot: false })
      // the visits carry their entry view's network
      assert.deepStrictEqual(yield* visitNetwork(session("dc")), { ...hosting, is_bot: false })
      assert.deepStrictEqual(yield* visitNetwork(session("isp")), { ...comcast, is_bot: false })
      assert.deepStrictEqual(yield* visitNetwork(session("v6")), { ...comcast, asn: 3320, org: "Deutsche Telekom AG", is_bot: false })
      assert.deepStrictEqual(yield* visitNetwork(session("none")), { ...nothing, is_bot: false })
      // the raw IP is stored nowhere
      const [ipHits] = yield* query<{ n: number }>(
        `SELECT count(*)::int AS n FROM session_fingerprints f
         WHERE f.domain_id = $1 AND row_to_json(f)::text ~ '104\\.131\\.0\\.1|73\\.0\\.0\\.1|2003::1'`,
        [site.id]
      )
      assert.strictEqual(ipHits!.n, 0)

      const metrics = yield* metricsOf(site.id)
      const by = (metric: string, dimension: string) =>
        Object.fromEntries(
          Object.entries(metrics)
            .filter(([k]) => k.startsWith(`${metric}|day|${dimension}|`))
            .map(([k, v]) => [k.split("|")[3]!, v])
        )
      assert.deepStrictEqual(by("sessions", "org_type"), { hosting: 1, isp: 2, unknown: 1, "∅": 1 })
      assert.deepStrictEqual(by("pageviews", "org_type"), { hosting: 2, isp: 2, unknown: 1, "∅": 1 })
      // no asn rollup (hundreds of values per batch): the query API reads it from visits
      assert.deepStrictEqual(by("sessions", "asn"), {})
      assert.strictEqual(metrics["bot_events|day|total|∅"] ?? 0, 0)
    }))

  it.effect("datacenterTraffic: count and flag count datacenter traffic as human (response_tier allow / flag); exclude counts it as bot events", () =>
    Effect.gen(function*() {
      const keys = streamKeys("datacenter")
      yield* cleanupKeys(keys.streamKey)
      const sites = {
        count: yield* siteWith("dc-count", "count"),
        flag: yield* siteWith("dc-flag"),
        exclude: yield* siteWith("dc-exclude", "exclude")
      }
      assert.deepStrictEqual(Object.values(sites).map((s) => s.datacenterTraffic), ["count", "flag", "exclude"])
      /** per site: a session from a datacenter (a view, then a click from an ISP address), a
       * human session with one click sent from a datacenter, and a plain human session */
      const workload = (site: typeof sites.count) => {
        const edge = { headers: { origin: site.origin } }
        const id = (name: string) => `dc-${name}-${site.id}`
        const events = {
          dcView: viewEnvelope({ receivedAt: at(1), edge: { ...edge, ip: DATACENTER }, payload: { sessionId: id("dc") } }),
          dcClick: eventEnvelope({ receivedAt: at(2), edge: { ...edge, ip: ISP }, payload: { eventType: "click", sessionId: id("dc") } }),
          humanView: viewEnvelope({ receivedAt: at(3), edge: { ...edge, ip: ISP }, payload: { sessionId: id("human") } }),
          humanDcClick: eventEnvelope({
            receivedAt: at(4),
            edge: { ...edge, ip: DATACENTER },
            payload: { eventType: "click", sessionId: id("human") }
          }),
          otherView: viewEnvelope({ receivedAt: at(5), edge: { ...edge, ip: ISP_V6 }, payload: { sessionId: id("other") } })
        }
        return { id, events }
      }
      const loads = { count: workload(sites.count), flag: workload(sites.flag), exclude: workload(sites.exclude) }
      yield* xadd(keys.streamKey, Object.values(loads).flatMap((l) => Object.values(l.events)))
      const writer = yield* makeWriter({ ...keys, consumer: "dc-a", batchSize: 100 })
      yield* writer.drain

      for (const setting of ["count", "flag", "exclude"] as const) {
        const { events, id } = loads[setting]
        const flags = yield* botFlags(Object.values(events).map((e) => e.eventId))
        const excluded = setting === "exclude"
        assert.deepStrictEqual(flags, {
          [events.dcView.eventId]: excluded,
          // its session started from a datacenter
          [events.dcClick.eventId]: excluded,
          [events.humanView.eventId]: false,
          // its own address is a datacenter's
          [events.humanDcClick.eventId]: excluded,
          [events.otherView.eventId]: false
        }, setting)
        assert.deepStrictEqual(
          yield* network(id("dc")),
          { ...hosting, response_tier: setting === "count" ? "allow" : "flag", is_bot: excluded },
          setting
        )
        assert.deepStrictEqual(yield* network(id("human")), { ...comcast, is_bot: false }, setting)
        assert.deepStrictEqual(
          yield* visitNetwork(id("dc")),
          { ...hosting, response_tier: setting === "count" ? "allow" : "flag", is_bot: excluded },
          setting
        )
        // a visit with one bot event is a bot's visit (visits.is_bot: or)
        assert.deepStrictEqual(yield* visitNetwork(id("human")), { ...comcast, is_bot: excluded }, setting)

        const metrics = yield* metricsOf(sites[setting].id)
        assert.deepStrictEqual(
          {
            pageviews: metrics["pageviews|day|total|∅"] ?? 0,
            sessions: metrics["sessions|day|total|∅"] ?? 0,
            events: metrics["events|day|total|∅"] ?? 0,
            botEvents: metrics["bot_events|day|total|∅"] ?? 0,
            hostingSessions: metrics["sessions|day|org_type|hosting"] ?? 0
          },
          excluded
            ? { pageviews: 2, sessions: 2, events: 2, botEvents: 3, hostingSessions: 0 }
            : { pageviews: 3, sessions: 3, events: 5, botEvents: 0, hostingSessions: 1 },
          setting
        )
      }
    }))

  it.effect("a setting changed with SiteStore.configure reaches the writer's tenant table", () =>
    Effect.gen(function*() {
      const site = yield* siteWith("dc-configure")
      const store = yield* SiteStore
      const domains = yield* Domains
      assert.strictEqual(domains.datacenterTraffic!(site.id), "flag")
      const updated = yield* store.configure(site.id, { datacenterTraffic: "exclude" }).pipe(Effect.orDie)
      assert.strictEqual(updated.datacenterTraffic, "exclude")
      yield* domains.refresh.pipe(Effect.orDie)
      assert.strictEqual(domains.datacenterTraffic!(site.id), "exclude")
      // a domain without a site, and no tenant: the default
      assert.strictEqual(domains.datacenterTraffic!(null), "flag")
      assert.strictEqual(domains.datacenterTraffic!(site.id + 100_000), "flag")
    }))
})
