/**
 * /health, /health/live, /health/ready. What "health" reports depends on the role:
 * the collector contributes its queue route and spool, the writer its progress.
 */
import { Context, Effect, Layer, Metric } from "effect"
import { SqlClient } from "effect/sql"
import { HttpApiBuilder } from "effect/http-api"
import { EventQueue } from "../layers/EventQueue.ts"
import * as Metrics from "../layers/Metrics.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { SiteRegistry } from "../layers/SiteRegistry.ts"
import { streamStatus } from "../layers/StreamConsumer.ts"
import { Writer } from "../programs/Writer.ts"
import { Api } from "./Api.ts"
import { json } from "./Responses.ts"

export interface HealthReport {
  /** ready = this process can do its job (collector: primary or spool takes writes) */
  readonly ready: boolean
  readonly fields: Record<string, unknown>
}

/** The collector's view: route state, spool depth and age, counters. */
const collectorReport = Effect.gen(function*() {
  const queue = yield* EventQueue
  const sites = yield* SiteRegistry
  return Effect.map(queue.status, (status): HealthReport => ({
    ready: status.primaryHealthy || status.spoolHealthy,
    fields: {
      primaryHealthy: status.primaryHealthy,
      spoolHealthy: status.spoolHealthy,
      spoolDepth: status.spoolDepth,
      oldestSpooledAgeMs: status.oldestSpooledAgeMs,
      inDoubt: status.inDoubt,
      counters: status.counters,
      // what the tracking API enforces: open, or N sites (registry version, where it came from)
      sites: sites.info()
    }
  }))
})

/** The writer's view: its counters and the stream (length, lag, pending); sets the stream gauges. */
const writerReport = Effect.gen(function*() {
  const writer = yield* Writer
  const { client } = yield* PrimaryRedis
  const partitions = writer.partitions
  if (partitions !== undefined) return partitionedReport(writer, partitions)
  return Effect.gen(function*() {
    const snapshot = yield* writer.snapshot
    const stream = yield* streamStatus(client, writer.options.streamKey, writer.options.group).pipe(
      Effect.orElseSucceed(() => null)
    )
    if (stream !== null) {
      yield* Metric.update(Metrics.pending, stream.pending)
      if (stream.lag !== null) yield* Metric.update(Metrics.streamLag, stream.lag)
    }
    return {
      // the writer can work while it reaches the primary stream
      ready: stream !== null,
      fields: { writer: snapshot, stream }
    } satisfies HealthReport
  })
})

/**
 * A partitioned log (Redis Cluster): every partition's length, lag and pending (gauges per
 * partition, and the totals in the stream gauges); ready while every partition's node answers.
 */
const partitionedReport = (writer: Writer["Service"], partitions: NonNullable<Writer["Service"]["partitions"]>) =>
  Effect.gen(function*() {
    const snapshot = yield* writer.snapshot
    const states = yield* partitions
    let lag = 0
    let pending = 0
    for (const state of states) {
      if (state.stream === null) continue
      pending += state.stream.pending
      yield* Metric.update(Metrics.partitionPending(state.partition), state.stream.pending)
      if (state.stream.lag !== null) {
        lag += state.stream.lag
        yield* Metric.update(Metrics.partitionLag(state.partition), state.stream.lag)
      }
    }
    yield* Metric.update(Metrics.pending, pending)
    yield* Metric.update(Metrics.streamLag, lag)
    return {
      ready: states.every((state) => state.stream !== null),
      fields: {
        writer: snapshot,
        stream: { lag, pending, partitions: states.length, owned: states.filter((s) => s.owned).map((s) => s.partition) },
        partitions: states
      }
    } satisfies HealthReport
  })

/** The stats API's view: whether PostgreSQL answers (within 2 s). */
const apiReport = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return sql`SELECT 1`.pipe(
    Effect.timeout("2 seconds"),
    Effect.as<HealthReport>({ ready: true, fields: { database: "ok" } }),
    Effect.orElseSucceed((): HealthReport => ({ ready: false, fields: { database: "unreachable" } }))
  )
})

/**
 * One process, several parts: the fields of every part; readiness is the first part's (the one
 * traffic is routed to it for). Role `all` is ready while its collector takes events — a primary
 * Redis outage leaves the writer waiting (reported under `writer` and `stream`) while the spool
 * keeps accepting, and an orchestrator must not restart the process that holds that spool.
 */
const combine = (reports: readonly [Effect.Effect<HealthReport>, ...Array<Effect.Effect<HealthReport>>]): Effect.Effect<HealthReport> =>
  Effect.map(Effect.all(reports, { concurrency: "unbounded" }), (all) => ({
    ready: all[0]!.ready,
    fields: Object.assign({}, ...all.map((r) => r.fields))
  }))

export class HealthSource extends Context.Service<HealthSource, {
  readonly report: Effect.Effect<HealthReport>
}>()("spoolway/http/HealthSource") {
  static readonly collector = Layer.effect(HealthSource, Effect.map(collectorReport, (report) => HealthSource.of({ report })))
  static readonly writer = Layer.effect(HealthSource, Effect.map(writerReport, (report) => HealthSource.of({ report })))
  static readonly all = Layer.effect(
    HealthSource,
    Effect.map(Effect.all([collectorReport, writerReport, apiReport]), (reports) => HealthSource.of({ report: combine(reports) }))
  )
  static readonly api = Layer.effect(HealthSource, Effect.map(apiReport, (report) => HealthSource.of({ report })))
}

/** Also serves `WriterApi`: same API id, same group. */
export const HealthHandlers = HttpApiBuilder.group(
  Api,
  "health",
  Effect.fn(function*(handlers) {
    const source = yield* HealthSource
    return handlers
      .handleRaw("health", () =>
        Effect.map(source.report, (r) =>
          json(r.ready ? 200 : 503, {
            status: r.ready ? (r.fields["primaryHealthy"] === false ? "degraded" : "ok") : "unavailable",
            ...r.fields
          })
        ))
      .handleRaw("live", () => Effect.succeed(json(200, { status: "ok" })))
      .handleRaw("ready", () =>
        Effect.map(source.report, (r) => json(r.ready ? 200 : 503, { status: r.ready ? "ready" : "not_ready" })))
  })
)
