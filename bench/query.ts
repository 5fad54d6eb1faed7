/**
 * Stats query API latency (issue 14) on the data set of bench/dataset.ts: a fixed query set
 * for the largest site (shop.example.com, Europe/Berlin) over the last 30 days, each run
 * through the API's own program (`runQuery`: validation, SQL, shaping — what
 * `POST /api/v1/query` does minus HTTP), p50/p95 per query. In the same run, interleaved round
 * by round, the same question answered by a straightforward `GROUP BY` over `raw_events` (joined
 * to `session_fingerprints` for first-touch dimensions, per-session subquery for bounce and
 * duration): the ratio says what the visits table and the query compiler buy.
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/query.ts [--database spoolway_bench_query] [--rounds 15] [--only <name part>]
 *
 * BENCH_PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres) names the server.
 */
import { loadavg } from "node:os"
import { performance } from "node:perf_hooks"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { InvalidQuery, parseQuery, resolvePeriod } from "../src/domain/StatsQuery.ts"
import { queryPath } from "../src/domain/StatsSql.ts"
import { runQuery, type StatsSite } from "../src/programs/Stats.ts"
import { arg, log, machineInfo, requireNode24, round, stamp, writeResult } from "./lib.ts"

requireNode24()

const DATABASE = arg("database", "spoolway_bench_query")
const ROUNDS = Number(arg("rounds", "15"))
/** `--only top` runs the cases whose name contains "top" */
const ONLY = arg("only", "")
const WARMUP = 2
const ADMIN_URL = process.env["BENCH_PG_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const HOST = "shop.example.com"

const HEADLINE = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]

interface Case {
  readonly name: string
  readonly target: string
  readonly query: Record<string, unknown>
  /** the plain GROUP BY: $1 site, $2 from, $3 to, $4 time zone */
  readonly baseline: string
}

const RANGE = "e.domain_id = $1 AND e.received_at >= $2::timestamptz AND e.received_at < $3::timestamptz"
/** per session: visitor, pageviews, other events, duration — from the events alone */
const SESSIONS = (extra = "", group = "", where = "") => `
  SELECT e.session_id${extra}, max(e.visitor_id_daily::text) AS vid, count(*) FILTER (WHERE e.kind = 'view') AS pv,
         count(*) FILTER (WHERE e.kind <> 'view') AS other, extract(epoch FROM max(e.received_at) - min(e.received_at)) AS dur
  FROM raw_events e${where === "" ? "" : " JOIN session_fingerprints f ON f.session_id = e.session_id"}
  WHERE ${RANGE} AND NOT e.is_bot${where} GROUP BY e.session_id${group}`
const HEADLINE_SQL = "count(DISTINCT vid), count(*), sum(pv), 100.0 * count(*) FILTER (WHERE pv <= 1 AND other = 0) / count(*), avg(dur)"
const firstTouch = (column: string) =>
  `WITH s AS (${SESSIONS(`, f.${column} AS d`, `, f.${column}`, " ")}) ` +
  `SELECT d, count(DISTINCT vid), count(*), 100.0 * count(*) FILTER (WHERE pv <= 1 AND other = 0) / count(*) FROM s GROUP BY d ORDER BY 2 DESC LIMIT 10`

const CASES: ReadonlyArray<Case> = [
  {
    name: "overview: 5 headline metrics",
    target: "< 100 ms (with the series)",
    query: { metrics: HEADLINE },
    baseline: `WITH s AS (${SESSIONS()}) SELECT ${HEADLINE_SQL} FROM s`
  },
  {
    name: "30-day daily series, 5 metrics",
    target: "< 100 ms (with the overview)",
    query: { metrics: HEADLINE, dimensions: ["time:day"] },
    baseline: `WITH s AS (${SESSIONS(", to_char(date_trunc('day', timezone($4, min(e.received_at))), 'YYYY-MM-DD') AS day")}) ` +
      `SELECT day, ${HEADLINE_SQL} FROM s GROUP BY day ORDER BY day`
  },
  {
    name: "top pages (visitors, pageviews)",
    target: "< 300 ms",
    query: { metrics: ["visitors", "pageviews"], dimensions: ["page"], order_by: [["pageviews", "desc"]], limit: 10 },
    baseline: `SELECT spoolway_page_path(e.page_url) AS page, count(DISTINCT e.visitor_id_daily), count(*) FROM raw_events e ` +
      `WHERE ${RANGE} AND NOT e.is_bot AND e.kind = 'view' GROUP BY 1 ORDER BY 3 DESC LIMIT 10`
  },
  {
    name: "top sources (visitors, visits, bounce rate)",
    target: "< 300 ms",
    query: { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["source"], limit: 10 },
    baseline: firstTouch("traffic_source")
  },
  {
    name: "top countries",
    target: "< 300 ms",
    query: { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["country"], limit: 10 },
    baseline: firstTouch("country")
  },
  {
    name: "top devices",
    target: "< 300 ms",
    query: { metrics: ["visitors", "visits", "bounce_rate"], dimensions: ["device"], limit: 10 },
    baseline: firstTouch("device_type")
  },
  {
    name: "filtered: country = DE and source = organic, by browser",
    target: "< 1 s",
    query: {
      metrics: ["visitors", "visits", "bounce_rate"],
      dimensions: ["browser"],
      filters: [["is", "country", ["DE"]], ["is", "source", ["organic"]]],
      limit: 10
    },
    baseline: `WITH s AS (${SESSIONS(", f.browser AS d", ", f.browser", " AND f.country = 'DE' AND f.traffic_source = 'organic'")}) ` +
      `SELECT d, count(DISTINCT vid), count(*), 100.0 * count(*) FILTER (WHERE pv <= 1 AND other = 0) / count(*) FROM s GROUP BY d ORDER BY 2 DESC LIMIT 10`
  },
  {
    name: "filtered: country = DE and source = organic, by page",
    target: "< 1 s",
    query: {
      metrics: ["visitors", "pageviews"],
      dimensions: ["page"],
      filters: [["is", "country", ["DE"]], ["is", "source", ["organic"]]],
      order_by: [["pageviews", "desc"]],
      limit: 10
    },
    baseline: `SELECT spoolway_page_path(e.page_url) AS page, count(DISTINCT e.visitor_id_daily), count(*) FROM raw_events e ` +
      `JOIN session_fingerprints f ON f.session_id = e.session_id ` +
      `WHERE ${RANGE} AND NOT e.is_bot AND e.kind = 'view' AND f.country = 'DE' AND f.traffic_source = 'organic' ` +
      `GROUP BY 1 ORDER BY 3 DESC LIMIT 10`
  },
  {
    name: "event types (visitors, events, conversions, revenue)",
    target: "< 300 ms (a top list)",
    query: { metrics: ["visitors", "events", "conversions", "revenue"], dimensions: ["event_type"], order_by: [["events", "desc"]], limit: 10 },
    baseline: `SELECT e.event_type, count(DISTINCT e.session_id), count(*), count(*) FILTER (WHERE e.event_type = 'conversion'), ` +
      `sum((e.metadata->>'value')::numeric) FILTER (WHERE e.event_type = 'conversion') FROM raw_events e ` +
      `WHERE ${RANGE} AND NOT e.is_bot GROUP BY 1 ORDER BY 3 DESC LIMIT 10`
  },
  {
    name: "conversions and revenue by source",
    target: "< 1 s (a breakdown)",
    query: { metrics: ["visitors", "conversions", "conversion_rate", "revenue"], dimensions: ["source"], limit: 10 },
    baseline: `SELECT f.traffic_source, count(DISTINCT f.visitor_id_daily), count(*) FILTER (WHERE e.event_type = 'conversion'), ` +
      `sum((e.metadata->>'value')::numeric) FILTER (WHERE e.event_type = 'conversion') FROM raw_events e ` +
      `JOIN session_fingerprints f ON f.session_id = e.session_id WHERE ${RANGE} AND NOT e.is_bot GROUP BY 1 ORDER BY 2 DESC LIMIT 10`
  }
]

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const main = async () => {
  const url = Object.assign(new URL(ADMIN_URL), { pathname: `/${DATABASE}` }).toString()
  const layer = PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })
  const results = await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ id: number; timezone: string; events: string; visits: string }>`
        SELECT s.id, s.timezone, (SELECT count(*) FROM raw_events) AS events, (SELECT count(*) FROM visits) AS visits
        FROM sites s JOIN domains d ON d.id = s.id WHERE d.hostname = ${HOST}`
      if (row === undefined) throw new Error(`no site ${HOST} in ${DATABASE}: run bench/dataset.ts first`)
      const site: StatsSite = { id: row.id, hostname: HOST, hostnames: [HOST], timezone: row.timezone }
      const [own] = yield* sql<{ events: string; visits: string }>`
        SELECT (SELECT count(*) FROM raw_events WHERE domain_id = ${row.id}
                  AND received_at >= now() - interval '30 days') AS events,
               (SELECT count(*) FROM visits WHERE site_id = ${row.id} AND started_at >= now() - interval '30 days') AS visits`
      log(`${DATABASE}: ${row.events} events, ${row.visits} visits; ${HOST} (${row.timezone}) last 30 days: ${own!.events} events, ${own!.visits} visits`)
      const period = resolvePeriod({ kind: "30d" }, Date.now(), site.timezone, null)
      if (period instanceof InvalidQuery) throw new Error(period.message)
      const params = [String(site.id), new Date(period.fromMs).toISOString(), new Date(period.toMs).toISOString(), site.timezone]
      const out: Array<Record<string, unknown>> = []
      for (const c of CASES.filter((c) => c.name.includes(ONLY))) {
        const query = parseQuery({ site: HOST, date_range: "30d", ...c.query })
        if (query instanceof InvalidQuery) throw new Error(`${c.name}: ${query.field} ${query.message}`)
        // which path the planner takes (StatsSql.ts queryPath): visit or item rollups, visits, items, events
        const path = queryPath({
          siteId: site.id,
          timezone: site.timezone,
          period,
          active: false,
          metrics: query.metrics,
          dimensions: query.dimensions,
          filters: query.filters,
          orderBy: query.orderBy,
          page: null
        }).path
        const load0 = loadavg()[0]!
        const api: Array<number> = []
        const plain: Array<number> = []
        const baselineParams = c.baseline.includes("$4") ? params : params.slice(0, 3)
        let rows = 0
        for (let r = 0; r < WARMUP + ROUNDS; r++) {
          const a0 = performance.now()
          const answer = yield* runQuery(site, query)
          const a = performance.now() - a0
          const b0 = performance.now()
          yield* sql.unsafe(c.baseline, baselineParams)
          const b = performance.now() - b0
          rows = answer.results.length
          if (r >= WARMUP) {
            api.push(a)
            plain.push(b)
          }
        }
        const result = {
          name: c.name,
          target: c.target,
          rows,
          p50: round(percentile(api, 50), 1),
          p95: round(percentile(api, 95), 1),
          baselineP50: round(percentile(plain, 50), 1),
          baselineP95: round(percentile(plain, 95), 1),
          ratio: round(percentile(plain, 50) / percentile(api, 50), 1),
          path,
          load: `${round(load0, 1)}–${round(loadavg()[0]!, 1)}`
        }
        log(JSON.stringify(result))
        out.push(result)
      }
      return { events: Number(row.events), visits: Number(row.visits), siteEvents30d: Number(own!.events), siteVisits30d: Number(own!.visits), out }
    }).pipe(Effect.provide(layer))
  )
  const table = [
    "| query (30 days, largest site) | target p95 | path | p50 ms | p95 ms | plain GROUP BY p50 / p95 ms | × faster (p50) | load average (1 min) |",
    "|---|---|---|---|---|---|---|---|",
    ...results.out.map((r) =>
      `| ${r["name"]} | ${r["target"]} | ${r["path"]} | ${r["p50"]} | ${r["p95"]} | ${r["baselineP50"]} / ${r["baselineP95"]} | ${r["ratio"]} | ${
        r["load"]
      } |`
    )
  ].join("\n")
  console.log(`\n${results.events} events, ${results.visits} visits in ${DATABASE}; ${HOST}: ${results.siteEvents30d} events, ` +
    `${results.siteVisits30d} visits in the last 30 days; ${ROUNDS} rounds after ${WARMUP} warm-up\n\n${table}\n`)
  writeResult(`query-${stamp()}.json`, JSON.stringify({ at: new Date().toISOString(), machine: machineInfo(), database: DATABASE, rounds: ROUNDS, ...results }, null, 2))
}

await main()
