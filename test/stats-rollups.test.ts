/**
 * Visit rollups (docs/visits.md "Visit rollups"), property: random histories over two days —
 * client sessions whose events come from several daily visitor ids (two addresses × two
 * languages), that span hours and midnight, some turned into bots by a later event, sources
 * from UTM tags — each event delivered 1–3 times in a random order and written by the real
 * writer in random batch sizes with two transactions in flight. Then:
 * - the rollups the writer kept equal a GROUP BY over the stored visits (what migration 0008's
 *   backfill computes), and every visitor seen on two visits is listed in `visitor_visits` with
 *   bounds around its visits' starts;
 * - every query the planner answers from the rollups (totals, hour / day series in UTC and in
 *   Europe/Berlin, breakdowns and filters on one rollup dimension) gives exactly the answer of
 *   the visits path; and visitors on the visits path counted as visits minus the repeated
 *   visitors' surplus equal count(DISTINCT visitor) (other dimensions, several, time buckets).
 * And the planner's choice itself: the rollups only where they are exact, the visits path
 * otherwise (several dimensions, event dimensions, half-hour time zones, ranges not on whole
 * hours, realtime).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Effect, Metric } from "effect"
import { SqlClient } from "effect/sql"
import { InvalidQuery, parseQuery, resolvePeriod, type StatsQuery, VISIT_DIMENSIONS } from "../src/domain/StatsQuery.ts"
import {
  type CompileInput,
  compileQuery,
  lastVisitEventSql,
  queryPath,
  readsVisitEvents,
  rollupDimension,
  sharedVisitsKey
} from "../src/domain/StatsSql.ts"
import { DAILY_ITEM_ROLLUPS_OF_ITEMS_SQL, ITEM_ROLLUPS_OF_ITEMS_SQL, ITEMS_OF_STORED_EVENTS_SQL } from "../src/domain/VisitItems.ts"
import { UPSERT_VISIT_ITEMS } from "../src/layers/PgSinkStatements.ts"
import {
  BOTS_DIMENSION,
  DAILY_ROLLUPS_OF_VISITS_SQL,
  hourSql,
  isRollupDimension,
  LAST_SEEN_OF_VISITS_SQL,
  ROLLUPS_OF_VISITS_SQL
} from "../src/domain/VisitRollups.ts"
import * as Metrics from "../src/layers/Metrics.ts"
import * as Sql from "../src/layers/Sql.ts"
import { arriving, encode, runQuery } from "../src/programs/Stats.ts"
import { deliveries, historyOf, int, IPS, writeForNewSite } from "./support/history.ts"
import { eventEnvelope, GOOGLEBOT, TestDb, viewEnvelope, writerTestLayer } from "./writerSupport.ts"

const T0 = Date.parse("2026-05-01T20:00:00.000Z")
const LANGS = ["en-GB,en;q=0.9", "de-DE,de;q=0.9"] as const
const SOURCES = [null, "newsletter", "google"] as const

const History = historyOf(6, {
  /** 0–4 view, 5 click, 6 bot view */
  kind: int(0, 6),
  ip: int(0, 1),
  lang: int(0, 1),
  source: int(0, 2),
  /** 7-minute steps: 0–400 covers two days from 20:00 UTC */
  step: int(0, 400)
})

const envelopesOf = (history: typeof History.Type, tag: string, origin: string) =>
  deliveries(history.map((item) => ({ item, id: randomUUID(), ranks: item.ranks })))
    .map(({ id, item }) => {
      const source = SOURCES[item.source] ?? null
      const input = {
        eventId: id,
        receivedAt: new Date(T0 + item.step * 7 * 60_000).toISOString(),
        edge: {
          headers: { origin },
          ip: IPS[item.ip]!,
          lang: LANGS[item.lang]!,
          ...(item.kind === 6 ? { ua: GOOGLEBOT } : {})
        }
      }
      const sessionId = `${tag}-s${item.session}`
      const pageUrl = `${origin}/p${item.page}`
      return item.kind === 5
        ? eventEnvelope({ ...input, payload: { sessionId, eventType: "click", pageUrl } })
        : viewEnvelope({
          ...input,
          payload: { sessionId, pageUrl, ...(source === null ? {} : { attribution: { utmSource: source, utmMedium: "email" } }) }
        })
    })

const VISIT_METRICS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"]

/** Queries the planner answers from the rollups (checked below), each asked in both time zones. */
const QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: VISIT_METRICS },
  { metrics: VISIT_METRICS, dimensions: ["time:hour"] },
  { metrics: VISIT_METRICS, dimensions: ["time:day"] },
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["country"] },
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["source"] },
  { metrics: ["visitors", "bounce_rate"], dimensions: ["device"] },
  { metrics: ["visitors", "visits"], dimensions: ["utm_source"] },
  { metrics: ["visitors", "visits"], dimensions: ["time:day", "language"] },
  { metrics: ["visits", "bounce_rate", "visitors"], filters: [["is", "country", ["GB"]]] },
  { metrics: ["visitors"], dimensions: ["source"], filters: [["is_not", "source", [null]]] },
  { metrics: ["visitors", "visits"], dimensions: ["time:hour"], filters: [["contains", "utm_source", ["news"]]] },
  // the Pages page: a visit's exit page moves with its later pageviews
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["entry_page"] },
  { metrics: ["visitors", "visits"], dimensions: ["exit_page"] },
  { metrics: ["visits", "bounce_rate"], dimensions: ["time:day", "exit_page"] },
  { metrics: ["visitors", "bounce_rate"], filters: [["is", "exit_page", ["/p1"]]] },
  // the Network page's bot events: the bots' rows (migration 0018)
  { metrics: ["bot_events"] },
  { metrics: ["bot_events"], dimensions: ["time:hour"] }
]

/**
 * Visit-path queries with visitors that the rollups do not answer: visitors = visits minus the
 * repeated visitors' surplus (StatsSql.ts `visitorsBySurplus`), checked against count(DISTINCT).
 */
const SURPLUS_QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visitors", "visits"], dimensions: ["region"] },
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["exit_page"], filters: [["is_not", "entry_page", ["/p0"]]] },
  { metrics: ["visitors"], dimensions: ["city"] },
  { metrics: VISIT_METRICS, dimensions: ["language"] },
  { metrics: ["visits", "visitors"], dimensions: ["source", "language"] },
  { metrics: ["visitors", "pageviews"], dimensions: ["time:hour", "entry_page"] },
  { metrics: ["visitors", "visit_duration"], dimensions: ["time:day"], filters: [["is", "entry_page", ["/p1", "/p2"]]] },
  { metrics: ["visitors", "visits"], filters: [["contains", "language", ["en"]], ["is_not", "source", [null]]] },
  { metrics: ["visitors"], dimensions: ["entry_page"], filters: [["is", "language", ["nobody"]]] },
  { metrics: ["visitors", "bot_events"], dimensions: ["city"] }
]

/** Content queries (page, hostname, event type) the planner answers from the item rollups. */
const ITEM_QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visitors", "visits", "pageviews", "events", "conversions", "revenue"], dimensions: ["page"] },
  { metrics: ["visitors", "pageviews"], dimensions: ["time:hour", "page"] },
  { metrics: ["visitors", "events"], dimensions: ["time:day", "event_type"] },
  { metrics: ["visits", "visitors", "conversions"], dimensions: ["event_type"], filters: [["is_not", "event_type", ["click"]]] },
  { metrics: ["visitors", "pageviews"], dimensions: ["page"], filters: [["is_not", "page", ["/p0"]]] },
  // filtered by one value only (the Overview once a page is clicked)
  { metrics: ["visitors", "visits", "pageviews"], filters: [["is", "page", ["/p1"]]] },
  { metrics: ["visitors", "events"], dimensions: ["time:day"], filters: [["is", "event_type", ["click"]]] }
]

/** Content queries with more than the item rollups hold: from the visits and their items. */
const ITEM_JOIN_QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"], dimensions: ["page"] },
  { metrics: ["visitors", "visits", "pageviews"], dimensions: ["page"], filters: [["is", "language", ["de"]]] },
  { metrics: ["visitors", "visits", "pageviews", "events", "bot_events"], filters: [["contains", "page", ["1", "2"]]] },
  { metrics: ["visitors", "visits", "pageviews"], dimensions: ["source"], filters: [["is", "page", ["/p1"]]] },
  { metrics: ["visitors", "bot_events"], dimensions: ["event_type"] },
  // bot events alone: the bot visits' items only
  { metrics: ["bot_events"], dimensions: ["page"], filters: [["is_not", "language", ["xx"]]] },
  // a filter naming a page and a visit dimension together: not separable
  { metrics: ["visits", "bounce_rate"], filters: [["or", [["is", "page", ["/p1"]], ["is", "language", ["de"]]]]] }
]

/** Visit figures with a filter on a page or event type: the visits having a matching item (a semi-join). */
const HAVING_QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visitors", "visits"], dimensions: ["time:day", "source"], filters: [["is", "page", ["/p1"]]] },
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["entry_page"], filters: [["is", "page", ["/p1", "/p3"]]] },
  { metrics: ["visit_duration", "visits"], dimensions: ["exit_page"], filters: [["is_not", "page", ["/p0"]], ["is", "language", ["de"]]] },
  { metrics: ["visitors", "bounce_rate"], filters: [["not", ["contains", "page", ["1"]]], ["contains", "page", ["p"]]] },
  { metrics: ["visitors", "visits"], dimensions: ["country"], filters: [["is", "event_type", ["click"]]] }
]

/** The tables of a dashboard page, and filters on a page or an event type under which they share their visits. */
const SHARED_TABLES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["entry_page"], order_by: [["visitors", "desc"]], limit: 3 },
  { metrics: ["visitors", "visits"], dimensions: ["exit_page"], order_by: [["visitors", "desc"]], limit: 3 },
  { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["source"] },
  { metrics: ["visitors"], dimensions: ["country"], order_by: [["visitors", "desc"]] },
  { metrics: ["visits", "visit_duration"], dimensions: ["language", "time:hour"] },
  { metrics: ["bounce_rate", "visit_duration"] },
  // the same dimensions as other tables (in another order): one grouping set each, asked twice
  { metrics: ["visits"], dimensions: ["source"], order_by: [["visits", "asc"]], limit: 2 },
  { metrics: ["visitors", "visit_duration"], dimensions: ["time:hour", "language"] }
]
const SHARED_FILTERS: ReadonlyArray<ReadonlyArray<unknown>> = [
  [["is", "page", ["/p1"]]],
  [["is", "page", ["/p0", "/p2"]], ["is_not", "country", ["SE"]]],
  [["is", "event_type", ["click"]]]
]

/** Content queries only the events answer: hostnames (not kept per visit), two content dimensions. */
const EVENT_QUERIES: ReadonlyArray<Record<string, unknown>> = [
  { metrics: ["visits", "visitors", "pageviews"], dimensions: ["hostname"] },
  { metrics: ["visitors", "events"], dimensions: ["page"], filters: [["is", "event_type", ["click"]]] },
  // the dashboard's Events page under a page filter
  { metrics: ["visitors", "events", "conversions", "revenue"], dimensions: ["event_type"], filters: [["is", "page", ["/p1"]]] },
  { metrics: ["bot_events", "events"], dimensions: ["event_type"], filters: [["contains", "page", ["2"]]] }
]

const inputOf = (query: StatsQuery, timezone: string, nowMs: number): CompileInput => {
  const period = resolvePeriod(query.dateRange, nowMs, timezone, null)
  if (period instanceof InvalidQuery) throw new Error(period.message)
  return {
    siteId: 1,
    timezone,
    period,
    active: query.dateRange.kind === "realtime",
    metrics: query.metrics,
    dimensions: query.dimensions,
    filters: query.filters,
    orderBy: query.orderBy,
    page: null
  }
}

const parse = (body: Record<string, unknown>): StatsQuery => {
  const query = parseQuery({ site: "x.example", limit: 1000, ...body })
  if (query instanceof InvalidQuery) throw new Error(query.message)
  return query
}

/** How many rows two queries' results differ by (as multisets: either way's EXCEPT ALL). */
const rowsDiffering = (kept: string, computed: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<{ n: number }>(
      `SELECT count(*)::int AS n FROM ((${kept} EXCEPT ALL ${computed}) UNION ALL (${computed} EXCEPT ALL ${kept})) d`
    )
    return rows[0]!.n
  })

/**
 * How many rows a site's kept visit rollups differ by from a GROUP BY over its stored visits
 * (rows that netted out to zero aside), hourly and daily.
 */
const rollupDifferences = (siteId: number) =>
  Effect.gen(function*() {
    const differing = (table: string, bucket: string, computedSql: string) => {
      const columns = `dim, ${bucket}, value, visits::bigint, pageviews::bigint, events::bigint, bounces::bigint, duration::numeric`
      return rowsDiffering(
        `SELECT ${columns} FROM ${table} WHERE site_id = ${siteId}
          AND (visits <> 0 OR pageviews <> 0 OR events <> 0 OR bounces <> 0 OR duration <> 0)`,
        `SELECT ${columns} FROM (${computedSql}) x WHERE site_id = ${siteId}`
      )
    }
    return {
      hourly: yield* differing("visit_rollups", "hour", ROLLUPS_OF_VISITS_SQL),
      daily: yield* differing("visit_rollups_daily", "day", DAILY_ROLLUPS_OF_VISITS_SQL)
    }
  })

/**
 * How many (kind, hour) groups of a site's stored visits have a later last event than their
 * total / bots rollup row's `last_seen` (missing or NULL counts as lower).
 */
const lastSeenBelowVisits = (siteId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql.unsafe<{ n: number }>(`
      SELECT count(*)::int AS n FROM (${LAST_SEEN_OF_VISITS_SQL}) m
      LEFT JOIN visit_rollups r ON r.site_id = m.site_id AND r.dim = m.dim AND r.hour = m.hour AND r.value IS NULL
      WHERE m.site_id = ${siteId} AND (r.last_seen IS NULL OR r.last_seen < m.last_seen)`)
    return row!.n
  })

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("visit rollups, property", (it) => {
  it.effect.prop(
    "random histories: the kept rollups equal a GROUP BY over visits, and every rollup answer equals the visits path's",
    { history: History, batchSize: int(1, 6) },
    ({ batchSize, history }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tag = `r${Math.random().toString(36).slice(2, 8)}`
        const site = yield* writeForNewSite("rprop", batchSize, (origin) => envelopesOf(history, tag, origin))

        // the kept rollups = a GROUP BY over the stored visits, hourly and daily
        assert.deepStrictEqual(yield* rollupDifferences(site.domainId), { hourly: 0, daily: 0 }, "kept rollups differ from the visits'")
        // each hour's total / bots row bounds its visits' last events from above
        assert.strictEqual(yield* lastSeenBelowVisits(site.domainId), 0, "a rollup row's last_seen is below one of its visits' last events")
        // the visits' contents = a GROUP BY over the stored events, their rollups = one over the
        // contents and visits (migration 0010's backfill), and each visit's conversions its items'
        const itemColumns = "session_id, dim, value, pageviews::bigint, events::bigint, conversions::bigint, revenue::numeric"
        assert.strictEqual(
          yield* rowsDiffering(
            `SELECT ${itemColumns} FROM visit_items WHERE site_id = ${site.domainId}`,
            `SELECT ${itemColumns} FROM (${ITEMS_OF_STORED_EVENTS_SQL}) x WHERE site_id = ${site.domainId}`
          ),
          0,
          "kept visit items differ from the events'"
        )
        // each item carries its visit's start hour, however late the visit's earliest event came
        const [staleHours] = yield* sql.unsafe<{ n: number }>(`
          SELECT count(*)::int AS n FROM visit_items i LEFT JOIN visits v ON v.site_id = i.site_id AND v.session_id = i.session_id
          WHERE i.site_id = ${site.domainId} AND i.hour IS DISTINCT FROM ${hourSql("v.started_at")}`)
        assert.strictEqual(staleHours!.n, 0, "an item's hour differs from its visit's start hour")
        for (const [table, bucket, computed] of [["item_rollups", "hour", ITEM_ROLLUPS_OF_ITEMS_SQL], ["item_rollups_daily", "day", DAILY_ITEM_ROLLUPS_OF_ITEMS_SQL]] as const) {
          const columns = `dim, ${bucket}, value, visits::bigint, pageviews::bigint, events::bigint, conversions::bigint, revenue::numeric`
          assert.strictEqual(
            yield* rowsDiffering(
              `SELECT ${columns} FROM ${table} WHERE site_id = ${site.domainId} AND (visits <> 0 OR pageviews <> 0 OR events <> 0 OR conversions <> 0 OR revenue <> 0)`,
              `SELECT ${columns} FROM (${computed}) x WHERE site_id = ${site.domainId}`
            ),
            0,
            `kept ${table} differ from the items'`
          )
        }
        // every visitor id on two or more visits is listed, its visits' starts within the bounds
        const unlisted = yield* sql.unsafe<{ n: number }>(`
          SELECT count(*)::int AS n FROM visits v
          WHERE v.site_id = ${site.domainId} AND v.visitor_id_daily IS NOT NULL
            AND EXISTS (SELECT 1 FROM visits o WHERE o.site_id = v.site_id AND o.visitor_id_daily = v.visitor_id_daily
                        AND o.session_id <> v.session_id)
            AND NOT EXISTS (SELECT 1 FROM visitor_visits x WHERE x.site_id = v.site_id AND x.visitor_id_daily = v.visitor_id_daily
                            AND x.visits > 1 AND v.started_at BETWEEN x.first_start AND x.last_start)`)
        assert.strictEqual(unlisted[0]!.n, 0, "a repeated visitor is missing from visitor_visits")

        for (const timezone of ["UTC", "Europe/Berlin"]) {
          const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone }
          for (const body of QUERIES) {
            const query = parse({ ...body, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] })
            assert.isDefined(rollupDimension(inputOf(query, timezone, T0)), `${JSON.stringify(body)} is answered from the rollups`)
            const fromRollups = yield* runQuery(statsSite, query)
            const fromVisits = yield* runQuery(statsSite, query, { rollups: false })
            assert.deepStrictEqual(fromRollups.results, fromVisits.results, `${timezone} ${JSON.stringify(body)}`)
          }
          for (const body of SURPLUS_QUERIES) {
            const query = parse({ ...body, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] })
            assert.isUndefined(rollupDimension(inputOf(query, timezone, T0)), `${JSON.stringify(body)} is not a rollup query`)
            const bySurplus = yield* runQuery(statsSite, query)
            const byDistinct = yield* runQuery(statsSite, query, { rollups: false })
            assert.deepStrictEqual(bySurplus.results, byDistinct.results, `${timezone} ${JSON.stringify(body)}`)
          }
          // content queries: the item rollups, the visits' items and the events give the same answers
          const pathSets = [
            [ITEM_QUERIES, "item-rollups"],
            [ITEM_JOIN_QUERIES, "items"],
            [HAVING_QUERIES, "visits"],
            [EVENT_QUERIES, "events"]
          ] as const
          for (const [bodies, path] of pathSets) {
            for (const body of bodies) {
              const query = parse({ ...body, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] })
              assert.strictEqual(queryPath(inputOf(query, timezone, T0)).path, path, JSON.stringify(body))
              const answer = (yield* runQuery(statsSite, query)).results
              if (path !== "items" && path !== "events") {
                assert.deepStrictEqual(answer, (yield* runQuery(statsSite, query, { rollups: false })).results)
              }
              assert.deepStrictEqual(
                answer,
                (yield* runQuery(statsSite, query, { rollups: false, items: false })).results,
                `${timezone} ${JSON.stringify(body)}`
              )
            }
          }
        }
        // totals with bot events (two statements: the other metrics, then the bot visits alone) = one statement
        for (const body of [
          { metrics: [...VISIT_METRICS, "bot_events"] },
          { metrics: ["visitors", "bot_events"], filters: [["is", "country", ["GB"]]], compare: "previous_period" },
          { metrics: ["bot_events", "visits"], filters: [["is", "page", ["/p1"]]] },
          // filtered by one page: the item rollups' metrics and the visits' apart (bounce rate, duration)
          { metrics: ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], filters: [["is", "page", ["/p1"]]], compare: "previous_period" },
          { metrics: ["visitors", "pageviews", "bounce_rate"], dimensions: ["time:hour"], filters: [["is", "page", ["/p2"]]] },
          { metrics: ["visits", "bot_events", "bounce_rate"], filters: [["is", "event_type", ["click"]]] }
        ]) {
          const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "Europe/Berlin" }
          const query = parse({ ...body, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] })
          const split = yield* runQuery(statsSite, query)
          assert.deepStrictEqual(split, yield* runQuery(statsSite, query, { rollups: false }), JSON.stringify(body))
        }
        // a dashboard page's tables under a filter on a page or an event type, asked at once: one statement reads the
        // filtered visits for all of them (StatsSql.ts compileSharedVisits), with each table's answer of its own statement
        for (const filters of SHARED_FILTERS) {
          const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "Europe/Berlin" }
          const queries = SHARED_TABLES.map((body) => parse({ ...body, filters, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] }))
          for (const query of queries) assert.isDefined(sharedVisitsKey(inputOf(query, "Europe/Berlin", T0)), JSON.stringify(query))
          const counts = Effect.all([Metric.value(Metrics.sharedQueries), Metric.value(Metrics.sharedStatements)])
          const [queriesBefore, statementsBefore] = yield* counts
          const together = yield* Effect.all(queries.map((query) => runQuery(statsSite, query)), { concurrency: "unbounded" })
          const [queriesAfter, statementsAfter] = yield* counts
          assert.deepStrictEqual([queriesAfter.count - queriesBefore.count, statementsAfter.count - statementsBefore.count], [queries.length, 1], "one shared statement")
          for (const [i, query] of queries.entries()) {
            assert.deepStrictEqual(together[i]!.results, (yield* runQuery(statsSite, query, { rollups: false })).results, JSON.stringify(query))
          }
          // as a busy server sees a page's requests: received at once, their queries ready one after the other, 9 ms
          // apart (each request authenticated, read, checked: `arriving`): the statement waits for those on their way
          // (more than the 5 ms of quiet it waits for otherwise; well within the 50 ms it waits at most)
          const stagger = queries.slice(0, 3)
          const [staggeredQueries, staggeredStatements] = yield* counts
          const staggered = yield* Effect.all(
            stagger.map((query, i) => Effect.andThen(arriving(Effect.sleep(`${i * 9} millis`)), runQuery(statsSite, query))),
            { concurrency: "unbounded" }
          )
          const [afterQueries, afterStatements] = yield* counts
          assert.deepStrictEqual(
            [afterQueries.count - staggeredQueries.count, afterStatements.count - staggeredStatements.count],
            [stagger.length, 1],
            "one shared statement, staggered"
          )
          for (const [i, answer] of staggered.entries()) assert.deepStrictEqual(answer.results, together[i]!.results)
        }
        // a pattern JavaScript takes and PostgreSQL refuses (a named group): the shared statement fails, and each
        // of its queries with the 400 a query alone gets
        const refused = yield* Effect.all(
          SHARED_TABLES.map((body) =>
            Effect.flip(runQuery(
              { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "UTC" },
              parse({ ...body, filters: [["matches", "page", ["(?<n>/p1)"]]], site: site.hostname, date_range: ["2026-05-02", "2026-05-02"] })
            ))
          ),
          { concurrency: "unbounded" }
        )
        for (const error of refused) assert.strictEqual(error._tag, "InvalidQuery")
        // a range that cuts visits: each counts, with everything it did, in the range it started in — on every path
        // (also inside hours: the contents' hour bounds then take in the whole first hour, the visits' starts decide)
        const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "UTC" }
        // (the events path: its events run until the period's visits' last event, as the rollups bound it)
        for (const range of [["2026-05-02T01:00:00Z", "2026-05-02T09:00:00Z"], ["2026-05-02T01:30:00Z", "2026-05-02T09:45:00Z"]]) {
          for (const body of [...ITEM_QUERIES, ...ITEM_JOIN_QUERIES, ...HAVING_QUERIES, ...EVENT_QUERIES, { metrics: VISIT_METRICS }]) {
            const query = parse({ ...body, site: site.hostname, date_range: range })
            const answer = (yield* runQuery(statsSite, query)).results
            assert.deepStrictEqual(answer, (yield* runQuery(statsSite, query, { rollups: false })).results, `${range} ${JSON.stringify(body)}`)
            assert.deepStrictEqual(
              answer,
              (yield* runQuery(statsSite, query, { rollups: false, items: false })).results,
              `${range} ${JSON.stringify(body)}`
            )
          }
        }
      }),
    { timeout: 300_000, arbitrary: { runs: 25 } }
  )

  it.effect("a visit's later batches: a new exit page moves the visit between exit page rows alone, a second pageview its bounce on every row", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const sessionId = `exit-${Math.random().toString(36).slice(2, 8)}`
      const view = (origin: string, minute: number, path: string) =>
        viewEnvelope({
          receivedAt: new Date(T0 + minute * 60_000).toISOString(),
          edge: { headers: { origin } },
          payload: { sessionId, pageUrl: `${origin}${path}` }
        })
      // batches of two: [/a] alone would bounce; [/a, /b] then [/c, /c] (exit page moves, nothing
      // else), then [/d] (exit page moves again)
      const site = yield* writeForNewSite("rexit", 2, (origin) => [
        view(origin, 0, "/a"),
        view(origin, 1, "/b"),
        view(origin, 2, "/c"),
        view(origin, 3, "/c"),
        view(origin, 4, "/d")
      ])
      assert.deepStrictEqual(yield* rollupDifferences(site.domainId), { hourly: 0, daily: 0 })
      const exits = yield* sql<{ value: string; visits: number }>`
        SELECT value, sum(visits)::int AS visits FROM visit_rollups
        WHERE site_id = ${site.domainId} AND dim = 'exit_page' GROUP BY value HAVING sum(visits) <> 0`
      assert.deepStrictEqual(exits, [{ value: "/d", visits: 1 }])
      const single = yield* writeForNewSite("rbounce", 1, (origin) => [view(origin, 0, "/a"), view(origin, 1, "/a")])
      assert.deepStrictEqual(yield* rollupDifferences(single.domainId), { hourly: 0, daily: 0 })
    }))

  it.effect("a visit's later batches: a late earlier click moves its start to the hour before (entry and bounce unchanged), a late earlier view its entry alone", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const sessionId = `late-${Math.random().toString(36).slice(2, 8)}`
      const at = (minute: number) => new Date(T0 + minute * 60_000).toISOString()
      const view = (origin: string, minute: number, path: string) =>
        viewEnvelope({ receivedAt: at(minute), edge: { headers: { origin } }, payload: { sessionId, pageUrl: `${origin}${path}` } })
      const rowsOf = (siteId: number, dim: string) =>
        sql<{ hour: Date; value: string; visits: number }>`
          SELECT hour, value, sum(visits)::int AS visits FROM visit_rollups
          WHERE site_id = ${siteId} AND dim = ${dim} GROUP BY hour, value HAVING sum(visits) <> 0`
      // [/a, /b] at 20:05 and 20:06, then a click at 19:58: the visit starts in the hour before
      const moved = yield* writeForNewSite("rhour", 2, (origin) => [
        view(origin, 5, "/a"),
        view(origin, 6, "/b"),
        eventEnvelope({ receivedAt: at(-2), edge: { headers: { origin } }, payload: { sessionId, eventType: "click", pageUrl: `${origin}/a` } })
      ])
      assert.deepStrictEqual(yield* rollupDifferences(moved.domainId), { hourly: 0, daily: 0 })
      assert.deepStrictEqual(yield* rowsOf(moved.domainId, "entry_page"), [{ hour: new Date(T0 - 3_600_000), value: "/a", visits: 1 }])
      // [/a, /b] at 20:10 and 20:11, then /c at 20:08: the entry moves to /c, in the same hour
      const entry = yield* writeForNewSite("rentry", 2, (origin) => [view(origin, 10, "/a"), view(origin, 11, "/b"), view(origin, 8, "/c")])
      assert.deepStrictEqual(yield* rollupDifferences(entry.domainId), { hourly: 0, daily: 0 })
      assert.deepStrictEqual(yield* rowsOf(entry.domainId, "entry_page"), [{ hour: new Date(T0), value: "/c", visits: 1 }])
    }))
})

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("the start index (migrations 0011, 0015, 0017)", (it) => {
  it.effect("a breakdown by first-touch dimensions, with filters on them, reads the start index alone (index-only scan)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // every visit dimension but the exit page (it changes with most events), by itself and under a filter on another
      const firstTouch = VISIT_DIMENSIONS.filter((d) => d !== "exit_page")
      const bodies = [
        ...firstTouch.filter((d) => !isRollupDimension(d)).map((d) => ({ dimensions: [d] })),
        ...firstTouch.map((d, i) => ({ dimensions: [d], filters: [["is", firstTouch[(i + 1) % firstTouch.length]!, ["x"]]] }))
      ]
      for (const body of bodies) {
        const dimension = JSON.stringify(body)
        const query = parse({ site: "x.example", metrics: ["visitors", "visits"], date_range: "30d", ...body })
        const { params, text } = compileQuery({ ...inputOf(query, "UTC", Date.now()), page: { limit: 11, offset: 0 } })
        // no sequential, bitmap or plain index scans: the plan reads visits by an index-only scan,
        // or (a column the index lacks) falls back to the disabled sequential scan
        const plan = yield* sql.withTransaction(
          Effect.andThen(
            sql.unsafe("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_indexscan', 'off', true)"),
            sql.unsafe<Record<string, string>>(`EXPLAIN ${text}`, params.map(encode) as Array<string>)
          )
        )
        const lines = plan.map((row) => Object.values(row)[0]).join("\n")
        assert.match(lines, /Index Only Scan using visits_site_started_idx on visits v\b/, `${dimension}: ${lines}`)
      }
    }))

  it.effect("the start index carries the session id (0017): under a filter on a page, the period's visits join the page's sessions without their rows", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // which plan reads a page's visits depends on how common the page is (a rare one: its
      // sessions by key; a common one: the period's visits hashed against them — bench/README.md,
      // Dashboard): the index must hold what the second reads
      const [row] = yield* sql<{ def: string }>`SELECT pg_get_indexdef('visits_site_started_idx'::regclass) AS def`
      const included = /INCLUDE \((.*)\)/.exec(row!.def)?.[1]?.split(", ") ?? []
      for (const column of ["is_bot", "session_id", ...VISIT_DIMENSIONS.filter((d) => d !== "exit_page")]) {
        assert.include(included, column, row!.def)
      }
    }))
})

/** A fixed history of the property's shape (sessions, bots, both visitors and languages, midnight) for the migration tests. */
const FIXED_HISTORY = Array.from({ length: 40 }, (_, i) => ({
  session: i % 6,
  kind: i % 7,
  page: i % 4,
  ip: (i >> 1) % 2,
  lang: (i >> 2) % 2,
  source: i % 3,
  step: (i * 37) % 400,
  ranks: [(i * 53) % 101]
}))

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("visit rollups, migration", (it) => {
  it.effect("an install upgrading to 0008 and 0009 gets the rollups of its stored visits (backfill)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* TestDb
      const tag = `m${Math.random().toString(36).slice(2, 8)}`
      const site = yield* writeForNewSite("rmig", 3, (origin) => envelopesOf(FIXED_HISTORY, tag, origin))
      const rollups = `SELECT dim, hour, value, visits, pageviews, events, bounces, duration FROM visit_rollups
        WHERE site_id = ${site.domainId} AND (visits <> 0 OR pageviews <> 0 OR events <> 0 OR bounces <> 0 OR duration <> 0)
        ORDER BY dim, hour, value`
      const visitors = `SELECT visitor_id_daily, first_start, last_start FROM visitor_visits
        WHERE site_id = ${site.domainId} AND visits > 1 ORDER BY visitor_id_daily`
      const kept = yield* sql.unsafe(rollups)
      const keptVisitors = yield* sql.unsafe<{ visitor_id_daily: Uint8Array }>(visitors)
      assert.isAbove(kept.length, 10)
      assert.isAbove(keptVisitors.length, 0)

      // the database as it was before 0008 (its visits and events stay), then the migrations
      const daily = `SELECT dim, day, value, visits, pageviews, events, bounces, duration FROM visit_rollups_daily
        WHERE site_id = ${site.domainId} AND (visits <> 0 OR pageviews <> 0 OR events <> 0 OR bounces <> 0 OR duration <> 0)
        ORDER BY dim, day, value`
      const keptDaily = yield* sql.unsafe(daily)
      assert.isAbove(keptDaily.length, 10)
      yield* sql`DROP TABLE visit_rollups, visit_rollups_daily, visitor_visits`
      yield* sql`ALTER TABLE visits DROP COLUMN prev_started_at, DROP COLUMN prev_last_seen_at, DROP COLUMN prev_pageviews,
        DROP COLUMN prev_events, DROP COLUMN prev_engaged, DROP COLUMN prev_is_bot, DROP COLUMN prev_vid_changed,
        DROP COLUMN prev_dims`
      // (0020 adds a column to the table 0008 creates: run again after it)
      yield* sql`DELETE FROM spoolway_migrations WHERE migration_id IN (8, 9, 20)`
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[8, "visit_rollups"], [9, "visit_rollups_daily"], [20, "visit_rollups_last_seen"]])

      // the same rollups as the writer kept, and the same answers as the visits path
      assert.deepStrictEqual(yield* sql.unsafe(rollups), kept)
      assert.deepStrictEqual(yield* sql.unsafe(daily), keptDaily)
      // visitor_visits: the visitors of two or more stored visits (the writer's list may hold more:
      // it keeps a visitor id a visit had before it got a lesser one — a superset is what counts)
      const backfilled = yield* sql.unsafe<{ visitor_id_daily: Uint8Array }>(visitors)
      const repeatedNow = yield* sql.unsafe<{ visitor_id_daily: Uint8Array }>(`
        SELECT visitor_id_daily FROM visits WHERE site_id = ${site.domainId} AND visitor_id_daily IS NOT NULL
        GROUP BY 1 HAVING count(*) > 1 ORDER BY 1`)
      const hex = (rows: ReadonlyArray<{ visitor_id_daily: Uint8Array }>) => rows.map((r) => Buffer.from(r.visitor_id_daily).toString("hex"))
      assert.deepStrictEqual(hex(backfilled), hex(repeatedNow))
      for (const id of hex(backfilled)) assert.include(hex(keptVisitors), id)
      const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "UTC" }
      for (const body of QUERIES) {
        const query = parse({ ...body, site: site.hostname, date_range: ["2026-05-01", "2026-05-03"] })
        const fromRollups = yield* runQuery(statsSite, query)
        assert.deepStrictEqual(fromRollups.results, (yield* runQuery(statsSite, query, { rollups: false })).results)
      }
    }))

  it.effect("an install upgrading to 0013 gets the entry and exit page rows of its stored visits (backfill)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* TestDb
      const tag = `e${Math.random().toString(36).slice(2, 8)}`
      const site = yield* writeForNewSite("emig", 3, (origin) => envelopesOf(FIXED_HISTORY, tag, origin))
      const pages = (table: string, bucket: string) =>
        `SELECT dim, ${bucket}, value, visits, bounces FROM ${table}
         WHERE site_id = ${site.domainId} AND dim IN ('entry_page', 'exit_page') AND (visits <> 0 OR bounces <> 0)
         ORDER BY dim, ${bucket}, value`
      const kept = yield* sql.unsafe<{ dim: string; value: string | null }>(pages("visit_rollups", "hour"))
      const keptDaily = yield* sql.unsafe(pages("visit_rollups_daily", "day"))
      // a visit whose later pageviews moved its exit page away from its entry page
      const valuesOf = (dim: string) => kept.filter((r) => r.dim === dim).map((r) => r.value)
      assert.isNotEmpty(valuesOf("exit_page"))
      assert.notDeepEqual(valuesOf("exit_page"), valuesOf("entry_page"))

      // the database as it was before 0013, with those rows gone, then the migrations
      yield* sql`DELETE FROM visit_rollups WHERE dim IN ('entry_page', 'exit_page')`
      yield* sql`DELETE FROM visit_rollups_daily WHERE dim IN ('entry_page', 'exit_page')`
      yield* sql`ALTER TABLE visits DROP COLUMN prev_exit_page`
      yield* sql`DELETE FROM spoolway_migrations WHERE migration_id = 13`
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[13, "page_rollups"]])
      assert.deepStrictEqual(yield* sql.unsafe(pages("visit_rollups", "hour")), kept)
      assert.deepStrictEqual(yield* sql.unsafe(pages("visit_rollups_daily", "day")), keptDaily)
    }))

  it.effect("an install upgrading to 0018 gets the bot visits' rows of its stored visits (backfill)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* TestDb
      const tag = `b${Math.random().toString(36).slice(2, 8)}`
      const site = yield* writeForNewSite("bmig", 3, (origin) => envelopesOf(FIXED_HISTORY, tag, origin))
      const bots = (table: string, bucket: string) =>
        `SELECT ${bucket}, visits, pageviews, events FROM ${table}
         WHERE site_id = ${site.domainId} AND dim = '${BOTS_DIMENSION}' AND (visits <> 0 OR events <> 0) ORDER BY 1`
      const kept = yield* sql.unsafe<{ visits: number; events: number }>(bots("visit_rollups", "hour"))
      const keptDaily = yield* sql.unsafe(bots("visit_rollups_daily", "day"))
      // the history's bot visits, as the writer counted them
      const [stored] = yield* sql<{ visits: number; events: number }>`
        SELECT count(*)::int AS visits, coalesce(sum(events), 0)::int AS events FROM visits WHERE site_id = ${site.domainId} AND is_bot`
      assert.isAbove(stored!.visits, 0)
      assert.strictEqual(kept.reduce((n, r) => n + Number(r.visits), 0), stored!.visits)
      assert.strictEqual(kept.reduce((n, r) => n + Number(r.events), 0), stored!.events)

      // the database as it was before 0018 (no bots' rows), then the migrations
      yield* sql`DELETE FROM visit_rollups WHERE dim = ${BOTS_DIMENSION}`
      yield* sql`DELETE FROM visit_rollups_daily WHERE dim = ${BOTS_DIMENSION}`
      yield* sql`DELETE FROM spoolway_migrations WHERE migration_id = 18`
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[18, "bot_rollups"]])
      assert.deepStrictEqual(yield* sql.unsafe(bots("visit_rollups", "hour")), kept)
      assert.deepStrictEqual(yield* sql.unsafe(bots("visit_rollups_daily", "day")), keptDaily)
    }))

  it.effect("an install upgrading to 0020 gets each hour's last event of its stored visits (backfill), and its event queries their answers", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* TestDb
      const tag = `l${Math.random().toString(36).slice(2, 8)}`
      const site = yield* writeForNewSite("lmig", 3, (origin) => envelopesOf(FIXED_HISTORY, tag, origin))
      const bounds = `SELECT dim, hour, last_seen FROM visit_rollups
        WHERE site_id = ${site.domainId} AND dim IN ('total', '${BOTS_DIMENSION}') AND last_seen IS NOT NULL ORDER BY 1, 2`
      const kept = yield* sql.unsafe<{ dim: string; hour: Date; last_seen: Date }>(bounds)
      assert.isNotEmpty(kept.filter((r) => r.dim === BOTS_DIMENSION), "the history has bot visits")
      assert.strictEqual(yield* lastSeenBelowVisits(site.domainId), 0)

      // the database as it was before 0020, then the migrations
      yield* sql`ALTER TABLE visit_rollups DROP COLUMN last_seen`
      yield* sql`DELETE FROM spoolway_migrations WHERE migration_id = 20`
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[20, "visit_rollups_last_seen"]])
      // exactly each hour's latest last event now, where the writer kept it at least that
      const backfilled = yield* sql.unsafe<{ dim: string; hour: Date; last_seen: Date }>(bounds)
      const exact = yield* sql.unsafe<{ dim: string; hour: Date; last_seen: Date }>(
        `SELECT dim, hour, last_seen FROM (${LAST_SEEN_OF_VISITS_SQL}) m WHERE site_id = ${site.domainId} ORDER BY 1, 2`
      )
      assert.deepStrictEqual(backfilled, exact)
      const keptAt = new Map(kept.map((r) => [`${r.dim} ${r.hour.toISOString()}`, r.last_seen.getTime()]))
      for (const r of backfilled) assert.isAtLeast(keptAt.get(`${r.dim} ${r.hour.toISOString()}`) ?? -1, r.last_seen.getTime())
      // the event queries (their events bounded by these rows) answer as without the rollups
      const statsSite = { id: site.domainId, hostname: site.hostname, hostnames: [site.hostname], timezone: "UTC" }
      for (const range of [["2026-05-01", "2026-05-03"], ["2026-05-02T01:00:00Z", "2026-05-02T09:00:00Z"]]) {
        for (const body of EVENT_QUERIES) {
          const query = parse({ ...body, site: site.hostname, date_range: range })
          assert.deepStrictEqual(
            (yield* runQuery(statsSite, query)).results,
            (yield* runQuery(statsSite, query, { rollups: false, items: false })).results,
            `${range} ${JSON.stringify(body)}`
          )
        }
      }
    }))
})

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("visit contents, the writer's statement", (it) => {
  it.effect("its generic plan never loops over the batch's rows once per row (a nested loop re-reading a CTE or the parameters)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The writer's statements are prepared: after five executions PostgreSQL may keep a generic
      // plan, made without the parameters' sizes (an array of unknown length: a few rows). A join
      // planned then as a loop over one CTE per row of another is quadratic in the batch (a
      // version that joined the item rows with the upsert's returned rows: 682 µs per event
      // instead of 25 in the writer bench). The generic plan, as EXPLAIN EXECUTE shows it: the
      // statement prepared in a DO block (its $n are the prepared statement's own parameters,
      // not the protocol's), the arguments literals (a generic plan does not look at them).
      interface PlanNode {
        readonly "Node Type": string
        readonly "Parent Relationship"?: string
        readonly Plans?: ReadonlyArray<PlanNode>
      }
      const types = "int4[], text[], timestamptz[], bool[], timestamptz[], bool[], int4[], text[], text[], text[], int4[], int4[], int4[], text[]"
      const args = "'{1}', '{s1}', '{2026-05-02 10:00Z}', '{f}', '{NULL}', '{NULL}', '{1}', '{s1}', '{page}', '{/}', '{1}', '{1}', '{0}', '{0}'"
      const plan = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`DO $do$ BEGIN EXECUTE $q$PREPARE upsert_visit_items(${types}) AS ${UPSERT_VISIT_ITEMS}$q$; END $do$`)
        yield* sql.unsafe("SET LOCAL plan_cache_mode = force_generic_plan")
        const [row] = yield* sql.unsafe<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE upsert_visit_items(${args})`)
        yield* sql.unsafe("DEALLOCATE upsert_visit_items")
        return (row!["QUERY PLAN"] as ReadonlyArray<{ Plan: PlanNode }>)[0]!.Plan
      }))
      const loops: Array<string> = []
      const walk = (node: PlanNode) => {
        const inner = node.Plans?.find((p) => p["Parent Relationship"] === "Inner")
        if (node["Node Type"] === "Nested Loop" && inner !== undefined && ["CTE Scan", "Function Scan"].includes(inner["Node Type"])) {
          loops.push(`Nested Loop over a ${inner["Node Type"]}`)
        }
        node.Plans?.forEach(walk)
      }
      walk(plan)
      assert.isAbove(JSON.stringify(plan).split("CTE Scan").length, 5, "the plan was read")
      assert.deepStrictEqual(loops, [], JSON.stringify(plan))
    }))
})

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("visit contents, migration", (it) => {
  it.effect("an install upgrading to 0010 and 0019 gets the contents of its stored visits, their start hours and their rollups (backfill)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const db = yield* TestDb
      const tag = `c${Math.random().toString(36).slice(2, 8)}`
      const site = yield* writeForNewSite("cmig", 3, (origin) => envelopesOf(FIXED_HISTORY, tag, origin))
      const tables = [
        `SELECT session_id, dim, value, pageviews, events, conversions, revenue, hour FROM visit_items WHERE site_id = ${site.domainId} ORDER BY 1, 2, 3`,
        `SELECT dim, hour, value, visits, pageviews, events, conversions, revenue FROM item_rollups WHERE site_id = ${site.domainId}
           AND visits <> 0 ORDER BY 1, 2, 3`,
        `SELECT dim, day, value, visits, pageviews, events, conversions, revenue FROM item_rollups_daily WHERE site_id = ${site.domainId}
           AND visits <> 0 ORDER BY 1, 2, 3`
      ]
      const kept = []
      for (const t of tables) kept.push(yield* sql.unsafe(t))
      assert.isAbove(kept[0]!.length, 10)
      assert.isAbove(kept[1]!.length, 3)

      // the database as it was before 0010 (its visits and events stay), then the migrations
      // (0010 builds the contents, 0019 adds their visits' start hours)
      yield* sql`DROP TABLE visit_items, item_rollups, item_rollups_daily`
      yield* sql`ALTER TABLE visits DROP COLUMN conversions, DROP COLUMN revenue`
      yield* sql`DELETE FROM spoolway_migrations WHERE migration_id IN (10, 19)`
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[10, "visit_items"], [19, "visit_items_hour"]])
      for (let i = 0; i < tables.length; i++) assert.deepStrictEqual(yield* sql.unsafe(tables[i]!), kept[i])
    }))
})

describe("visit rollups, planner", () => {
  const NOW = Date.parse("2026-05-10T12:34:56.789Z")
  const plan = (body: Record<string, unknown>, timezone = "UTC") =>
    rollupDimension(inputOf(parse({ date_range: "30d", ...body }), timezone, NOW))

  it("an events-path query's end: asked ahead from the rollups, then a parameter of the statement (null: no events)", () => {
    const input = inputOf(parse({ date_range: "30d", metrics: ["events"], dimensions: ["event_type"], filters: [["is", "page", ["/p1"]]] }), "UTC", NOW)
    assert.strictEqual(queryPath(input).path, "events")
    assert.isTrue(readsVisitEvents(input))
    assert.isFalse(readsVisitEvents({ ...input, dimensions: ["page"], filters: [] }), "the item rollups' query reads no events")
    assert.isFalse(readsVisitEvents({ ...input, active: true }), "realtime reads the events until now")
    const bound = lastVisitEventSql(input)
    assert.include(bound.text, "FROM visit_rollups r")
    assert.include(lastVisitEventSql({ ...input, rollups: false }).text, "FROM visits x")
    // given: a parameter, up to the next millisecond; the subquery otherwise; no visits: no events
    const until = Date.parse("2026-05-10T11:00:00.123Z")
    const given = compileQuery({ ...input, eventsUntilMs: until })
    assert.notInclude(given.text, "last_seen)")
    assert.include(given.text, "e.received_at < $")
    assert.include(given.params, "2026-05-10T11:00:00.124Z")
    assert.isFalse(readsVisitEvents({ ...input, eventsUntilMs: until }))
    assert.include(compileQuery(input).text, "SELECT max(r.last_seen)")
    assert.include(compileQuery({ ...input, eventsUntilMs: null }).text, "AND false")
  })

  it("answers from the rollups what they hold exactly", () => {
    assert.strictEqual(plan({ metrics: VISIT_METRICS }), "total")
    assert.strictEqual(plan({ metrics: VISIT_METRICS, dimensions: ["time:day"] }, "Europe/Berlin"), "total")
    assert.strictEqual(plan({ metrics: ["visitors"], dimensions: ["country"], filters: [["is", "country", ["DE"]]] }), "country")
    assert.strictEqual(plan({ metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["entry_page"] }), "entry_page")
    assert.strictEqual(plan({ metrics: ["visitors", "visits"], dimensions: ["exit_page"] }), "exit_page")
    assert.strictEqual(plan({ metrics: ["visits"], filters: [["is", "source", ["organic"]]] }), "source")
    assert.strictEqual(plan({ metrics: ["visits"], dimensions: ["time:week", "device"] }, "America/New_York"), "device")
    assert.strictEqual(plan({ metrics: ["bot_events"] }), "bots")
    assert.strictEqual(plan({ metrics: ["bot_events"], dimensions: ["time:day"] }, "Europe/Berlin"), "bots")
  })

  it("falls back to the visits path for what they cannot answer exactly", () => {
    // two property dimensions (a dimension and a filter on another)
    assert.isUndefined(plan({ metrics: ["visitors"], dimensions: ["browser"], filters: [["is", "country", ["DE"]]] }))
    // a dimension the rollups do not keep, an event dimension, an event metric
    assert.isUndefined(plan({ metrics: ["visitors"], dimensions: ["browser_version"] }))
    assert.isUndefined(plan({ metrics: ["visitors"], dimensions: ["city"] }))
    assert.isUndefined(plan({ metrics: ["visitors", "visits"], dimensions: ["referrer"] }))
    assert.isUndefined(plan({ metrics: ["visitors"], dimensions: ["page"] }))
    assert.isUndefined(plan({ metrics: ["visitors", "conversions"] }))
    // the bots' rows have no dimension values, and hold bot events alone (beside other metrics the API asks them apart)
    assert.isUndefined(plan({ metrics: ["bot_events"], filters: [["is", "country", ["DE"]]] }))
    assert.isUndefined(plan({ metrics: ["bot_events"], dimensions: ["source"] }))
    assert.isUndefined(plan({ metrics: ["visitors", "bot_events"] }))
    // a dimension's rows hold visits and bounces: pageviews, events, duration by dimension are read from visits
    assert.isUndefined(plan({ metrics: ["visitors", "pageviews"], dimensions: ["country"] }))
    assert.isUndefined(plan({ metrics: ["visit_duration"], filters: [["is", "source", ["organic"]]] }))
    // a half-hour time zone: its days start and end inside UTC hours
    assert.isUndefined(plan({ metrics: ["visitors"], dimensions: ["time:day"] }, "Asia/Kolkata"))
    assert.isUndefined(plan({ metrics: ["visitors"] }, "Asia/Kolkata"))
    // a range that does not start on a whole hour, and realtime (visits active in the last 5 minutes)
    assert.isUndefined(plan({ metrics: ["visitors"], date_range: ["2026-05-01T10:30:00Z", "2026-05-02T10:00:00Z"] }))
    assert.isUndefined(plan({ metrics: ["visitors"], date_range: "realtime" }))
    // and a caller may refuse them
    assert.isUndefined(rollupDimension({ ...inputOf(parse({ metrics: ["visits"], date_range: "30d" }), "UTC", NOW), rollups: false }))
  })

  it("content queries: the item rollups for a breakdown by one content dimension, the visits' items or the events otherwise", () => {
    const path = (body: Record<string, unknown>, timezone = "UTC", options: Partial<CompileInput> = {}) =>
      queryPath({ ...inputOf(parse({ date_range: "30d", ...body }), timezone, NOW), ...options }).path
    assert.strictEqual(path({ metrics: ["visitors", "pageviews"], dimensions: ["page"] }), "item-rollups")
    assert.strictEqual(path({ metrics: ["visitors", "events", "conversions", "revenue"], dimensions: ["event_type"] }, "Europe/Berlin"), "item-rollups")
    assert.strictEqual(path({ metrics: ["visits"], dimensions: ["time:day", "event_type"], filters: [["contains", "event_type", ["sign"]]] }), "item-rollups")
    // hostnames are not kept per visit
    assert.strictEqual(path({ metrics: ["visits"], dimensions: ["hostname"] }), "events")
    // a filter alone (a visit may match several values), another dimension, per-visit metrics, realtime, half hours
    assert.strictEqual(path({ metrics: ["visitors", "pageviews"], filters: [["contains", "page", ["/pricing"]]] }), "items")
    assert.strictEqual(path({ metrics: ["visits"], filters: [["or", [["is", "page", ["/a"]], ["is", "country", ["DE"]]]]] }), "items")
    assert.strictEqual(path({ metrics: ["visitors"], dimensions: ["page"], filters: [["is", "country", ["DE"]]] }), "items")
    assert.strictEqual(path({ metrics: ["bounce_rate"], dimensions: ["page"] }), "items")
    assert.strictEqual(path({ metrics: ["visitors"], dimensions: ["page"] }, "Asia/Kolkata"), "items")
    assert.strictEqual(path({ metrics: ["visitors"], dimensions: ["page"], date_range: "realtime" }), "events")
    // two content dimensions need the events themselves (a conversion on a page)
    assert.strictEqual(path({ metrics: ["conversions"], dimensions: ["page"], filters: [["is", "event_type", ["conversion"]]] }), "events")
    // visit figures with a filter on a page or event type: the visits having a matching item
    assert.strictEqual(path({ metrics: ["visitors"], filters: [["is", "page", ["/pricing", "/"]]] }), "visits")
    assert.strictEqual(path({ metrics: ["bounce_rate"], filters: [["is", "page", ["/pricing"]]] }), "visits")
    // … and, filtered by one value, what an item holds from the item rollups
    assert.strictEqual(path({ metrics: ["visitors", "pageviews"], filters: [["is", "page", ["/pricing"]]] }), "item-rollups")
    assert.strictEqual(path({ metrics: ["visits"], dimensions: ["time:day"], filters: [["is", "event_type", ["signup"]]] }), "item-rollups")
    assert.strictEqual(
      path({ metrics: ["visits", "bounce_rate"], dimensions: ["exit_page"], filters: [["is", "page", ["/a"]], ["is", "country", ["DE"]]] }),
      "visits"
    )
    assert.strictEqual(path({ metrics: ["visits"], filters: [["is", "page", ["/a"]]] }, "UTC", { items: false }), "events")
    // conversions, revenue and bot events are visit figures
    assert.strictEqual(path({ metrics: ["visitors", "conversions", "conversion_rate", "revenue", "bot_events"], dimensions: ["source"] }), "visits")
    // and a caller may refuse the rollups, or the items
    assert.strictEqual(path({ metrics: ["visitors"], dimensions: ["page"] }, "UTC", { rollups: false }), "items")
    assert.strictEqual(path({ metrics: ["visitors"], dimensions: ["page"] }, "UTC", { items: false }), "events")
  })
})
