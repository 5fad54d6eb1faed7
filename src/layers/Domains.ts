/**
 * Tenant lookup (docs/architecture.md, enrichment): hostname → (domain_id, corp_id) from `domains`, held in
 * memory and refreshed in the background (default every 60 s) by a fiber scoped to the layer.
 * Lookups are synchronous. A hostname is looked up as given (lower-case, see Tenant.ts), then
 * with a leading `www.` removed or added, so `www.example.com` finds `example.com` when only
 * one of them is registered; unknown → null. A site's alias hostname (`www.` or any other,
 * `spoolway sites add --alias`) resolves to the site's own id. Besides the full refresh, the
 * table is reloaded within `sitesCheckEvery` (2 s) of a change made with `spoolway sites`
 * (`site_registry.version`), and at once when the writer meets a site id it does not know
 * (`refreshForUnknown`), so a new site's first events find it. The same loads carry each
 * site's settings the writer applies (`datacenterTraffic`, migration 0005).
 */
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { DEFAULT_DATACENTER_TRAFFIC, type DatacenterTraffic, isDatacenterTraffic } from "../domain/Site.ts"
import type { Tenant } from "../domain/Tenant.ts"

export class Domains extends Context.Service<Domains, {
  resolve(hostname: string | null): Tenant | null
  /** the tenant of a site (or domain) by its id; null when unknown (e.g. purged) */
  byId(id: number): Tenant | null
  /**
   * a site's `datacenterTraffic` setting; `flag` (the default) for a domain without a site or an
   * unknown id. Optional so that fixed test tables need not name it: absent means `flag` everywhere.
   */
  datacenterTraffic?(id: number | null): DatacenterTraffic
  /** Reloads the table now. */
  readonly refresh: Effect.Effect<void, SqlError>
  /**
   * For site ids `byId` does not know (a site added since the last load): reloads the table at
   * once when one of them was never looked for, however recent the last load (a load that ran
   * just before the site was added does not know it). Ids a load looked for and did not find (a
   * purged site whose events are still in the stream) reload it at most once a second.
   */
  readonly refreshForUnknown: (ids: ReadonlyArray<number>) => Effect.Effect<void, SqlError>
  readonly size: () => number
}>()("spoolway/layers/Domains") {
  static readonly layerWith = (
    options: { readonly refreshEvery?: Duration.Input; readonly sitesCheckEvery?: Duration.Input } = {}
  ) =>
    Layer.effect(
      Domains,
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        let table = new Map<string, Tenant>()
        let byId = new Map<number, Tenant>()
        /** sites whose datacenterTraffic is not the default */
        let datacenter = new Map<number, DatacenterTraffic>()
        let sitesVersion: string | undefined
        let loadedAt = Number.NEGATIVE_INFINITY

        const refresh = Effect.gen(function*() {
          const startedAt = yield* Clock.currentTimeMillis
          // an alias of a site (domains.site_id, migration 0003) resolves to the site's id
          const rows = yield* sql<{
            readonly id: number
            readonly hostname: string
            readonly corp_id: number | null
            readonly datacenter_traffic: string | null
          }>`
            SELECT coalesce(d.site_id, d.id) AS id, d.hostname, d.corp_id, s.datacenter_traffic
            FROM domains d LEFT JOIN sites s ON s.id = d.site_id`
          const next = new Map<string, Tenant>()
          const nextById = new Map<number, Tenant>()
          const nextDatacenter = new Map<number, DatacenterTraffic>()
          for (const row of rows) {
            const tenant: Tenant = { domainId: row.id, corpId: row.corp_id }
            next.set(row.hostname.toLowerCase(), tenant)
            if (!nextById.has(row.id)) nextById.set(row.id, tenant)
            const setting = row.datacenter_traffic
            if (setting !== null && setting !== DEFAULT_DATACENTER_TRAFFIC && isDatacenterTraffic(setting)) {
              nextDatacenter.set(row.id, setting)
            }
          }
          table = next
          byId = nextById
          datacenter = nextDatacenter
          loadedAt = startedAt
        })

        /** site ids a load has looked for and not found */
        const lookedFor = new Set<number>()
        const refreshForUnknown = (ids: ReadonlyArray<number>): Effect.Effect<void, SqlError> =>
          Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void, SqlError> => {
            // a new id at once; ids looked for before (every load looks for all): once a second
            if (!ids.some((id) => !lookedFor.has(id)) && now - loadedAt < 1_000) return Effect.void
            return Effect.andThen(refresh, Effect.sync(() => {
              // (bounded: the ids the collector admitted events for, so sites that existed)
              if (lookedFor.size > 10_000) lookedFor.clear()
              for (const id of ids) {
                if (byId.has(id)) lookedFor.delete(id)
                else lookedFor.add(id)
              }
            }))
          })

        const versionOf = Effect.map(
          sql<{ readonly version: string }>`SELECT version::text AS version FROM site_registry`,
          (rows) => rows[0]?.version
        )
        const refreshOnSiteChange = Effect.gen(function*() {
          const version = yield* versionOf
          if (version === sitesVersion) return
          yield* refresh
          sitesVersion = version
        })

        const resolve = (hostname: string | null): Tenant | null => {
          if (hostname === null || table.size === 0) return null
          const exact = table.get(hostname)
          if (exact !== undefined) return exact
          return (hostname.startsWith("www.") ? table.get(hostname.slice(4)) : table.get(`www.${hostname}`)) ?? null
        }

        sitesVersion = yield* versionOf
        yield* refresh
        yield* Effect.sleep(options.sitesCheckEvery ?? Duration.seconds(2)).pipe(
          Effect.andThen(refreshOnSiteChange),
          Effect.catchCause((cause) => Effect.logWarning("domains: site registry check failed", cause)),
          Effect.forever,
          Effect.forkScoped
        )
        yield* Effect.sleep(options.refreshEvery ?? Duration.seconds(60)).pipe(
          Effect.andThen(refresh),
          Effect.catchCause((cause) => Effect.logWarning("domains refresh failed", cause)),
          Effect.forever,
          Effect.forkScoped
        )

        return Domains.of({
          resolve,
          byId: (id) => byId.get(id) ?? null,
          datacenterTraffic: (id) => (id === null ? undefined : datacenter.get(id)) ?? DEFAULT_DATACENTER_TRAFFIC,
          refresh,
          refreshForUnknown,
          size: () => table.size
        })
      })
    )

  static readonly layer = Domains.layerWith()
}
