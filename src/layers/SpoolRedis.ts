/**
 * SpoolRedis: a Redis local to the collector, append-only persistence on, holding events
 * only while the primary is unreachable. `SPOOL_REDIS_URL`, or an embedded redis-server.
 */
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { startEmbeddedRedis } from "./EmbeddedRedis.ts"
import type { RedisHandle } from "./PrimaryRedis.ts"
import { acquireRedis } from "./RedisClient.ts"

export class SpoolRedis extends Context.Service<SpoolRedis, RedisHandle>()("spoolway/layers/SpoolRedis") {
  static readonly layerUrl = (url: string) =>
    Layer.effect(SpoolRedis, Effect.map(acquireRedis(url, "spool"), (client) => SpoolRedis.of({ url, client })))

  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (config.spoolRedisUrl !== undefined) return SpoolRedis.layerUrl(config.spoolRedisUrl)
      return Layer.unwrap(
        Effect.map(
          startEmbeddedRedis({
            name: "redis-spool",
            dataDir: config.dataDir,
            appendonly: true,
            appendfsync: config.appendfsync,
            attach: config.embeddedAttach
          }),
          (running) => SpoolRedis.layerUrl(running.url)
        )
      ).pipe(Layer.provide(NodeServices.layer))
    })
  )
}
