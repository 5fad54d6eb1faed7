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
import { Clock, Effect, Exit, Layer, Ref, Scope } from "effect"
import { ownedPartitions } from "../domain/Ownership.ts"
import { partitionStreamKey, partitionStreamKeys } from "../domain/Streams.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { Domains } from "../layers/Domains.ts"
import * as PgSink from "../layers/PgSink.ts"
import { PrimaryCluster } from "../layers/PrimaryCluster.ts"
import { messageOf } from "../layers/RedisClient.ts"
import { Salts } from "../layers/Salts.ts"
import { SitePublisher } from "../layers/SitePublisher.ts"
import { StreamConsumer, streamStatus } from "../layers/StreamConsumer.ts"
import { makeWriter, type PartitionState, Writer, type WriterHandle } from "./Writer.ts"
import { emptySnapshot, type WriterOptions, writerOptions, type WriterSnapshot } from "./WriterOptions.ts"

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

const sumSnapshots = (base: WriterSnapshot, snapshots: ReadonlyArray<WriterSnapshot>): WriterSnapshot => {
  const max = (values: ReadonlyArray<number | null>) =>
    values.reduce<number | null>((a, b) => (b === null ? a : a === null ? b : Math.max(a, b)), null)
  const latestError = [...snapshots].filter((s) => s.lastErrorAt !== null).sort((a, b) => b.lastErrorAt! - a.lastErrorAt!)[0]
  return {
    ...base,
    batches: snapshots.reduce((n, s) => n + s.batches, 0),
    written: snapshots.reduce((n, s) => n + s.written, 0),
    duplicates: snapshots.reduce((n, s) => n + s.duplicates, 0),
    poison: snapshots.reduce((n, s) => n + s.poison, 0),
    sessions: snapshots.reduce((n, s) => n + s.sessions, 0),
    retries: snapshots.reduce((n, s) => n + s.retries, 0),
    lastWriteAt: max(snapshots.map((s) => s.lastWriteAt)),
    lastBatchAt: max(snapshots.map((s) => s.lastBatchAt)),
    lastError: latestError?.lastError ?? null,
    lastErrorAt: latestError?.lastErrorAt ?? null
  }
}

/**
 * The writer service on a partitioned log: the partitions this process owns, each with its
 * writer loop; counters summed over the loops running now; every partition's stream state for
 * `/health` and `/metrics`; the hourly maintenance through the loops.
 */
export const layerPartitioned = (overrides: Partial<WriterOptions> = {}) =>
  Layer.effect(
    Writer,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const options = yield* writerOptions(overrides)
      const { client } = yield* PrimaryCluster
      const handle = yield* startPartitionedWriter({
        prefix: config.streamPrefix,
        partitions: config.streamPartitions,
        consumer: options.consumer,
        writer: { ...overrides, maintenance: false }
      })
      const keys = partitionStreamKeys(config.streamPrefix, config.streamPartitions)
      const base = emptySnapshot({ ...options, streamKey: keys.join(",") })
      if (options.maintenance) {
        yield* Effect.sleep(options.maintenanceEveryMs).pipe(
          Effect.andThen(Effect.flatMap(handle.writers, (writers) => Effect.forEach(writers.values(), (w) => w.maintain, { discard: true }))),
          Effect.forever,
          Effect.forkScoped
        )
      }
      yield* Effect.logInfo(
        `writer ${options.consumer} on the partitioned log: ${config.streamPartitions} partitions ${keys[0]} … (group ${options.group} each)`
      )
      return Writer.of({
        consumer: options.consumer,
        options: { ...options, streamKey: keys[0] ?? "" },
        snapshot: Effect.flatMap(handle.writers, (writers) =>
          Effect.map(Effect.forEach(writers.values(), (w) => w.snapshot), (snapshots) => sumSnapshots(base, snapshots))),
        partitions: Effect.flatMap(handle.owned, (owned) =>
          Effect.forEach(keys, (key, partition) =>
            streamStatus(client, key, options.group).pipe(
              Effect.timeout("2 seconds"),
              Effect.orElseSucceed(() => null),
              Effect.map((stream): PartitionState => ({ partition, key, owned: owned.includes(partition), stream }))
            ), { concurrency: "unbounded" }))
      })
    })
  ).pipe(Layer.provide(Layer.mergeAll(Salts.layer, Domains.layer)))

/**
 * The production writer on a partitioned log: the PostgreSQL sink, the consumers on the cluster
 * (PRIMARY_REDIS_CLUSTER) and, as on one stream, the site registry's publisher to the primary
 * Redis. Requires AppConfig, PrimaryRedis, SqlClient and GeoLookup.
 */
export const layerPartitionedPostgres = (overrides: Partial<WriterOptions> = {}) =>
  layerPartitioned(overrides).pipe(
    Layer.provide(Layer.mergeAll(PgSink.layer, StreamConsumer.layerCluster)),
    Layer.provide(PrimaryCluster.layer),
    Layer.merge(SitePublisher.layer)
  )
