/** GET /metrics: Prometheus text format of every Effect metric; gauges refreshed first. */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { HealthSource } from "./Health.ts"

export const MetricsRoute = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const source = yield* HealthSource
    yield* router.add(
      "GET",
      "/metrics",
      Effect.gen(function*() {
        // the health report reads spool depth, lag, … and sets the gauges
        yield* source.report
        const text = yield* PrometheusMetrics.format()
        return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      })
    )
  })
)

export type MetricsRouteLayer = Layer.Success<typeof MetricsRoute>
