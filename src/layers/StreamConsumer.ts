/**
 * StreamConsumer: the writer's side of a Redis stream (docs/architecture.md, writer) — consumer
 * group creation, `XREADGROUP`, `XAUTOCLAIM` (+ delivery counts from `XPENDING`), `XACK` +
 * `XDEL`, an idle reset (`XCLAIM … JUSTID`) that keeps entries of a batch being retried from
 * being claimed by other writers, leaving the group, pruning dead consumers. Blocking reads use
 * their own connection. The producer side (XADD) is StreamStore.ts.
 *
 * Keyed by stream key: `StreamConsumer.open` gives the consumer of ONE key (one consumer group
 * on it). A partitioned log (Redis Cluster, one stream key and one group per partition, every
 * command on one key, so no cross-slot command) opens one per key it owns; nothing here assumes
 * a single stream. The functions below take the handles explicitly (tests, `status`, health).
 */
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { Cluster, Redis } from "ioredis"
import type { BatchEntry } from "../domain/Batch.ts"
import { DAY_MS } from "../domain/Time.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"
import { PrimaryCluster } from "./PrimaryCluster.ts"
import { acquireBlockingCluster, acquireBlockingRedis, messageOf, RedisError } from "./RedisClient.ts"
import { fieldValue } from "./StreamStore.ts"

const call = (client: Redis | Cluster, target: string, operation: string, args: ReadonlyArray<string | number>) =>
  Effect.tryPromise({
    try: () => client.call(operation, ...args),
    catch: (cause) => new RedisError({ target, operation, message: messageOf(cause) })
  })

/** `[[id, [field, value, …]], …]` → entries (with the given delivery count). */
const toEntries = (raw: unknown, deliveries: number): Array<BatchEntry> => {
  if (!Array.isArray(raw)) return []
  const entries: Array<BatchEntry> = []
  for (const item of raw) {
    if (!Array.isArray(item) || typeof item[0] !== "string") continue
    entries.push({ id: item[0], payload: fieldValue(item[1]), deliveries })
  }
  return entries
}

export interface StreamHandles {
  readonly key: string
  readonly group: string
  readonly consumer: string
  /** commands that never block (a Cluster client: every command names the key, one slot) */
  readonly client: Redis | Cluster
  /** XREADGROUP BLOCK only */
  readonly blocking: Redis | Cluster
}

/**
 * Creates the consumer group at id `0` (so entries added before the group existed are read
 * too), creating the stream if needed; an existing group is left as it is.
 */
export const ensureGroup = (h: StreamHandles) =>
  call(h.client, h.key, "XGROUP", ["CREATE", h.key, h.group, "0", "MKSTREAM"]).pipe(
    Effect.asVoid,
    Effect.catchIf((error) => error.message.includes("BUSYGROUP"), () => Effect.void)
  )

/** New entries for this consumer (`>`), waiting up to `blockMs`. */
export const readNew = (h: StreamHandles, count: number, blockMs: number) =>
  call(h.blocking, h.key, "XREADGROUP", ["GROUP", h.group, h.consumer, "COUNT", count, "BLOCK", blockMs, "STREAMS", h.key, ">"]).pipe(
    Effect.map((reply) => {
      if (!Array.isArray(reply) || reply.length === 0) return []
      const stream = reply[0]
      return Array.isArray(stream) ? toEntries(stream[1], 1) : []
    })
  )

export interface ClaimResult {
  readonly next: string
  readonly entries: ReadonlyArray<BatchEntry>
  /** ids still pending but no longer in the stream (nothing to store; acknowledged) */
  readonly deleted: ReadonlyArray<string>
}

/**
 * `XAUTOCLAIM` up to `count` entries idle for at least `minIdleMs`, starting at `start`, with
 * their delivery counts (after the claim) from `XPENDING`.
 */
export const autoClaim = (h: StreamHandles, minIdleMs: number, start: string, count: number) =>
  Effect.gen(function*() {
    const reply = yield* call(h.client, h.key, "XAUTOCLAIM", [h.key, h.group, h.consumer, minIdleMs, start, "COUNT", count])
    if (!Array.isArray(reply)) return { next: "0-0", entries: [], deleted: [] } satisfies ClaimResult
    const next = typeof reply[0] === "string" ? reply[0] : "0-0"
    const claimed = toEntries(reply[1], 1)
    const deleted = Array.isArray(reply[2]) ? reply[2].filter((id): id is string => typeof id === "string") : []
    if (claimed.length === 0) return { next, entries: [], deleted } satisfies ClaimResult
    const counts = yield* deliveryCounts(h, claimed[0]!.id, claimed[claimed.length - 1]!.id, claimed.length + 16)
    const entries = claimed.map((entry) => ({ ...entry, deliveries: counts.get(entry.id) ?? 1 }))
    return { next, entries, deleted } satisfies ClaimResult
  })

/** Delivery counts of this consumer's pending entries in [from, to]. */
export const deliveryCounts = (h: StreamHandles, from: string, to: string, count: number) =>
  call(h.client, h.key, "XPENDING", [h.key, h.group, from, to, count, h.consumer]).pipe(
    Effect.map((reply) => {
      const counts = new Map<string, number>()
      if (!Array.isArray(reply)) return counts
      for (const row of reply) {
        if (Array.isArray(row) && typeof row[0] === "string") counts.set(row[0], Number(row[3] ?? 1))
      }
      return counts
    })
  )

/** Number of entries pending in the group (delivered, not acknowledged). */
export const pendingCount = (h: StreamHandles) =>
  call(h.client, h.key, "XPENDING", [h.key, h.group]).pipe(
    Effect.map((reply) => (Array.isArray(reply) ? Number(reply[0] ?? 0) : 0))
  )

export interface StreamStatus {
  /** entries in the stream (not yet acknowledged and deleted) */
  readonly length: number
  /** entries delivered to a writer and not yet acknowledged */
  readonly pending: number
  /** entries not yet delivered to any writer (null when Redis cannot tell) */
  readonly lag: number | null
  readonly consumers: number
  /** false when the group does not exist yet */
  readonly group: boolean
}

/** Length, pending entries, lag and consumers of the writers' group (`spoolway status`, gauges). */
export const streamStatus = (client: Redis | Cluster, key: string, group: string) =>
  Effect.gen(function*() {
    const length = Number(yield* call(client, key, "XLEN", [key]))
    const groups = yield* call(client, key, "XINFO", ["GROUPS", key]).pipe(
      Effect.catchIf((error) => error.message.includes("no such key"), () => Effect.succeed([] as Array<unknown>))
    )
    const entry = Array.isArray(groups)
      ? groups.map(fieldsOf).find((fields) => fields.get("name") === group)
      : undefined
    if (entry === undefined) return { length, pending: 0, lag: length, consumers: 0, group: false } satisfies StreamStatus
    const lag = entry.get("lag")
    return {
      length,
      pending: Number(entry.get("pending") ?? 0),
      lag: lag === null || lag === undefined ? null : Number(lag),
      consumers: Number(entry.get("consumers") ?? 0),
      group: true
    } satisfies StreamStatus
  })

const fieldsOf = (raw: unknown): Map<string, unknown> => {
  const fields = new Map<string, unknown>()
  if (Array.isArray(raw)) for (let i = 0; i + 1 < raw.length; i += 2) fields.set(String(raw[i]), raw[i + 1])
  return fields
}

/** `XACK` then `XDEL`, atomically (MULTI). */
export const ackAndDelete = (h: StreamHandles, ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.void
    : Effect.tryPromise({
      try: async () => {
        const results = await h.client.multi().xack(h.key, h.group, ...ids).xdel(h.key, ...ids).exec()
        if (results === null) throw new Error("MULTI aborted")
        for (const [error] of results) if (error) throw error
      },
      catch: (cause) => new RedisError({ target: h.key, operation: "XACK/XDEL", message: messageOf(cause) })
    })

/** Resets the idle time of entries this writer is still working on (no delivery count change). */
export const touch = (h: StreamHandles, ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.void
    : call(h.client, h.key, "XCLAIM", [h.key, h.group, h.consumer, 0, ...ids, "JUSTID"]).pipe(Effect.asVoid)

/**
 * Deletes consumer ARGV[2] of group ARGV[1] on stream KEYS[1] only if it holds nothing pending
 * and has been idle for at least ARGV[3] ms — checked and deleted in one step. `XGROUP
 * DELCONSUMER` drops the consumer's pending entries, and the group has already moved past them:
 * an entry delivered between a separate check and the delete (a read still blocked on the
 * server after its writer stopped waiting, or a writer taking the partition back) would never be
 * delivered again. Returns 1 when deleted.
 */
const DELETE_IDLE_CONSUMER = `
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, fields in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #fields, 2 do
    if fields[i] == 'name' then name = fields[i + 1]
    elseif fields[i] == 'pending' then pending = fields[i + 1]
    elseif fields[i] == 'idle' then idle = fields[i + 1] end
  end
  if name == ARGV[2] then
    if tonumber(pending) == 0 and tonumber(idle) >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
`

const deleteIdleConsumer = (h: StreamHandles, name: string, minIdleMs: number) =>
  call(h.client, h.key, "EVAL", [DELETE_IDLE_CONSUMER, 1, h.key, h.group, name, minIdleMs]).pipe(
    Effect.map((deleted) => Number(deleted) === 1)
  )

/**
 * Graceful stop: removes this consumer from the group when it holds no pending entries
 * (atomically: `DELETE_IDLE_CONSUMER`); otherwise marks them idle for a day (`XCLAIM … IDLE …
 * JUSTID`, no delivery count change) so that the other writers' next `XAUTOCLAIM` takes them over
 * at once instead of after the idle timeout. Entries a read still blocked on the server delivers
 * afterwards stay pending for this consumer (Redis re-creates it) and are claimed after the idle
 * timeout. Returns the number of entries released.
 */
export const leaveGroup = (h: StreamHandles) =>
  Effect.gen(function*() {
    if (yield* deleteIdleConsumer(h, h.consumer, 0)) return 0
    const reply = yield* call(h.client, h.key, "XPENDING", [h.key, h.group, "-", "+", 10_000, h.consumer])
    const ids = Array.isArray(reply)
      ? reply.flatMap((row) => (Array.isArray(row) && typeof row[0] === "string" ? [row[0]] : []))
      : []
    if (ids.length === 0) return 0
    yield* call(h.client, h.key, "XCLAIM", [h.key, h.group, h.consumer, 0, ...ids, "IDLE", DAY_MS, "JUSTID"])
    return ids.length
  })

/**
 * Removes consumers left in the group by writers that died (SIGKILL, crash): those holding
 * nothing pending and idle for `minIdleMs`, each checked again and deleted in one step
 * (`DELETE_IDLE_CONSUMER`). Entries they held were reclaimed by XAUTOCLAIM first; a live writer
 * that is removed anyway is re-created by its next XREADGROUP. Returns the names removed.
 */
export const pruneConsumers = (h: StreamHandles, minIdleMs: number) =>
  Effect.gen(function*() {
    const reply = yield* call(h.client, h.key, "XINFO", ["CONSUMERS", h.key, h.group])
    const candidates = (Array.isArray(reply) ? reply.map(fieldsOf) : [])
      .filter((c) => c.get("name") !== h.consumer && Number(c.get("pending")) === 0 && Number(c.get("idle")) >= minIdleMs)
      .map((c) => String(c.get("name")))
    const removed: Array<string> = []
    for (const name of candidates) if (yield* deleteIdleConsumer(h, name, minIdleMs)) removed.push(name)
    return removed
  })

// ---------------------------------------------------------------------------------------------
// service

/** Which consumer of which group on which stream key. */
export interface ConsumerKey {
  readonly key: string
  readonly group: string
  /** unique per writer process (a restarted writer thread keeps its name) */
  readonly consumer: string
}

/** The consumer of one stream key: every command of the writer loop, bound to its handles. */
export interface StreamPartition extends ConsumerKey {
  readonly ensureGroup: Effect.Effect<void, RedisError>
  readonly readNew: (count: number, blockMs: number) => Effect.Effect<ReadonlyArray<BatchEntry>, RedisError>
  readonly autoClaim: (minIdleMs: number, start: string, count: number) => Effect.Effect<ClaimResult, RedisError>
  readonly ackAndDelete: (ids: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  readonly touch: (ids: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  readonly leaveGroup: Effect.Effect<number, RedisError>
  readonly pruneConsumers: (minIdleMs: number) => Effect.Effect<ReadonlyArray<string>, RedisError>
}

const bind = (h: StreamHandles): StreamPartition => ({
  key: h.key,
  group: h.group,
  consumer: h.consumer,
  ensureGroup: ensureGroup(h),
  readNew: (count, blockMs) => readNew(h, count, blockMs),
  autoClaim: (minIdleMs, start, count) => autoClaim(h, minIdleMs, start, count),
  ackAndDelete: (ids) => ackAndDelete(h, ids),
  touch: (ids) => touch(h, ids),
  leaveGroup: leaveGroup(h),
  pruneConsumers: (minIdleMs) => pruneConsumers(h, minIdleMs)
})

export class StreamConsumer extends Context.Service<StreamConsumer, {
  /**
   * The consumer of `key.key` in `key.group`. With `reads` (default true) it opens a dedicated
   * connection for blocking reads, closed with the scope; without, it only acknowledges,
   * releases and inspects (e.g. releasing what a dead writer thread held).
   */
  open(key: ConsumerKey, options?: { readonly reads?: boolean }): Effect.Effect<StreamPartition, never, Scope.Scope>
}>()("spoolway/layers/StreamConsumer") {
  /** On the primary Redis (PrimaryRedis). */
  static readonly layer = Layer.effect(
    StreamConsumer,
    Effect.gen(function*() {
      const primary = yield* PrimaryRedis
      return StreamConsumer.of({
        open: (key, options) =>
          Effect.map(
            options?.reads === false
              ? Effect.succeed(primary.client)
              : acquireBlockingRedis(primary.url, `writer-${key.consumer}`),
            (blocking) => bind({ ...key, client: primary.client, blocking })
          )
      })
    })
  )

  /**
   * On the Redis Cluster of the partitioned log (PrimaryCluster): `key` is a partition's stream
   * (`<prefix>:{p}:events`); blocking reads get a Cluster client of their own.
   */
  static readonly layerCluster = Layer.effect(
    StreamConsumer,
    Effect.gen(function*() {
      const primary = yield* PrimaryCluster
      return StreamConsumer.of({
        open: (key, options) =>
          Effect.map(
            options?.reads === false
              ? Effect.succeed<Redis | Cluster>(primary.client)
              : acquireBlockingCluster(primary.seeds, `writer-${key.consumer}`),
            (blocking) => bind({ ...key, client: primary.client, blocking })
          )
      })
    })
  )
}
