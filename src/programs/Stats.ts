/**
 * The stats query API's programs (docs/api.md "Stats query API"): a validated query or funnel
 * (src/domain/StatsQuery.ts) of an authenticated site, run against PostgreSQL with the SQL of
 * src/domain/StatsSql.ts, shaped into the answer. Shared by `POST /api/v1/query`,
 * `POST /api/v1/funnel` (src/http/QueryApi.ts) and `spoolway stats`.
 */
import { Clock, Effect, Exit, Metric as EffectMetric, Request, RequestResolver, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { bucketLabels, formatInstant } from "../domain/LocalTime.ts"
import {
  bucketCount,
  type FunnelQuery,
  InvalidQuery,
  isTimeDimension,
  MAX_BUCKETS,
  type Metric,
  metricValue,
  percentChange,
  type Period,
  previousPeriod,
  resolvePeriod,
  type StatsQuery,
  stepLabel,
  timeGrainOf
} from "../domain/StatsQuery.ts"
import {
  compileFunnel,
  type CompileInput,
  compileQuery,
  compileSharedVisits,
  lastVisitEventSql,
  readsVisitEvents,
  type CompiledSql,
  dimensionAlias,
  earliestSql,
  itemRollupMetrics,
  metricAlias,
  sharedVisitsKey,
  type SqlParam
} from "../domain/StatsSql.ts"
import * as Metrics from "../layers/Metrics.ts"
import { textArray } from "../layers/PgSinkParams.ts"
import { sqlState } from "../layers/Sql.ts"

/** The site a query reads (what SiteAuth gives). */
export interface StatsSite {
  readonly id: number
  readonly hostname: string
  readonly hostnames: ReadonlyArray<string>
  readonly timezone: string
}

/** The body's `site` is not the site of the key: 403. */
export class SiteMismatch extends Schema.TaggedError<SiteMismatch>()("SiteMismatch", { message: Schema.String }) {}

export interface ResultRow {
  readonly dimensions: Array<string | null>
  readonly metrics: Array<number>
  comparison?: { readonly metrics: Array<number>; readonly change: Array<number | null> }
}

export interface QueryAnswer {
  readonly results: Array<ResultRow>
  readonly meta: {
    readonly site: string
    readonly metrics: ReadonlyArray<Metric>
    readonly dimensions: ReadonlyArray<string>
    readonly date_range: readonly [string, string]
    readonly timezone: string
    readonly comparison_date_range?: readonly [string, string]
  }
}

export interface FunnelAnswer {
  readonly steps: Array<{
    readonly step: number
    readonly label: string
    readonly visitors: number
    readonly conversion_rate: number
    readonly conversion_rate_step: number
    readonly drop_off: number
  }>
  readonly meta: {
    readonly site: string
    readonly date_range: readonly [string, string]
    readonly timezone: string
    readonly window_minutes: number
  }
}

/** A compiled statement's parameter as the driver takes it (text arrays encoded). */
export const encode = (p: SqlParam): unknown => (typeof p === "string" ? p : textArray([...p.textArray]))

/**
 * Memory for the aggregation of one query (distinct visitors, per-session groups: hashed in
 * memory instead of sorted on disk), and a bound on its time; no JIT compilation (a statement
 * that reads a few hundred thousand visits crosses the planner's JIT cost threshold, and then
 * spent 10–150 ms of its 0.3–0.9 s compiling, on the 10M-event data set); all for this
 * transaction only.
 */
const QUERY_SETTINGS =
  "SELECT set_config('work_mem', '64MB', true), set_config('statement_timeout', '60s', true), set_config('jit', 'off', true)"

/** Invalid regular expressions that JavaScript accepted and PostgreSQL does not: still a 400. */
const run = (compiled: CompiledSql) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.andThen(
      sql.unsafe(QUERY_SETTINGS),
      sql.unsafe<Record<string, unknown>>(compiled.text, compiled.params.map(encode))
    )).pipe(
      Effect.catchIf(
        (e: SqlError) => sqlState(e) === "2201B",
        () =>
          Effect.fail(
            new InvalidQuery({
              field: "filters",
              message: "a \"matches\" pattern is not a valid regular expression",
              allowed: ["a regular expression (PostgreSQL POSIX syntax)"]
            })
          )
      )
    ))

/**
 * A query's rows. Some are two statements at once, each asking part of the metrics, whose rows
 * are joined by their dimension values (time buckets at most: these have no property dimension):
 * - totals asking `bot_events` beside other metrics (the Network page's "visitors, bot events"):
 *   the other metrics, which the visit rollups may answer, and the bot events alone, which read
 *   only the bot visits (their partial index, migration 0012) — instead of one statement over
 *   every visit of the period, bots included;
 * - filtered by one page or event type (the Overview once a page is clicked): what the item
 *   rollups answer (visitors, visits, pageviews…) from them, the rest (bounce rate, duration)
 *   from the visits that have the value (StatsSql.ts `itemRollupMetrics`).
 * With `rollups: false` (tests compare both), one statement.
 */
const runInput = (input: CompileInput) => {
  // (the plain shape tests compare the others with: one statement, the events' bound a subquery)
  if (input.rollups === false) return run(compileQuery(input))
  const fromItems = itemRollupMetrics(input)
  if (fromItems !== undefined) return runApart(input, [fromItems, input.metrics.filter((m) => !fromItems.includes(m))])
  const others = input.metrics.filter((m) => m !== "bot_events")
  if (input.dimensions.length > 0 || others.length === 0 || others.length === input.metrics.length) {
    return runStatement(input)
  }
  return runApart(input, [others, ["bot_events"]])
}

/**
 * One statement of a query. One that reads the events of its period's visits asks their last
 * event first (StatsSql.ts `readsVisitEvents`), so that its statement bounds the events by a
 * value the planner sees. (Two statements, two snapshots: an event stored between them may be
 * left out, as if the query had run a moment earlier.)
 */
const runStatement = (input: CompileInput) => {
  if (readsVisitEvents(input)) {
    return Effect.flatMap(run(lastVisitEventSql(input)), (rows) => {
      return run(compileQuery({ ...input, eventsUntilMs: epochMsOf(rows[0]?.["until"]) }))
    })
  }
  const key = sharedVisitsKey(input)
  if (key === undefined) return run(compileQuery(input))
  return Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const shared = sharedVisitsResolver(sql)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      shared.arrivals.lastMs = now
      return Effect.request(SharedVisits({ input, key }), shared.resolver)
    })
  })
}

type Rows = ReadonlyArray<Record<string, unknown>>

/** A statement of the visits path under a content filter, which others may share (StatsSql.ts `sharedVisitsKey`). */
interface SharedVisits extends Request.Request<Rows, InvalidQuery | SqlError> {
  readonly _tag: "SharedVisits"
  readonly input: CompileInput
  readonly key: string
}
const SharedVisits = Request.tagged<SharedVisits>("SharedVisits")

/**
 * How long the first of such statements waits at most for others with the same visits. A
 * dashboard page sends its tables' queries at once (the Pages page under a page filter: entry
 * and exit pages; Traffic: five, Audience: seven), but they reach this point spread over up to
 * 70 ms on a busy machine: each request is read, authenticated by a lookup in PostgreSQL (whose
 * cores the page's other statements keep busy) and checked first. So the statement waits while
 * a request received is still on that way ({@link arriving}) or the last query that may share
 * came less than {@link SHARE_QUIET_MS} ago — at most this long after the first.
 */
export const SHARE_WINDOW_MS = 50
/** the quiet time that ends the wait for more queries to share a statement with */
export const SHARE_QUIET_MS = 5

/** the stats requests received and not yet answered or handed to their statements ({@link arriving}) */
let requestsArriving = 0

/**
 * A stats request's way from its receipt to its query (authentication, body, validation): while
 * one is on it, a statement that may share its visits waits for it ({@link SHARE_WINDOW_MS}).
 */
export const arriving = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    requestsArriving++
    return Effect.ensuring(effect, Effect.sync(() => requestsArriving--))
  })
/** at most this many queries in one statement */
const SHARE_MAX = 16

interface SharedVisitsResolver {
  readonly resolver: RequestResolver.RequestResolver<SharedVisits>
  /** when the last query that may share its visits arrived (whatever its visits) */
  readonly arrivals: { lastMs: number }
}

const resolvers = new WeakMap<SqlClient.SqlClient, SharedVisitsResolver>()

/**
 * The statements of one database that share their visits: those with the same key that arrive
 * until no request is on its way and none came for {@link SHARE_QUIET_MS} (at most {@link
 * SHARE_WINDOW_MS} after the first) run as one (StatsSql.ts `compileSharedVisits`) — the
 * period's filtered visits are then read once instead of once per table; a lone one runs as it is.
 */
const sharedVisitsResolver = (sql: SqlClient.SqlClient): SharedVisitsResolver => {
  const known = resolvers.get(sql)
  if (known !== undefined) return known
  const arrivals = { lastMs: 0 }
  const quiet = Effect.gen(function*() {
    const first = yield* Clock.currentTimeMillis
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const untilQuiet = requestsArriving > 0 ? SHARE_QUIET_MS : arrivals.lastMs + SHARE_QUIET_MS - now
      const wait = Math.min(untilQuiet, first + SHARE_WINDOW_MS - now)
      if (wait <= 0) return
      yield* Effect.sleep(wait)
    }
  })
  const resolver = RequestResolver.makeWith<SharedVisits>({
    batchKey: (entry) => entry.request.key,
    delay: quiet,
    collectWhile: (entries) => entries.size < SHARE_MAX,
    runAll: (entries) =>
      Effect.gen(function*() {
        if (entries.length === 1) {
          entries[0].completeUnsafe(yield* Effect.exit(run(compileQuery(entries[0].request.input))))
          return
        }
        const exit = yield* Effect.exit(run(compileSharedVisits(entries.map((entry) => entry.request.input))))
        if (Exit.isFailure(exit)) {
          for (const entry of entries) entry.completeUnsafe(exit)
          return
        }
        yield* EffectMetric.update(Metrics.sharedQueries, entries.length)
        yield* EffectMetric.update(Metrics.sharedStatements, 1)
        const rows: Array<Array<Record<string, unknown>>> = entries.map(() => [])
        for (const row of exit.value) rows[Number(row["q"])]!.push(row["r"] as Record<string, unknown>)
        entries.forEach((entry, k) => entry.completeUnsafe(Exit.succeed(rows[k]!)))
      }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  })
  const made = { resolver, arrivals }
  resolvers.set(sql, made)
  return made
}

/** A timestamp column's value as epoch milliseconds (null when NULL). */
const epochMsOf = (value: unknown): number | null =>
  value instanceof Date ? value.getTime() : typeof value === "string" ? Date.parse(value) : null

/** `input` as one statement per group of its metrics, at once; rows joined by their dimension values (no paging in SQL). */
const runApart = (input: CompileInput, groups: ReadonlyArray<ReadonlyArray<Metric>>) => {
  const keyOfRow = (row: Record<string, unknown>) => JSON.stringify(input.dimensions.map((_, i) => String(row[dimensionAlias(i)])))
  return Effect.map(
    Effect.all(groups.map((metrics) => runStatement({ ...input, metrics, orderBy: [] })), { concurrency: "unbounded" }),
    (answers) => {
      const joined = new Map<string, Record<string, unknown>>()
      for (const rows of answers) {
        for (const row of rows) {
          const key = keyOfRow(row)
          joined.set(key, { ...joined.get(key), ...row })
        }
      }
      return [...joined.values()]
    }
  )
}

/** The body's site must be one of the key's site's hostnames. */
export const checkSite = (site: StatsSite, asked: string): Effect.Effect<void, SiteMismatch> => {
  const host = asked.trim().toLowerCase().replace(/\.$/, "")
  return site.hostnames.includes(host)
    ? Effect.void
    : Effect.fail(new SiteMismatch({ message: `this key belongs to ${site.hostname}, not to ${asked}` }))
}

const periodOf = Effect.fn("Stats.period")(function*(site: StatsSite, range: StatsQuery["dateRange"]) {
  const now = yield* Clock.currentTimeMillis
  let earliest: number | null = null
  if (range.kind === "all") {
    const rows = yield* run(earliestSql(site.id))
    earliest = epochMsOf(rows[0]?.earliest)
  }
  const period = resolvePeriod(range, now, site.timezone, earliest)
  return period instanceof InvalidQuery ? yield* Effect.fail(period) : period
})

const dimensionValue = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

const rowsOf = (query: StatsQuery, rows: ReadonlyArray<Record<string, unknown>>): Array<ResultRow> =>
  rows.map((row) => ({
    dimensions: query.dimensions.map((_, i) => dimensionValue(row[dimensionAlias(i)])),
    metrics: query.metrics.map((m) => metricValue(m, row[metricAlias(m)]))
  }))

/** With a time dimension as the only dimension: every bucket of the period, empty ones as zeros. */
const fillBuckets = (query: StatsQuery, period: Period, tz: string, rows: Array<ResultRow>): Array<ResultRow> => {
  const grain = query.dimensions.length === 1 ? timeGrainOf(query.dimensions[0]!) : undefined
  if (grain === undefined) return rows
  const byLabel = new Map(rows.map((r) => [r.dimensions[0], r]))
  return bucketLabels(period.fromMs, period.toMs, tz, grain).map((label) =>
    byLabel.get(label) ?? { dimensions: [label], metrics: query.metrics.map(() => 0) }
  )
}

/** Sorting and paging done here (time series, after the filling): the SQL's order, on values. */
const sortAndPage = (query: StatsQuery, rows: Array<ResultRow>): Array<ResultRow> => {
  const keys: Array<readonly [(r: ResultRow) => string | number | null, number]> = []
  const add = (name: string, dir: "asc" | "desc") => {
    const di = query.dimensions.indexOf(name as never)
    const mi = query.metrics.indexOf(name as Metric)
    keys.push([(r) => (di >= 0 ? r.dimensions[di]! : r.metrics[mi]!), dir === "asc" ? 1 : -1])
  }
  for (const [name, dir] of query.orderBy) add(name, dir)
  if (query.orderBy.length === 0) {
    const time = query.dimensions.find(isTimeDimension)
    if (time !== undefined) add(time, "asc")
  }
  query.dimensions.forEach((d) => add(d, "asc"))
  const sorted = [...rows].sort((a, b) => {
    for (const [key, dir] of keys) {
      const x = key(a)
      const y = key(b)
      if (x === y) continue
      if (x === null) return 1
      if (y === null) return -1
      return (x < y ? -1 : 1) * dir
    }
    return 0
  })
  return sorted.slice(query.offset, query.offset + query.limit)
}

/** A row's key for matching it with the previous period: the time bucket by its position. */
const keyOf = (query: StatsQuery, labels: ReadonlyArray<string> | null, row: ResultRow): string =>
  JSON.stringify(query.dimensions.map((d, i) => (isTimeDimension(d) && labels !== null ? labels.indexOf(row.dimensions[i]!) : row.dimensions[i])))

const rangeOf = (period: Period, tz: string) => [formatInstant(period.fromMs, tz), formatInstant(period.toMs, tz)] as const

/**
 * Runs a validated query for `site` (already authenticated; `query.site` checked here).
 * `options.rollups: false` never reads the visit or item rollups, `options.items: false` never
 * `visit_items` (tests compare the paths: StatsSql.ts `queryPath`).
 */
export const runQuery = Effect.fn("Stats.runQuery")(function*(
  site: StatsSite,
  query: StatsQuery,
  options?: { readonly rollups?: boolean; readonly items?: boolean }
) {
  yield* checkSite(site, query.site)
  const tz = site.timezone
  const period = yield* periodOf(site, query.dateRange)
  const time = query.dimensions.find(isTimeDimension)
  const grain = time === undefined ? undefined : timeGrainOf(time)
  if (grain !== undefined && bucketCount(period, tz, grain) > MAX_BUCKETS) {
    return yield* Effect.fail(
      new InvalidQuery({
        field: "dimensions",
        message: `${time} over this date range gives more than ${MAX_BUCKETS} buckets; use a coarser one or a shorter range`,
        allowed: ["time:hour", "time:day", "time:week", "time:month"]
      })
    )
  }
  const base = {
    siteId: site.id,
    timezone: tz,
    active: query.dateRange.kind === "realtime",
    metrics: query.metrics,
    dimensions: query.dimensions,
    filters: query.filters,
    orderBy: query.orderBy,
    rollups: options?.rollups ?? true,
    items: options?.items ?? true
  }
  const paged = time === undefined
  const comparison = query.compare === "previous_period" ? previousPeriod(period) : undefined
  // the period and the one before it at once (two connections of the pool): a comparison costs
  // the longer of the two statements, not their sum
  const [currentRows, previousRows] = yield* Effect.all([
    runInput({ ...base, period, page: paged ? { limit: query.limit, offset: query.offset } : null }),
    comparison === undefined ? Effect.succeed([]) : runInput({ ...base, period: comparison, page: null })
  ], { concurrency: 2 })
  const current = rowsOf(query, currentRows)
  const results = paged ? current : sortAndPage(query, fillBuckets(query, period, tz, current))
  if (comparison !== undefined) {
    const previous = fillBuckets(query, comparison, tz, rowsOf(query, previousRows))
    const currentLabels = grain === undefined ? null : bucketLabels(period.fromMs, period.toMs, tz, grain)
    const previousLabels = grain === undefined ? null : bucketLabels(comparison.fromMs, comparison.toMs, tz, grain)
    const byKey = new Map(previous.map((r) => [keyOf(query, previousLabels, r), r]))
    for (const row of results) {
      const prev = byKey.get(keyOf(query, currentLabels, row))?.metrics ?? query.metrics.map(() => 0)
      row.comparison = { metrics: prev, change: row.metrics.map((v, i) => percentChange(v, prev[i]!)) }
    }
  }
  const answer: QueryAnswer = {
    results,
    meta: {
      site: site.hostname,
      metrics: query.metrics,
      dimensions: query.dimensions,
      date_range: rangeOf(period, tz),
      timezone: tz,
      ...(comparison === undefined ? {} : { comparison_date_range: rangeOf(comparison, tz) })
    }
  }
  return answer
})

const round1 = (v: number) => Math.round(v * 10) / 10

/** Runs a validated funnel for `site`. */
export const runFunnel = Effect.fn("Stats.runFunnel")(function*(site: StatsSite, funnel: FunnelQuery) {
  yield* checkSite(site, funnel.site)
  const period = yield* periodOf(site, funnel.dateRange)
  const rows = yield* run(compileFunnel({ siteId: site.id, period, windowMinutes: funnel.windowMinutes, steps: funnel.steps, filters: funnel.filters }))
  const counts = funnel.steps.map((_, i) => Number(rows[0]?.[`c${i + 1}`] ?? 0))
  const first = counts[0] ?? 0
  const answer: FunnelAnswer = {
    steps: funnel.steps.map((step, i) => {
      const previous = i === 0 ? counts[0]! : counts[i - 1]!
      return {
        step: i + 1,
        label: stepLabel(step),
        visitors: counts[i]!,
        conversion_rate: first === 0 ? 0 : round1((counts[i]! / first) * 100),
        conversion_rate_step: previous === 0 ? 0 : round1((counts[i]! / previous) * 100),
        drop_off: previous - counts[i]!
      }
    }),
    meta: { site: site.hostname, date_range: rangeOf(period, site.timezone), timezone: site.timezone, window_minutes: funnel.windowMinutes }
  }
  return answer
})

const METRIC_TITLES: Record<Metric, string> = {
  visitors: "visitors",
  visits: "visits",
  pageviews: "pageviews",
  views_per_visit: "views/visit",
  bounce_rate: "bounce %",
  visit_duration: "duration s",
  events: "events",
  conversions: "conversions",
  conversion_rate: "conv. %",
  revenue: "revenue",
  bot_events: "bot events"
}

/** `spoolway stats`' table: one line per metric, or one row per dimension value. */
export const formatStats = (answer: QueryAnswer): string => {
  const { meta } = answer
  const head = `${meta.site} · ${meta.date_range[0]} – ${meta.date_range[1]} (${meta.timezone})`
  if (meta.dimensions.length === 0) {
    const values = answer.results[0]?.metrics ?? meta.metrics.map(() => 0)
    const width = Math.max(...meta.metrics.map((m) => METRIC_TITLES[m].length))
    return [head, ...meta.metrics.map((m, i) => `  ${METRIC_TITLES[m].padEnd(width)}  ${values[i]}`)].join("\n")
  }
  const header = [...meta.dimensions, ...meta.metrics.map((m) => METRIC_TITLES[m])]
  const rows = answer.results.map((r) => [...r.dimensions.map((d) => d ?? "(none)"), ...r.metrics.map(String)])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const nd = meta.dimensions.length
  const line = (cells: ReadonlyArray<string>) =>
    "  " + cells.map((c, i) => (i < nd ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()
  return [head, line(header), ...rows.map(line), ...(rows.length === 0 ? ["  (no data)"] : [])].join("\n")
}
