/**
 * Redis key names, all under the configurable `STREAM_PREFIX` (isolates tenants and tests).
 * The stream's consumers are keyed by stream key (layers/StreamConsumer.ts): a partitioned log
 * (Redis Cluster, `<prefix>:{p}:events` with one consumer group per partition) adds key names
 * here and opens one consumer per key.
 */
export const primaryStreamKey = (prefix: string) => `${prefix}:events`
export const spoolStreamKey = (prefix: string) => `${prefix}:spool`
export const writerGroup = (prefix: string) => `${prefix}:writers`
/** The site registry as published (JSON SiteSnapshot) and its version, on the primary Redis. */
export const sitesKey = (prefix: string) => `${prefix}:sites`
export const sitesVersionKey = (prefix: string) => `${prefix}:sites:version`
/** The collector's own copy of the last registry it enforced, on the spool Redis (local to it). */
export const sitesCopyKey = (prefix: string) => `${prefix}:sites:copy`
