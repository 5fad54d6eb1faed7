/**
 * /health, /health/live, /health/ready. What "health" reports depends on the role:
 * the collector contributes its queue route and spool, the writer its progress.
 */
import { Context, Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { EventQueue } from "../layers/EventQueue.ts"
import { Api } from "./Api.ts"
import { json } from "./Responses.ts"

export interface HealthReport {
  /** ready = this process can do its job (collector: primary or spool takes writes) */
  readonly ready: boolean
  readonly fields: Record<string, unknown>
}

export class HealthSource extends Context.Service<HealthSource, {
  readonly report: Effect.Effect<HealthReport>
}>()("spoolway/http/HealthSource") {
  /** The collector's view: route state, spool depth and age, counters. */
  static readonly collector = Layer.effect(
    HealthSource,
    Effect.gen(function*() {
      const queue = yield* EventQueue
      return HealthSource.of({
        report: Effect.map(queue.status, (status) => ({
          ready: status.primaryHealthy || status.spoolHealthy,
          fields: {
            primaryHealthy: status.primaryHealthy,
            spoolHealthy: status.spoolHealthy,
            spoolDepth: status.spoolDepth,
            oldestSpooledAgeMs: status.oldestSpooledAgeMs,
            counters: status.counters
          }
        }))
      })
    })
  )
}

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
