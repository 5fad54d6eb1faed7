/**
 * `spoolway serve`: composes the roles through Layers.
 * - collector: HTTP tracking API → EventQueue (primary stream, spool); never touches Postgres.
 * - writer: consumer-group writer into Postgres, plus health/metrics; no tracking API.
 * - api: the stats query API (`POST /api/v1/query`, `/api/v1/funnel`) near PostgreSQL, plus
 *   health/metrics; needs neither Redis nor the writer.
 * - all: collector, writer and api in one process, sharing one PrimaryRedis and one database;
 *   the writer in a worker thread (WriterThread.ts) so the two use two cores.
 * Shutdown (SIGTERM/SIGINT, via NodeRuntime): layers close in reverse order — the HTTP
 * server stops accepting and finishes in-flight requests, the writer commits and acks its
 * batch, the drain fiber stops between batches, embedded servers stop last.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { Effect, Layer } from "effect"
import { HealthSource } from "../http/Health.ts"
import { AllRoutes, CollectorRoutes, serveHttp, StatsRoutes, WriterRoutes } from "../http/Server.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { EventQueue } from "../layers/EventQueue.ts"
import { startConfiguredPostgres } from "../layers/EmbeddedPostgres.ts"
import { EmbeddedServerError } from "../layers/EmbeddedServerError.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import { NetworkLookup } from "../layers/NetworkLookup.ts"
import { isRunning } from "../layers/Pids.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import * as ServeInfo from "../layers/ServeInfo.ts"
import { SiteAuth } from "../layers/SiteAuth.ts"
import { SiteRegistry } from "../layers/SiteRegistry.ts"
import { SpoolRedis } from "../layers/SpoolRedis.ts"
import * as Sql from "../layers/Sql.ts"
import { ProbeAndDrain } from "../programs/ProbeAndDrain.ts"
import * as PartitionedWriter from "../programs/PartitionedWriter.ts"
import { Writer } from "../programs/Writer.ts"
import * as WriterThread from "./WriterThread.ts"

export type Role = "all" | "collector" | "writer" | "api"

/** the collector's queue and its probe + drain workflow, and the site registry it enforces */
const Queue = ProbeAndDrain.pipe(
  Layer.provideMerge(Layer.merge(EventQueue.layer, SiteRegistry.layer)),
  Layer.provide(SpoolRedis.layer)
)
/** the writer on the primary stream, or with PRIMARY_REDIS_CLUSTER on the partitions it owns */
const WriterLive = Layer.unwrap(Effect.map(AppConfig, (config) =>
  config.primaryRedisCluster.length > 0 ? PartitionedWriter.layerPartitionedPostgres() : Writer.layerPostgres()
)).pipe(Layer.provide([Sql.layer(), Layer.orDie(GeoLookup.layer), Layer.orDie(NetworkLookup.layer)]))
/** role all: the writer in a worker thread (WriterThread.ts) unless WRITER_THREAD=false (or partitioned) */
const WriterForAll = Layer.unwrap(Effect.map(AppConfig, (config) =>
  config.writerThread && config.primaryRedisCluster.length === 0 ? WriterThread.layer : WriterLive
))

/** the stats query API's services: SiteAuth and the (migrated) database */
const StatsLive = SiteAuth.layer.pipe(Layer.provideMerge(Sql.layer({ applicationName: "spoolway-api" })))

/**
 * Role all reads and writes one database: without DATABASE_URL the embedded PostgreSQL is
 * started once here and its URL given to the writer (thread) and the stats API alike.
 */
const withOneDatabase = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.unwrap(Effect.gen(function*() {
    const config = yield* AppConfig
    if (config.databaseUrl !== undefined) return layer
    const running = yield* startConfiguredPostgres(config)
    return layer.pipe(Layer.provide(Layer.succeed(AppConfig, { ...config, databaseUrl: running.url })))
  }))

const ApiRole = serveHttp(StatsRoutes).pipe(Layer.provide(HealthSource.api), Layer.provide(StatsLive))

const roleLayer = (role: Exclude<Role, "api">) => {
  switch (role) {
    case "collector":
      return serveHttp(CollectorRoutes).pipe(Layer.provide(HealthSource.collector), Layer.provide(Queue))
    case "writer":
      return serveHttp(WriterRoutes).pipe(Layer.provide(HealthSource.writer), Layer.provide(WriterLive))
    case "all":
      return serveHttp(AllRoutes).pipe(
        Layer.provide(HealthSource.all),
        Layer.provide(Layer.mergeAll(Queue, WriterForAll, StatsLive)),
        withOneDatabase
      )
  }
}

/**
 * One `serve` per data dir while it owns embedded servers: a second one would stop the
 * first one's servers as orphans (or share an AOF).
 */
const dataDirLock = (role: Role) => Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const embedded = role === "api" ? config.databaseUrl === undefined : config.primaryRedisUrl === undefined ||
      (role !== "writer" && config.spoolRedisUrl === undefined) ||
      (role !== "collector" && config.databaseUrl === undefined)
    if (!embedded) return
    mkdirSync(config.dataDir, { recursive: true })
    const lock = resolve(config.dataDir, "spoolway.pid")
    if (existsSync(lock)) {
      const pid = Number.parseInt(readFileSync(lock, "utf8"), 10)
      const alive = isRunning(pid, "node")
      if (alive) {
        return yield* new EmbeddedServerError({
          server: "spoolway",
          message: `another 'spoolway serve' (pid ${pid}) runs on ${resolve(config.dataDir)}; stop it first or use another SPOOLWAY_DATA_DIR`
        })
      }
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => writeFileSync(lock, `${process.pid}\n`)),
      () => Effect.sync(() => rmSync(lock, { force: true }))
    )
  })
)

/**
 * The whole process for `role`, given AppConfig. PrimaryRedis is built once and shared; the
 * api role uses no Redis (and writes no serve.json, which names the primary Redis).
 */
export const daemon = (role: Role) =>
  role === "api" ? ApiRole.pipe(Layer.provide(dataDirLock(role))) : ServeInfo.layer(role).pipe(
    Layer.provideMerge(roleLayer(role)),
    Layer.provide(PrimaryRedis.layer),
    Layer.provide(dataDirLock(role))
  )
