/**
 * Tenant lookup (docs/architecture.md, enrichment): hostname → (domain_id, corp_id) from `domains`, held in
 * memory and refreshed in the background (default every 60 s) by a fiber scoped to the layer.
 * Lookups are synchronous. A hostname is looked up as given (lower-case, see Tenant.ts), then
 * with a leading `www.` removed or added, so `www.example.com` finds `example.com` when only
 * one of them is registered; unknown → null.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import type { Tenant } from "../domain/Tenant.ts"

export class Domains extends Context.Service<Domains, {
  resolve(hostname: string | null): Tenant | null
  /** Reloads the table now. */
  readonly refresh: Effect.Effect<void, SqlError>
  readonly size: () => number
}>()("spoolway/layers/Domains") {
  static readonly layerWith = (options: { readonly refreshEvery?: Duration.Input } = {}) =>
    Layer.effect(
      Domains,
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        let table = new Map<string, Tenant>()

        const refresh = Effect.gen(function*() {
          const rows = yield* sql<{ readonly id: number; readonly hostname: string; readonly corp_id: number | null }>`
            SELECT id, hostname, corp_id FROM domains`
          const next = new Map<string, Tenant>()
          for (const row of rows) next.set(row.hostname.toLowerCase(), { domainId: row.id, corpId: row.corp_id })
          table = next
        })

        const resolve = (hostname: string | null): Tenant | null => {
          if (hostname === null || table.size === 0) return null
          const exact = table.get(hostname)
          if (exact !== undefined) return exact
          return (hostname.startsWith("www.") ? table.get(hostname.slice(4)) : table.get(`www.${hostname}`)) ?? null
        }

        yield* refresh
        yield* Effect.sleep(options.refreshEvery ?? Duration.seconds(60)).pipe(
          Effect.andThen(refresh),
          Effect.catchCause((cause) => Effect.logWarning("domains refresh failed", cause)),
          Effect.forever,
          Effect.forkScoped
        )

        return Domains.of({ resolve, refresh, size: () => table.size })
      })
    )

  static readonly layer = Domains.layerWith()
}
