/**
 * PrimaryRedis: the shared Redis next to the writers (the canonical queue).
 * `PRIMARY_REDIS_URL`, or an embedded redis-server when unset.
 */
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import type { Redis } from "ioredis"
import { AppConfig } from "./AppConfig.ts"
import { startEmbeddedRedis } from "./EmbeddedRedis.ts"
import { acquireRedis } from "./RedisClient.ts"

export interface RedisHandle {
  readonly url: string
  /** A client for request-path commands: fails fast instead of queueing while disconnected. */
  readonly client: Redis
}

export class PrimaryRedis extends Context.Service<PrimaryRedis, RedisHandle>()("spoolway/layers/PrimaryRedis") {
  static readonly layerUrl = (url: string) =>
    Layer.effect(PrimaryRedis, Effect.map(acquireRedis(url, "primary"), (client) => PrimaryRedis.of({ url, client })))

  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (config.primaryRedisUrl !== undefined) return PrimaryRedis.layerUrl(config.primaryRedisUrl)
      return Layer.unwrap(
        Effect.map(
          startEmbeddedRedis({
            name: "redis-primary",
            dataDir: config.dataDir,
            appendonly: true,
            appendfsync: config.appendfsync,
            attach: config.embeddedAttach
          }),
          (running) => PrimaryRedis.layerUrl(running.url)
        )
      ).pipe(Layer.provide(NodeServices.layer))
    })
  )
}
