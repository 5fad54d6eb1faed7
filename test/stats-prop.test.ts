/**
 * Stats query API, property: a random history — events of five client sessions (views on four
 * pages, clicks, conversions with values) from two addresses (two visitors, two countries),
 * each delivered 1–3 times in a random order, written by the real writer in random batch sizes
 * with two transactions in flight — answers every metric of the API (visit queries, event
 * queries, breakdowns by page and by country) as a reference computed here from the distinct
 * events says.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { InvalidQuery, parseQuery } from "../src/domain/StatsQuery.ts"
import { runQuery } from "../src/programs/Stats.ts"
import { deliveries, historyEvent, historyOf, type HistoryEvent, int, IPS, T0, writeForNewSite } from "./support/history.ts"
import { eventEnvelope, viewEnvelope, writerTestLayer } from "./writerSupport.ts"

const COUNTRY = ["GB", "SE"] as const
const SESSIONS = 5
/** session → address: sessions 0, 2, 4 share visitor 0; 1, 3 visitor 1 */
const ipOf = (session: number) => session % 2

const History = historyOf(SESSIONS, {
  /** 0–5 view, 6 click, 7 conversion */
  kind: int(0, 7),
  value: int(0, 50)
})

interface Event extends HistoryEvent {
  readonly type: "view" | "click" | "conversion"
  readonly value: number
}

const eventsOf = (history: typeof History.Type): Array<Event> =>
  history.map((item) => ({
    ...historyEvent(item),
    type: item.kind <= 5 ? "view" : item.kind === 6 ? "click" : "conversion",
    value: item.value
  }))

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d

interface Group {
  readonly events: ReadonlyArray<Event>
}

/** The reference: every metric from the distinct events (visits = sessions). */
const metricsOf = (all: ReadonlyArray<Event>, { events }: Group, visitMode: boolean) => {
  const sessions = [...new Set(events.map((e) => e.session))]
  const whole = (s: number) => all.filter((e) => e.session === s)
  // a visitor: the address of a session with a view (the visitor id), else the session itself
  const visitor = (s: number) => (whole(s).some((e) => e.type === "view") ? `ip${ipOf(s)}` : `s${s}`)
  const visitors = new Set(sessions.map(visitor)).size
  const counted = visitMode ? sessions.flatMap(whole) : events
  const pageviews = counted.filter((e) => e.type === "view").length
  const bounces = sessions.filter((s) => whole(s).filter((e) => e.type === "view").length <= 1 && whole(s).every((e) => e.type === "view"))
  const durations = sessions.map((s) => (Math.max(...whole(s).map((e) => e.at)) - Math.min(...whole(s).map((e) => e.at))) / 1000)
  const conversions = counted.filter((e) => e.type === "conversion")
  const converted = new Set(sessions.filter((s) => events.some((e) => e.session === s && e.type === "conversion")).map(visitor)).size
  return {
    visitors,
    visits: sessions.length,
    pageviews,
    views_per_visit: sessions.length === 0 ? 0 : round(pageviews / sessions.length, 2),
    bounce_rate: sessions.length === 0 ? 0 : round((100 * bounces.length) / sessions.length, 1),
    visit_duration: sessions.length === 0 ? 0 : Math.round(durations.reduce((a, b) => a + b, 0) / sessions.length),
    events: counted.length,
    conversions: conversions.length,
    conversion_rate: visitors === 0 ? 0 : round((100 * converted) / visitors, 1),
    revenue: conversions.reduce((a, e) => a + e.value, 0)
  } as Record<string, number>
}

const streamOf = (events: ReadonlyArray<Event>, tag: string, origin: string) =>
  deliveries(events).map((e) => {
    const input = {
      eventId: e.id,
      receivedAt: new Date(e.at).toISOString(),
      edge: { headers: { origin }, ip: IPS[ipOf(e.session)]! }
    }
    const sessionId = `${tag}-s${e.session}`
    if (e.type === "view") return viewEnvelope({ ...input, payload: { sessionId, pageUrl: `${origin}${e.page}` } })
    if (e.type === "click") return eventEnvelope({ ...input, payload: { sessionId, eventType: "click", pageUrl: `${origin}${e.page}` } })
    return eventEnvelope({
      ...input,
      kind: "conversion",
      payload: { sessionId, eventType: "conversion", pageUrl: `${origin}${e.page}`, metadata: { value: e.value, currency: "EUR" } }
    })
  })

const VISIT_METRICS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"]
const ALL_METRICS = [...VISIT_METRICS, "conversions", "conversion_rate", "revenue"]

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("stats query, property", (it) => {
  it.effect.prop(
    "random histories with duplicates and reordering: every metric equals the reference",
    { history: History, batchSize: int(1, 6) },
    ({ batchSize, history }) =>
      Effect.gen(function*() {
        const events = eventsOf(history)
        const tag = `q${Math.random().toString(36).slice(2, 8)}`
        const site = yield* writeForNewSite("sprop", batchSize, (origin) => streamOf(events, tag, origin))

        const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "UTC" }
        const ask = (body: Record<string, unknown>) => {
          const query = parseQuery({ site: site.hostname, date_range: ["2026-05-02", "2026-05-02"], limit: 100, ...body })
          if (query instanceof InvalidQuery) throw new Error(query.message)
          return Effect.map(runQuery(statsSite, query), (a) => a.results)
        }
        const pick = (values: Record<string, number>, metrics: ReadonlyArray<string>) => metrics.map((m) => values[m]!)

        // totals: the visit query, and the event query (every metric) over the same events
        const totals = yield* ask({ metrics: VISIT_METRICS })
        assert.deepStrictEqual(totals, [{ dimensions: [], metrics: pick(metricsOf(events, { events }, true), VISIT_METRICS) }])
        const everything = yield* ask({ metrics: ALL_METRICS })
        assert.deepStrictEqual(everything, [{ dimensions: [], metrics: pick(metricsOf(events, { events }, false), ALL_METRICS) }])

        // by page (event query): the events on each page
        const pageMetrics = ["pageviews", "visitors", "visits", "events", "bounce_rate", "visit_duration", "revenue"]
        const byPage = yield* ask({ metrics: pageMetrics, dimensions: ["page"], order_by: [["page", "asc"]] })
        const pages = [...new Set(events.map((e) => e.page))].sort()
        assert.deepStrictEqual(
          byPage,
          pages.map((page) => ({
            dimensions: [page],
            metrics: pick(metricsOf(events, { events: events.filter((e) => e.page === page) }, false), pageMetrics)
          }))
        )

        // by country (visit query): a session's country is its address's; sessions without a view have none
        const byCountry = yield* ask({ metrics: ["visits", "pageviews", "bounce_rate"], dimensions: ["country"], order_by: [["country", "asc"]] })
        const countryOf = (s: number) => (events.some((e) => e.session === s && e.type === "view") ? COUNTRY[ipOf(s)]! : null)
        const sessions = [...new Set(events.map((e) => e.session))]
        const countries = [...new Set(sessions.map(countryOf))].sort((a, b) => (a === null ? 1 : b === null ? -1 : a < b ? -1 : 1))
        assert.deepStrictEqual(
          byCountry,
          countries.map((country) => ({
            dimensions: [country],
            metrics: pick(
              metricsOf(events, { events: events.filter((e) => countryOf(e.session) === country) }, true),
              ["visits", "pageviews", "bounce_rate"]
            )
          }))
        )

        // a filter: the visits of visitor 0's country, as an event query (page filter) and a visit query
        const filtered = yield* ask({ metrics: ["visits", "pageviews"], filters: [["is", "country", ["GB"]], ["is", "page", ["/p1"]]] })
        const gbP1 = events.filter((e) => countryOf(e.session) === "GB" && e.page === "/p1")
        assert.deepStrictEqual(filtered, [{ dimensions: [], metrics: pick(metricsOf(events, { events: gbP1 }, false), ["visits", "pageviews"]) }])

        // a range that ends in the middle of visits: a visit counts, with all its events, in the
        // range it started in — from the visits' items and from the events alike
        const cut = T0 + 25 * 60_000
        const started = new Set(sessions.filter((s) => Math.min(...events.filter((e) => e.session === s).map((e) => e.at)) < cut))
        const inRange = events.filter((e) => started.has(e.session))
        const range = { date_range: [new Date(T0).toISOString(), new Date(cut).toISOString()] }
        for (const items of [true, false]) {
          const askCut = (body: Record<string, unknown>) => {
            const query = parseQuery({ site: site.hostname, limit: 100, ...range, ...body })
            if (query instanceof InvalidQuery) throw new Error(query.message)
            return Effect.map(runQuery(statsSite, query, { items }), (a) => a.results)
          }
          const cutPages = [...new Set(inRange.map((e) => e.page))].sort()
          assert.deepStrictEqual(
            yield* askCut({ metrics: pageMetrics, dimensions: ["page"], order_by: [["page", "asc"]] }),
            cutPages.map((page) => ({
              dimensions: [page],
              metrics: pick(metricsOf(events, { events: inRange.filter((e) => e.page === page) }, false), pageMetrics)
            })),
            `pages of the visits started before the cut (items: ${items})`
          )
          assert.deepStrictEqual(
            yield* askCut({ metrics: ALL_METRICS }),
            [{ dimensions: [], metrics: pick(metricsOf(events, { events: inRange }, false), ALL_METRICS) }],
            `totals of the visits started before the cut (items: ${items})`
          )
        }
      }),
    { timeout: 300_000, arbitrary: { runs: 20 } }
  )
})
