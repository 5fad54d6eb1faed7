/**
 * Writers owning partitions of the event log on a Redis Cluster (issue 18, docs/scaling.md).
 *
 * Every `heartbeatMs` a writer records itself in the live set (`<prefix>:writers:live`, a sorted
 * set scored by the last heartbeat; entries older than `liveTtlMs` are dead writers, removed),
 * reads the live writers and computes the partitions it owns (domain/Ownership.ts: rendezvous
 * hashing, the same answer on every writer). For each partition it owns it runs the writer loop
 * of Writer.ts on that partition's stream (`<prefix>:{p}:events`, its own consumer group, every
 * command on one slot); a partition it no longer owns is stopped between batches and its
 * pending entries are released to the group (`leaveGroup`). A writer that dies drops out of the
 * live set after `liveTtlMs`; its partitions go to the others, whose loops reclaim the entries
 * it held (`XAUTOCLAIM` after WRITER_CLAIM_IDLE_MS), as with one stream today.
 *
 * Ownership spreads the work; it is not what makes writes safe — two writers that briefly both
 * run a partition share its consumer group, and the idempotent insert absorbs redeliveries.
 */
import { Clock, Effect, Exit, Ref, Scope } from "effect"
import { ownedPartitions } from "../domain/Ownership.ts"
import { partitionStreamKey } from "../domain/Streams.ts"
import { PrimaryCluster } from "../layers/PrimaryCluster.ts"
import { messageOf } from "../layers/RedisClient.ts"
import { makeWriter, type WriterHandle } from "./Writer.ts"
import type { WriterOptions } from "./WriterOptions.ts"

export interface PartitionedWriterOptions {
  readonly prefix: string
  readonly partitions: number
  /** this writer's consumer name (unique per process) */
  readonly consumer: string
  /** how often the writer renews its heartbeat and recomputes what it owns (default 1000 ms) */
  readonly heartbeatMs?: number
  /** a writer without a heartbeat for this long is dead (default 5 × heartbeatMs) */
  readonly liveTtlMs?: number
  /** for each partition's writer loop */
  readonly writer?: Partial<WriterOptions>
}

export const liveWritersKey = (prefix: string) => `${prefix}:writers:live`

interface Running {
  readonly scope: Scope.Closeable
  readonly writer: WriterHandle
}

/**
 * Runs the partitioned writer in the current scope: heartbeat + ownership in a background fiber,
 * one writer loop per owned partition. Closing the scope stops every loop, releases what they
 * hold and leaves the live set. Returns what it owns now (for status and tests).
 */
export const startPartitionedWriter = Effect.fnUntraced(function*(options: PartitionedWriterOptions) {
  const { client } = yield* PrimaryCluster
  const heartbeatMs = options.heartbeatMs ?? 1000
  const liveTtlMs = options.liveTtlMs ?? 5 * heartbeatMs
  const liveKey = liveWritersKey(options.prefix)
  const outer = yield* Effect.scope
  const running = new Map<number, Running>()
  const owned = yield* Ref.make<ReadonlyArray<number>>([])
  const context = yield* Effect.context<Effect.Services<ReturnType<typeof makeWriter>>>()

  const start = (partition: number) =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(outer)
      const writer = yield* makeWriter({ ...options.writer, streamKey: partitionStreamKey(options.prefix, partition), consumer: options.consumer }).pipe(
        Scope.provide(scope),
        Effect.provideContext(context)
      )
      yield* Scope.addFinalizer(scope, writer.leaveGroup)
      yield* Effect.forkIn(writer.run, scope)
      running.set(partition, { scope, writer })
    })

  const stop = (partition: number) =>
    Effect.suspend(() => {
      const r = running.get(partition)
      if (r === undefined) return Effect.void
      running.delete(partition)
      return Scope.close(r.scope, Exit.void)
    })

  const tick = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const live = yield* Effect.tryPromise(async () => {
      const reply = await client.multi()
        .zadd(liveKey, now, options.consumer)
        .zremrangebyscore(liveKey, "-inf", now - liveTtlMs)
        .zrange(liveKey, 0, -1)
        .exec()
      const members = reply?.[2]?.[1]
      return Array.isArray(members) ? members.map(String) : [options.consumer]
    })
    const mine = ownedPartitions(options.consumer, options.partitions, live)
    const wanted = new Set(mine)
    for (const p of [...running.keys()]) if (!wanted.has(p)) yield* stop(p)
    for (const p of mine) if (!running.has(p)) yield* start(p)
    const before = yield* Ref.getAndSet(owned, mine)
    if (before.join(",") !== mine.join(",")) {
      yield* Effect.logInfo(`writer ${options.consumer} owns partitions [${mine.join(", ")}] of ${options.partitions} (${live.length} live writer(s))`)
    }
  }).pipe(Effect.catchCause((cause) => Effect.logWarning(`partitioned writer: heartbeat failed: ${messageOf(cause)}`)))

  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      for (const p of [...running.keys()]) yield* stop(p)
      yield* Effect.tryPromise(() => client.zrem(liveKey, options.consumer)).pipe(Effect.ignore)
    })
  )
  yield* tick
  yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(heartbeatMs), tick)), outer)
  return {
    owned: Ref.get(owned),
    /** the writer loops running now, by partition */
    writers: Effect.sync(() => new Map([...running].map(([p, r]) => [p, r.writer] as const)))
  }
})
