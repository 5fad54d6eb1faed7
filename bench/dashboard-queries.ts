/**
 * The dashboard's queries one by one (issue 17): each query a page sends (dashboard/pages.js),
 * compiled as the query API compiles it (src/domain/StatsSql.ts) and run with EXPLAIN ANALYZE
 * on a data set, one after the other (no concurrency), to see where a page's time goes.
 *
 *   npx node bench/dashboard-queries.ts --database spoolway_perf_10m [--site shop.example.com] [--range 30d] [--only region,city] [--plan]
 *     [--filter page=/pricing]   (every query under that filter, as a click on the row sets it: `is`, one value)
 *
 * Prints per query: execution time (ms, the median of --runs runs), the planner's time, and with
 * --plan the plan of the last run. Visit queries only unless --events. With --sql: the statements
 * with their parameters inlined, not run (for trying a change by hand in psql). Last, per page: the
 * statements the query API runs as one because they share their filtered visits (StatsSql.ts
 * `compileSharedVisits`: under a filter on a page or an event type), that one statement against
 * theirs, each run alone.
 */
import { spawnSync } from "node:child_process"
import { compileQuery, type CompileInput, compileSharedVisits, sharedVisitsKey, isEventQuery, itemRollupMetrics, lastVisitEventSql, readsVisitEvents } from "../src/domain/StatsSql.ts"
import { parseQuery, previousPeriod, resolvePeriod, type StatsQuery } from "../src/domain/StatsQuery.ts"
import { arg, median } from "./lib.ts"

const flag = (name: string) => process.argv.includes(`--${name}`)
const DB = arg("database", "spoolway_perf_10m")
const SITE = arg("site", "shop.example.com")
const RANGE = arg("range", "30d")
const RUNS = Number(arg("runs", "3"))
const ONLY = arg("only", "").split(",").filter((s) => s !== "")
const FILTER = arg("filter", "")
const filters = FILTER === "" ? [] : [["is", FILTER.slice(0, FILTER.indexOf("=")), [FILTER.slice(FILTER.indexOf("=") + 1)]]]
const URL_ = process.env["BENCH_PG_URL"] ?? `postgres://postgres@127.0.0.1:5432/${DB}`
/** the query API's own settings (src/programs/Stats.ts, QUERY_SETTINGS): its work_mem, no JIT */
const SETTINGS = process.env["BENCH_SETTINGS"] ?? "SET work_mem = '64MB'; SET jit = off;"

const psql = (sql: string) => {
  const r = spawnSync("psql", ["-qAtX", URL_, "-c", sql], { encoding: "utf8", maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout
}

const [siteId, tz] = psql(`SELECT s.id || '|' || s.timezone FROM sites s JOIN domains d ON d.site_id = s.id WHERE d.hostname = '${SITE}'`).trim().split("|")

const table = (dimension: string, metrics: ReadonlyArray<string>, order?: string, extra?: ReadonlyArray<unknown>) => ({
  name: dimension,
  body: { metrics, dimensions: [dimension], order_by: [[order ?? metrics[0], "desc"]], limit: 11 },
  ...(extra === undefined ? {} : { extra })
})
/** `extra`: the table's own filters, after the page's (the Events page's custom events leave out pageviews) */
const QUERIES: ReadonlyArray<{ page: string; name: string; body: Record<string, unknown>; extra?: ReadonlyArray<unknown> }> = [
  { page: "overview", name: "totals", body: { metrics: ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], compare: "previous_period" } },
  { page: "overview", name: "series", body: { metrics: ["visitors", "pageviews"], dimensions: ["time:day"] } },
  { page: "overview", name: "live", body: { metrics: ["visitors"], date_range: "realtime" } },
  ...[table("page", ["visitors", "pageviews"]), table("entry_page", ["visitors", "visits", "bounce_rate"]), table("exit_page", ["visitors", "visits"])]
    .map((q) => ({ page: "pages", ...q })),
  { page: "events", ...table("event_type", ["visitors", "events", "conversions", "revenue"], "events", [["is_not", "event_type", ["pageview"]]]) },
  ...[
    table("source", ["visitors", "visits", "bounce_rate"]),
    table("referrer", ["visitors", "visits"]),
    table("utm_source", ["visitors", "visits"]),
    table("utm_medium", ["visitors", "visits"]),
    table("utm_campaign", ["visitors", "visits"])
  ].map((q) => ({ page: "traffic", ...q })),
  ...["device", "browser", "os", "country", "region", "city", "language"].map((d) => ({ page: "audience", ...table(d, ["visitors"]) })),
  { page: "network", name: "org_type (share)", body: { metrics: ["visitors"], dimensions: ["org_type"], limit: 100 } },
  { page: "network", name: "visitors+bot_events", body: { metrics: ["visitors", "bot_events"] } },
  ...["org_type", "org", "asn"].map((d) => ({ page: "network", ...table(d, ["visitors", "visits"]) }))
]

const inline = (text: string, params: ReadonlyArray<unknown>) =>
  text.replace(/\$(\d+)/g, (_m, n) => {
    const p = params[Number(n) - 1] as string | { textArray: ReadonlyArray<string> }
    const lit = (s: string) => `'${s.replace(/'/g, "''")}'`
    return typeof p === "string" ? lit(p) : `ARRAY[${p.textArray.map(lit).join(",")}]::text[]`
  })

const now = Date.parse(process.env["BENCH_NOW"] ?? new Date().toISOString())
/** per page and shared-visits key: the statements the query API runs as one (programs/Stats.ts) */
const sharing = new Map<string, Array<CompileInput>>()
const explainMs = (s: { text: string; params: ReadonlyArray<unknown> }) => {
  const out = psql(`${SETTINGS} EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) ${inline(s.text, s.params)}`)
  return { ms: Number(/Execution Time: ([\d.]+)/.exec(out)?.[1] ?? NaN), out }
}
for (const q of QUERIES) {
  if (ONLY.length > 0 && !ONLY.some((o) => q.name.includes(o) || q.page === o)) continue
  const parsed = parseQuery({ site: SITE, date_range: RANGE, filters: [...filters, ...(q.extra ?? [])], ...q.body }) as StatsQuery
  if (!("metrics" in parsed)) throw new Error(JSON.stringify(parsed))
  const period = resolvePeriod(parsed.dateRange, now, tz!, null) as { fromMs: number; toMs: number }
  let input: CompileInput = {
    siteId: Number(siteId),
    timezone: tz!,
    period,
    active: parsed.dateRange.kind === "realtime",
    metrics: parsed.metrics,
    dimensions: parsed.dimensions,
    filters: parsed.filters,
    orderBy: parsed.orderBy,
    page: parsed.dimensions.some((d) => d.startsWith("time:")) ? null : { limit: parsed.limit, offset: parsed.offset }
  }
  const event = isEventQuery(input)
  if (event && !flag("events")) {
    // say so rather than print nothing (under a filter on a page every query reads contents or events)
    console.log(`${q.page.padEnd(9)} ${q.name.padEnd(22)} event  skipped (reads contents or events: pass --events)`)
    continue
  }
  // as the query API runs an events-path statement: its visits' last event asked first (not timed)
  if (readsVisitEvents(input)) {
    const bound = lastVisitEventSql(input)
    const until = psql(`SELECT floor(extract(epoch FROM until) * 1000) FROM (${inline(bound.text, bound.params)}) b`).trim()
    input = { ...input, eventsUntilMs: until === "" ? null : Number(until) }
  }
  // as the query API runs it (programs/Stats.ts runInput): filtered by one page, what the item
  // rollups answer and the rest as two statements (timed here one after the other)
  const fromItems = itemRollupMetrics(input)
  const apartInputs = (i: CompileInput) =>
    fromItems === undefined
      ? [i]
      : [fromItems, i.metrics.filter((m) => !fromItems.includes(m))].map((metrics) => ({ ...i, metrics, orderBy: [] }))
  const inputs = apartInputs(input)
  if (parsed.compare === "previous_period") inputs.push(...apartInputs({ ...input, period: previousPeriod(period), page: null }))
  const statements = inputs.map(compileQuery)
  for (const i of inputs) {
    const key = sharedVisitsKey(i)
    if (key === undefined) continue
    const group = `${q.page} ${key}`
    sharing.set(group, [...(sharing.get(group) ?? []), i])
  }
  if (flag("sql")) {
    for (const s of statements) console.log(`-- ${q.page} ${q.name}\n${inline(s.text, s.params)};`)
    continue
  }
  const times: Array<number> = []
  let plan = ""
  let planning = 0
  for (let r = 0; r < RUNS; r++) {
    let total = 0
    for (const s of statements) {
      const { ms, out } = explainMs(s)
      total += ms
      planning = Number(/Planning Time: ([\d.]+)/.exec(out)?.[1] ?? NaN)
      plan = out
    }
    times.push(total)
  }
  times.sort((a, b) => a - b)
  const jit = /JIT:[\s\S]*?Timing: .*Total ([\d.]+) ms/.exec(plan)?.[1]
  console.log(`${q.page.padEnd(9)} ${q.name.padEnd(22)} ${event ? "event " : "visit "} ${times[Math.floor(times.length / 2)]!.toFixed(1).padStart(9)} ms  (plan ${planning.toFixed(1)} ms${jit ? `, JIT ${jit} ms` : ""})`)
  if (flag("plan")) console.log(plan)
  if (flag("sql")) console.log(inline(statements[0]!.text, statements[0]!.params))
}

// the statements a page's tables share (the query API runs each group as one, StatsSql.ts compileSharedVisits):
// the shared statement against its queries' own statements, each timed alone, one after the other
for (const [group, inputs] of sharing) {
  if (inputs.length < 2) continue
  if (flag("sql")) {
    const one = compileSharedVisits(inputs)
    console.log(`-- ${group.slice(0, group.indexOf(" "))}: shared by ${inputs.length}\n${inline(one.text, one.params)};`)
    continue
  }
  const shared: Array<number> = []
  const apart: Array<number> = []
  for (let r = 0; r < RUNS; r++) {
    const one = explainMs(compileSharedVisits(inputs))
    shared.push(one.ms)
    if (flag("plan") && r === RUNS - 1) console.log(one.out)
    apart.push(inputs.reduce((sum, i) => sum + explainMs(compileQuery(i)).ms, 0))
  }
  console.log(
    `${group.slice(0, group.indexOf(" ")).padEnd(9)} shared by ${inputs.length}: one statement ${median(shared).toFixed(1)} ms, ` +
      `its ${inputs.length} statements ${median(apart).toFixed(1)} ms in all`
  )
}
