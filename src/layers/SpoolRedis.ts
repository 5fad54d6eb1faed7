/**
 * SpoolRedis: a Redis local to the collector, append-only persistence on, holding events
 * only while the primary is unreachable. `SPOOL_REDIS_URL`, or an embedded redis-server.
 */
import { Context, Effect, Layer } from "effect"
import { configuredOrEmbeddedRedis } from "./EmbeddedRedis.ts"
import type { RedisHandle } from "./PrimaryRedis.ts"
import { acquireRedis } from "./RedisClient.ts"

export class SpoolRedis extends Context.Service<SpoolRedis, RedisHandle>()("spoolway/layers/SpoolRedis") {
  static readonly layerUrl = (url: string) =>
    Layer.effect(SpoolRedis, Effect.map(acquireRedis(url, "spool"), (client) => SpoolRedis.of({ url, client })))

  static readonly layer = configuredOrEmbeddedRedis("redis-spool", (config) => config.spoolRedisUrl, SpoolRedis.layerUrl)
}
