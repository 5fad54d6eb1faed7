/**
 * Which partition of the event log an event goes to (issue 18, docs/scaling.md). Pure: the
 * collector calls it per envelope when the log is partitioned (Redis Cluster); a single Redis
 * has one stream and never calls it.
 *
 * The partition is a hash of the site and the visit (the client's `sessionId`), so every event
 * of one visit lands in one partition, in the order the collector wrote it, whichever collector
 * took it. An event without `sessionId` (the writer assigns its session from the daily visitor
 * id, a hash of IP and User-Agent) is partitioned by site, IP and User-Agent instead: one
 * visitor's events then share a partition too. The hash is FNV-1a (32 bit) over the key's UTF-16 code units with murmur3's final mix,
 * so partitions are spread evenly also for keys that differ only in their last characters.
 * Changing it (or `STREAM_PARTITIONS`) moves visits to other partitions: that only costs order
 * across the change, never an event.
 */

/** What an event is partitioned by (from its envelope). */
export interface PartitionInput {
  readonly site?: number | undefined
  readonly sessionId?: string | undefined
  readonly ip?: string | undefined
  readonly ua?: string | undefined
}

/** The key an event is partitioned by: its site (0 without one) and its visit, else its visitor. */
export const partitionKey = (event: PartitionInput): string =>
  event.sessionId !== undefined
    ? `${event.site ?? 0}:${event.sessionId}`
    : `${event.site ?? 0}:~${event.ip ?? ""}\u0000${event.ua ?? ""}`

/** A 32-bit hash of `text` (unsigned). */
export const hash32 = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // murmur3 fmix32: every input bit reaches every output bit
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The partition (0 … partitions − 1) of `key`. */
export const partitionOf = (key: string, partitions: number): number => (partitions <= 1 ? 0 : hash32(key) % partitions)

/** The partition of an event: its site and visit (or visitor). */
export const eventPartition = (event: PartitionInput, partitions: number): number => partitionOf(partitionKey(event), partitions)

/** `STREAM_PARTITIONS` bounds: at least 1, at most the number of Redis Cluster slots. */
export const MAX_PARTITIONS = 16_384

/**
 * The envelope fields a partitioned store needs, read from an encoded envelope (the collector
 * already has them; the spool drain and `replay-failures` only have the JSON). A payload that
 * does not parse goes to partition 0: the writer treats it as poison there.
 */
export const payloadPartition = (payload: string, partitions: number): number => {
  if (partitions <= 1) return 0
  try {
    const envelope = JSON.parse(payload) as {
      edge?: { site?: unknown; ip?: unknown; ua?: unknown }
      payload?: { sessionId?: unknown }
    }
    const str = (value: unknown) => (typeof value === "string" ? value : undefined)
    return eventPartition({
      site: typeof envelope.edge?.site === "number" ? envelope.edge.site : undefined,
      sessionId: str(envelope.payload?.sessionId),
      ip: str(envelope.edge?.ip),
      ua: str(envelope.edge?.ua)
    }, partitions)
  } catch {
    return 0
  }
}
