/**
 * Redis key names, all under the configurable `STREAM_PREFIX` (isolates tenants and tests).
 * The stream's consumers are keyed by stream key (layers/StreamConsumer.ts): a partitioned log
 * (Redis Cluster, `<prefix>:{p}:events` with one consumer group per partition) adds key names
 * here and opens one consumer per key.
 */
export const primaryStreamKey = (prefix: string) => `${prefix}:events`
/**
 * Partition `p` of the partitioned log (Redis Cluster): the hash tag `{p}` puts every key of one
 * partition in one slot, so each partition's commands (XADD, XREADGROUP, MULTI) stay on one node.
 */
export const partitionStreamKey = (prefix: string, partition: number) => `${prefix}:{${partition}}:events`
/** Every partition's stream key, 0 … partitions − 1. */
export const partitionStreamKeys = (prefix: string, partitions: number): ReadonlyArray<string> =>
  Array.from({ length: partitions }, (_, p) => partitionStreamKey(prefix, p))
export const spoolStreamKey = (prefix: string) => `${prefix}:spool`
export const writerGroup = (prefix: string) => `${prefix}:writers`
/** The site registry as published (JSON SiteSnapshot) and its version, on the primary Redis. */
export const sitesKey = (prefix: string) => `${prefix}:sites`
export const sitesVersionKey = (prefix: string) => `${prefix}:sites:version`
/** The collector's own copy of the last registry it enforced, on the spool Redis (local to it). */
export const sitesCopyKey = (prefix: string) => `${prefix}:sites:copy`
