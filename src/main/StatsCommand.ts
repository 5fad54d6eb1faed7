/**
 * `spoolway stats <site> [--range 7d] [--by source] [--metrics …] [--limit 20] [--json]`: the
 * stats query API's numbers in a terminal, without SQL (docs/operations.md "Stats"). Reads the
 * database directly (the same programs as `POST /api/v1/query`), so it needs no key.
 */
import { Console, Effect, Layer } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { InvalidQuery, parseQuery } from "../domain/StatsQuery.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { SiteStore } from "../layers/SiteStore.ts"
import * as Sql from "../layers/Sql.ts"
import { formatStats, runQuery } from "../programs/Stats.ts"

const attached = AppConfig.layerWith({ embeddedAttach: true })
const withStore = SiteStore.layer.pipe(Layer.provideMerge(Sql.layer()), Layer.provideMerge(attached))

const DEFAULT_METRICS = "visitors,visits,pageviews,bounce_rate,visit_duration"

const userError = (message: string) => new CliError.UserError({ cause: new Error(message), userMessage: message })

/** `--range`: a named range, or `FROM..TO` (ISO dates or date-times). */
const rangeOf = (range: string): unknown => {
  const parts = range.split("..")
  return parts.length === 2 ? parts : range
}

export const statsCommand = Command.make(
  "stats",
  {
    site: Argument.String("site").pipe(Argument.withDescription("the site's hostname (or one of its aliases)")),
    range: Flag.String("range").pipe(
      Flag.withDefault("7d"),
      Flag.withDescription("day, 7d, 30d, month, 6mo, 12mo, all, realtime, or FROM..TO (ISO dates), in the site's time zone")
    ),
    by: Flag.String("by").pipe(
      Flag.optional,
      Flag.withDescription("a dimension to break down by: source, page, country, device, time:day, … (docs/api.md)")
    ),
    metrics: Flag.String("metrics").pipe(Flag.withDefault(DEFAULT_METRICS), Flag.withDescription("comma-separated metrics")),
    limit: Flag.Int("limit").pipe(Flag.withDefault(20), Flag.withDescription("rows of a breakdown (time series: all buckets)")),
    json: Flag.Boolean("json").pipe(Flag.withDescription("print the API's JSON answer"), Flag.withDefault(false))
  },
  ({ by, json, limit, metrics, range, site }) =>
    Effect.gen(function*() {
      const store = yield* SiteStore
      const record = yield* store.find(site)
      const dimension = by._tag === "Some" ? by.value : undefined
      const series = dimension?.startsWith("time:") === true
      const query = parseQuery({
        site: record.hostname,
        metrics: metrics.split(",").map((m) => m.trim()).filter((m) => m.length > 0),
        date_range: rangeOf(range),
        dimensions: dimension === undefined ? [] : [dimension],
        limit: series ? 10_000 : limit
      })
      if (query instanceof InvalidQuery) {
        const flag = query.field.startsWith("metrics") ? "--metrics" : query.field.startsWith("dimensions") ? "--by" : query.field.startsWith("date_range") ? "--range" : query.field
        return yield* Effect.fail(userError(`${flag}: ${query.message}; allowed: ${query.allowed.join(", ")}`))
      }
      const answer = yield* runQuery({ id: record.id, hostname: record.hostname, hostnames: [record.hostname, ...record.aliases], timezone: record.timezone }, query)
      yield* Console.log(json ? JSON.stringify(answer, null, 2) : formatStats(answer))
    }).pipe(
      Effect.catchTags({
        SiteNotFound: (e) => Effect.fail(userError(e.message)),
        InvalidQuery: (e) => Effect.fail(userError(`${e.field}: ${e.message}`)),
        SiteMismatch: (e) => Effect.fail(userError(e.message))
      }),
      Effect.provide(withStore)
    )
).pipe(Command.withDescription("a site's visitors, visits, pageviews, bounce rate, duration — totals or by a dimension"))
