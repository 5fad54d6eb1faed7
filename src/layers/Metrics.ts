/**
 * Every Prometheus metric Spoolway exports (docs/operations.md, metrics), as Effect `Metric`s. Values
 * live in the `Metric.MetricRegistry` of the running program, so two pipelines in
 * one process (tests) do not mix counts. `/metrics` renders them with
 * `PrometheusMetrics.format`; gauges are refreshed just before each scrape.
 */
import { Metric } from "effect"

export const accepted = Metric.counter("spoolway_accepted_events_total", {
  description: "events durably accepted (primary or spool)",
  incremental: true
})
export const spooled = Metric.counter("spoolway_spooled_events_total", {
  description: "events written to the spool because the primary was unreachable",
  incremental: true
})
export const drained = Metric.counter("spoolway_drained_events_total", {
  description: "events forwarded from the spool to the primary",
  incremental: true
})
export const answeredPending = Metric.counter("spoolway_answered_pending_events_total", {
  description: "events answered 202 at ANSWER_DEADLINE_MS while their write was still in doubt (the collector then writes them until acknowledged)",
  incremental: true
})
export const inDoubt = Metric.gauge("spoolway_in_doubt_events", {
  description: "events whose write may or may not have landed, not yet acknowledged by Redis"
})
/** Rejected events (queue) and requests (HTTP), by reason. */
export const rejected = (reason: string) =>
  Metric.counter("spoolway_rejected_total", {
    description: "requests or events rejected, by reason",
    incremental: true,
    attributes: { reason }
  })
export const sharedQueries = Metric.counter("spoolway_stats_shared_queries_total", {
  description: "stats queries answered by a statement shared with others over the same filtered visits (a dashboard page's tables)",
  incremental: true
})
export const sharedStatements = Metric.counter("spoolway_stats_shared_statements_total", {
  description: "statements that answered several stats queries over the same filtered visits at once (queries per statement: shared_queries / shared_statements)",
  incremental: true
})
export const written = Metric.counter("spoolway_written_events_total", {
  description: "events newly stored in raw_events",
  incremental: true
})
export const duplicates = Metric.counter("spoolway_duplicate_events_total", {
  description: "redelivered events that were already stored (absorbed by the idempotent insert)",
  incremental: true
})
export const poison = Metric.counter("spoolway_poison_events_total", {
  description: "entries moved to ingest_failures",
  incremental: true
})
export const spoolDepth = Metric.gauge("spoolway_spool_depth", { description: "events waiting in the spool" })
export const streamLag = Metric.gauge("spoolway_stream_lag", {
  description: "entries in the primary stream not yet delivered to the writer group"
})
export const pending = Metric.gauge("spoolway_stream_pending", {
  description: "entries delivered to a writer but not yet acknowledged"
})
/** The same gauges per partition of a partitioned log (Redis Cluster). */
export const partitionLag = (partition: number) =>
  Metric.gauge("spoolway_partition_lag", {
    description: "entries of one partition's stream not yet delivered to its writers",
    attributes: { partition: String(partition) }
  })
export const partitionPending = (partition: number) =>
  Metric.gauge("spoolway_partition_pending", {
    description: "entries of one partition delivered to a writer, not yet acknowledged",
    attributes: { partition: String(partition) }
  })
export const primaryHealthy = Metric.gauge("spoolway_primary_healthy", { description: "1 when the primary Redis is healthy" })
export const requestDuration = Metric.histogram("spoolway_http_request_duration_seconds", {
  description: "tracking request latency",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 14 })
})
