/**
 * SiteRegistry: the sites a collector enforces (src/domain/Site.ts), learnt without PostgreSQL.
 *
 * The writer and the CLI publish the registry to the primary Redis (SitePublisher.ts). The
 * collector reads it there at start and then every SITES_REFRESH_MS (one GET of the version;
 * the registry itself only when the version changed), and keeps a copy of the last one it
 * adopted on its spool Redis — local to the collector, append-only. So:
 * - a database outage changes nothing here (the registry is in Redis);
 * - a primary outage keeps the registry in force (in memory; a restarted collector takes its
 *   local copy);
 * - it never goes back to an older version, and never drops to open mode because a read
 *   failed or the primary holds no registry: only a published registry without sites (every
 *   site removed) opens the collector again.
 * A collector that has never seen a registry (none published yet, or none reachable at its
 * first start) is in open mode, and says so loudly.
 */
import { Context, Duration, Effect, Exit, Layer, Schedule } from "effect"
import {
  decodeSnapshotJson,
  EMPTY_INDEX,
  indexSnapshot,
  type SiteIndex,
  type SiteSnapshot
} from "../domain/Site.ts"
import { sitesCopyKey, sitesKey, sitesVersionKey } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import { SpoolRedis } from "./SpoolRedis.ts"

export type RegistrySource = "primary" | "local copy" | "none"

export interface RegistryInfo {
  readonly mode: "open" | "sites"
  readonly sites: number
  /** -1 before any registry */
  readonly version: number
  readonly source: RegistrySource
}

export class SiteRegistry extends Context.Service<SiteRegistry, {
  /** the index in force (synchronous: every tracking request reads it) */
  readonly current: () => SiteIndex
  /** looks for a newer registry on the primary now (the layer also does so on a schedule) */
  readonly refresh: Effect.Effect<void>
  readonly info: () => RegistryInfo
}>()("spoolway/layers/SiteRegistry") {
  /** The live registry: primary Redis (published), spool Redis (local copy). */
  static readonly layer = Layer.effect(SiteRegistry, Effect.suspend(() => makeSiteRegistry))

  /** A fixed registry (tests, benchmarks). */
  static readonly layerSnapshot = (snapshot: SiteSnapshot) =>
    Layer.sync(SiteRegistry, () => {
      const index = indexSnapshot(snapshot)
      const info: RegistryInfo = {
        mode: index.open ? "open" : "sites",
        sites: index.sites.length,
        version: snapshot.version,
        source: "primary"
      }
      return SiteRegistry.of({ current: () => index, refresh: Effect.void, info: () => info })
    })
}

const makeSiteRegistry = Effect.gen(function*() {
  const config = yield* AppConfig
  const primary = yield* PrimaryRedis
  const spool = yield* SpoolRedis
  const prefix = config.streamPrefix
  const timeout = Duration.millis(Math.max(config.redisCommandTimeoutMs, 1000))
  const call = <A>(f: () => Promise<A>) => Effect.tryPromise(f).pipe(Effect.timeout(timeout))

  let index = EMPTY_INDEX
  let source: RegistrySource = "none"
  /** the registry in force, as published (what the local copy stores) */
  let json = ""
  /** version of the registry last written to the local copy */
  let copied = -1
  /** a published registry that did not decode (warned once) */
  let undecodable = ""

  const announce = Effect.suspend(() => {
    if (!index.open) {
      return Effect.logInfo(
        `sites: enforcing ${index.sites.length} site(s) (registry version ${index.version}, from the ${source === "primary" ? "primary Redis" : source})`
      )
    }
    const legacy = config.writeKeys.length > 0
    const what = index.version < 0 ? "no site is defined (no site registry published yet)" : "no site is defined (every site was removed)"
    return Effect.logWarning(
      legacy
        ? `${what}: a COLLECTOR_WRITE_KEYS key admits events from any origin (legacy mode); add a site: spoolway sites add <hostname>`
        : `${what} and COLLECTOR_WRITE_KEYS is empty: the tracking API is OPEN — anyone who can reach it can send events; add a site: spoolway sites add <hostname>`
    )
  })

  /** Takes `json` when it is a newer registry than the one in force. */
  const adopt = (candidate: string, from: RegistrySource) =>
    Effect.gen(function*() {
      const decoded = decodeSnapshotJson(candidate)
      if (Exit.isFailure(decoded)) {
        if (undecodable !== candidate) {
          undecodable = candidate
          yield* Effect.logWarning(`sites: the registry on the ${from} does not decode; keeping version ${index.version}`)
        }
        return false
      }
      const snapshot = decoded.value
      if (snapshot.version <= index.version) return false
      index = indexSnapshot(snapshot)
      source = from
      json = candidate
      yield* announce
      return true
    })

  const writeCopy = (version: number, copy: string) =>
    call(() => spool.client.set(sitesCopyKey(prefix), copy)).pipe(
      Effect.tap(() => Effect.sync(() => (copied = version))),
      Effect.catchCause((cause) => Effect.logDebug("sites: could not write the local copy (spool Redis); retrying later", cause))
    )

  const refresh = Effect.gen(function*() {
    const published = yield* call(() => primary.client.get(sitesVersionKey(prefix)))
    if (published !== null && Number(published) > index.version) {
      const fresh = yield* call(() => primary.client.get(sitesKey(prefix)))
      if (fresh !== null) yield* adopt(fresh, "primary")
    } else if (published !== null && Number(published) === index.version) {
      source = "primary" // the local copy is what the primary holds
    }
    if (source === "primary" && copied !== index.version) yield* writeCopy(index.version, json)
  }).pipe(Effect.catchCause((cause) => Effect.logDebug("sites: primary Redis not readable; keeping the registry in force", cause)))

  // at start: the local copy, then whatever newer the primary holds
  const copy = yield* call(() => spool.client.get(sitesCopyKey(prefix))).pipe(Effect.orElseSucceed(() => null))
  if (copy !== null && (yield* adopt(copy, "local copy"))) copied = index.version
  yield* refresh
  if (index.version < 0) yield* announce

  yield* refresh.pipe(
    Effect.repeat(Schedule.spaced(Duration.millis(config.sitesRefreshMs))),
    Effect.forkScoped
  )

  return SiteRegistry.of({
    current: () => index,
    refresh,
    info: () => ({ mode: index.open ? "open" : "sites", sites: index.sites.length, version: index.version, source })
  })
})
