/**
 * PrimaryCluster: the Redis Cluster of the partitioned event log (PRIMARY_REDIS_CLUSTER,
 * docs/scaling.md) — the collector's producer (EventQueue) and the writers' consumers
 * (StreamConsumer.layerCluster) use it; a single primary Redis (PrimaryRedis) is the default.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { Cluster } from "ioredis"
import { payloadPartition } from "../domain/Partition.ts"
import { partitionStreamKeys } from "../domain/Streams.ts"
import { AppConfig } from "./AppConfig.ts"
import { partitionedStreamStore } from "./PartitionedStreamStore.ts"
import { acquireCluster } from "./RedisClient.ts"
import { redisStreamStore } from "./StreamStore.ts"

/** PRIMARY_REDIS_CLUSTER is set with a setting it cannot work with (said at start, exit 1). */
export class ClusterConfigError extends Schema.TaggedError<ClusterConfigError>()("ClusterConfigError", {
  message: Schema.String
}) {}

/**
 * The settings the partitioned log needs: STREAM_PARTITIONS within 1 … 16384 (Redis Cluster's
 * slots) and a STREAM_PREFIX without `{` or `}` (the partition is the key's hash tag).
 */
export const checkClusterConfig = (config: { readonly streamPrefix: string; readonly streamPartitions: number }) =>
  !Number.isInteger(config.streamPartitions) || config.streamPartitions < 1 || config.streamPartitions > 16_384
    ? Effect.fail(new ClusterConfigError({ message: `STREAM_PARTITIONS=${config.streamPartitions}: use a whole number from 1 to 16384 with PRIMARY_REDIS_CLUSTER` }))
    : /[{}]/.test(config.streamPrefix)
    ? Effect.fail(new ClusterConfigError({ message: `STREAM_PREFIX=${config.streamPrefix}: with PRIMARY_REDIS_CLUSTER the prefix must not contain { or } (the partition is the key's hash tag)` }))
    : Effect.void

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
      yield* checkClusterConfig(config)
      return PrimaryCluster.layerSeeds(config.primaryRedisCluster)
    })
  )
}

/** REDIS_MIN_REPLICAS_ACK for the event log's stores (none when 0) */
export const replicasAck = (config: AppConfig["Service"]) =>
  config.redisMinReplicasAck > 0
    ? { replicasAck: { replicas: config.redisMinReplicasAck, timeoutMs: config.redisReplicasAckTimeoutMs } }
    : {}

/**
 * The partitioned event log on the Redis Cluster of PRIMARY_REDIS_CLUSTER, as one StreamStore
 * (one stream per partition, on a client of its own closed with the scope): the collector's queue
 * and `replay-failures` write through it.
 */
export const clusterEventLog = (config: AppConfig["Service"]) =>
  Effect.gen(function*() {
    yield* checkClusterConfig(config)
    const cluster = yield* acquireCluster(config.primaryRedisCluster, "primary-cluster")
    return partitionedStreamStore({
      name: "primary",
      parts: partitionStreamKeys(config.streamPrefix, config.streamPartitions).map((key, p) =>
        redisStreamStore({ name: `primary {${p}}`, client: cluster, key, timeoutMs: config.redisCommandTimeoutMs, ...replicasAck(config) })
      ),
      partitionOf: (payload) => payloadPartition(payload, config.streamPartitions)
    })
  })
