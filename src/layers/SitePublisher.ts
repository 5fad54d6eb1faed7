/**
 * SitePublisher: puts the site registry (src/domain/Site.ts `SiteSnapshot`) on the primary
 * Redis, where collectors read it — a collector never needs PostgreSQL.
 *
 * The CLI publishes after each change (`spoolway sites …`); every writer also checks the
 * registry version in PostgreSQL every SITES_REFRESH_MS and publishes a change it finds (a CLI
 * run that could not reach Redis, a primary Redis that lost its data), and republishes every
 * minute regardless. A publication is a compare-and-set on the version: an older snapshot never
 * replaces a newer one, whoever publishes last.
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import type { Redis } from "ioredis"
import { encodeSnapshotJson, type SiteSnapshot } from "../domain/Site.ts"
import { sitesKey, sitesVersionKey } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import { SiteStore } from "./SiteStore.ts"

const PUBLISH = `
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) >= current then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0`

/** Publishes `snapshot` unless the primary holds a newer one; true when it was written. */
export const publishSnapshot = (client: Redis, prefix: string, snapshot: SiteSnapshot) =>
  Effect.tryPromise({
    try: () => client.eval(PUBLISH, 2, sitesKey(prefix), sitesVersionKey(prefix), encodeSnapshotJson(snapshot), String(snapshot.version)),
    catch: (cause) => new Error(`could not publish the site registry to the primary Redis: ${String(cause)}`)
  }).pipe(
    Effect.timeout(Duration.seconds(5)),
    Effect.map((written) => written === 1)
  )

/** Republish even without a change every this many checks (≈ a minute at the default 2 s). */
const FORCE_EVERY = 30

export class SitePublisher extends Context.Service<SitePublisher, {
  /** publishes now when the registry changed since the last publication (or when forced) */
  publish(force: boolean): Effect.Effect<void>
}>()("spoolway/layers/SitePublisher") {
  /** Needs SiteStore, PrimaryRedis and AppConfig; runs its checks while the layer lives. */
  static readonly layerStore = Layer.effect(
    SitePublisher,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const store = yield* SiteStore
      const primary = yield* PrimaryRedis
      let published = -1
      const publish = (force: boolean) =>
        Effect.gen(function*() {
          const version = yield* store.version
          // no site was ever added: nothing to publish (collectors are open without a registry)
          if (version === 0 || (!force && version === published)) return
          const snapshot = yield* store.snapshot
          yield* publishSnapshot(primary.client, config.streamPrefix, snapshot)
          if (published !== snapshot.version) {
            yield* Effect.logInfo(`site registry version ${snapshot.version} published (${snapshot.sites.length} site(s))`)
          }
          published = snapshot.version
        }).pipe(Effect.catchCause((cause) => Effect.logWarning("site registry: publication failed; retrying", cause)))

      let checks = 0
      yield* Effect.suspend(() => publish(checks++ % FORCE_EVERY === 0)).pipe(
        Effect.repeat(Schedule.spaced(Duration.millis(config.sitesRefreshMs))),
        Effect.forkScoped
      )
      return SitePublisher.of({ publish })
    })
  )

  /** Needs SqlClient, PrimaryRedis and AppConfig. */
  static readonly layer = SitePublisher.layerStore.pipe(Layer.provide(SiteStore.layer))
}
