/**
 * PrimaryRedis: the shared Redis next to the writers (the canonical queue).
 * `PRIMARY_REDIS_URL`, or an embedded redis-server when unset.
 */
import { Context, Effect, Layer } from "effect"
import type { Redis } from "ioredis"
import { configuredOrEmbeddedRedis } from "./EmbeddedRedis.ts"
import { acquireRedis } from "./RedisClient.ts"

export interface RedisHandle {
  readonly url: string
  /** A client for request-path commands: fails fast instead of queueing while disconnected. */
  readonly client: Redis
}

export class PrimaryRedis extends Context.Service<PrimaryRedis, RedisHandle>()("spoolway/layers/PrimaryRedis") {
  static readonly layerUrl = (url: string) =>
    Layer.effect(PrimaryRedis, Effect.map(acquireRedis(url, "primary"), (client) => PrimaryRedis.of({ url, client })))

  static readonly layer = configuredOrEmbeddedRedis("redis-primary", (config) => config.primaryRedisUrl, PrimaryRedis.layerUrl)
}
