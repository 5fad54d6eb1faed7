/**
 * PrimaryCluster: the Redis Cluster of the partitioned event log (PRIMARY_REDIS_CLUSTER,
 * docs/scaling.md) — the collector's producer (EventQueue) and the writers' consumers
 * (StreamConsumer.layerCluster) use it; a single primary Redis (PrimaryRedis) is the default.
 */
import { Context, Effect, Layer } from "effect"
import type { Cluster } from "ioredis"
import { AppConfig } from "./AppConfig.ts"
import { acquireCluster } from "./RedisClient.ts"

export interface ClusterHandle {
  /** `host:port` seed nodes */
  readonly seeds: ReadonlyArray<string>
  /** for commands that never block: no offline queue, no retries per node command */
  readonly client: Cluster
}

export class PrimaryCluster extends Context.Service<PrimaryCluster, ClusterHandle>()("spoolway/layers/PrimaryCluster") {
  static readonly layerSeeds = (seeds: ReadonlyArray<string>) =>
    Layer.effect(PrimaryCluster, Effect.map(acquireCluster(seeds, "primary-cluster"), (client) => PrimaryCluster.of({ seeds, client })))

  /** From PRIMARY_REDIS_CLUSTER (which must be set). */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      return PrimaryCluster.layerSeeds(config.primaryRedisCluster)
    })
  )
}
