/** Request-level counters (rejections by reason) kept per process for /health and /metrics. */
import { Context, Effect, Layer } from "effect"

export class HttpMetrics extends Context.Service<HttpMetrics, {
  rejected(reason: string): void
  snapshot(): Record<string, number>
}>()("spoolway/http/HttpMetrics") {
  static readonly layer = Layer.effect(
    HttpMetrics,
    Effect.sync(() => {
      const rejected = new Map<string, number>()
      return HttpMetrics.of({
        rejected: (reason) => {
          rejected.set(reason, (rejected.get(reason) ?? 0) + 1)
        },
        snapshot: () => Object.fromEntries(rejected)
      })
    })
  )
}
