/**
 * The writer loop (docs/architecture.md, writer): reads its stream partition with a consumer
 * group (`StreamConsumer`), prepares each batch (PrepareBatch.ts: decode, enrich, tenant,
 * rollup deltas), stores it in ONE atomic write of its `Sink` (PgSink.ts in production) and
 * acknowledges (`XACK` + `XDEL`) only after that write committed. Several writer processes may
 * share the group. The loop knows nothing of PostgreSQL: a sink says whether a failed write is
 * worth retrying (`BatchWriteError.transient`).
 *
 * Recovery
 * - Entries left pending by a crashed writer are reclaimed with `XAUTOCLAIM` once idle for
 *   `claimIdleMs` (default 30 s), at start and then every `claimEveryMs` (WriterIntake.ts).
 * - An entry delivered more than `maxDeliveries` times (default 5), or undecodable, or whose
 *   enrichment throws, is stored as poison (`ingest_failures`: raw payload, error, attempts) in
 *   the batch's write and acknowledged with it — never lost (`replayFailures`).
 * - A transient failure (connection lost, deadlock, server shutting down, …) retries the same
 *   batch with a capped exponential backoff `Schedule`, without acknowledging; between attempts
 *   the entries' idle time is reset (`XCLAIM … JUSTID`) so other writers do not claim them
 *   while this one is still trying. A permanent failure (bad data the store rejects) is
 *   retried `permanentAttempts` times, then the batch is split in halves until the offending
 *   entry is alone; that entry is stored as poison.
 *
 * Throughput: a pipeline (WriterPipeline.ts) — batch N+2 is read and prepared while batches N
 * and N+1 are being written (`transactions`, WRITER_TRANSACTIONS, default 2);
 * acknowledgements run in the background, in commit order (WriterAcks.ts).
 *
 * Graceful stop: each attempt — write, COMMIT, starting XACK — runs uninterruptibly, so
 * interrupting the writer (scope close, SIGTERM) takes effect only between batches or while
 * waiting (blocked read, backoff). The in-flight batch commits, a batch already read ahead is
 * committed too, every acknowledgement completes, and entries still pending for this consumer
 * are handed to the other writers (`leaveGroup`).
 *
 * Spans: `Writer.prepare`, `Writer.write` and `Writer.ack`, one each per batch.
 *
 * Partitions (Redis Cluster, later): a writer owning several stream keys runs one such loop per
 * key (`StreamConsumer.open` per key, `options.streamKey`); the sink, the prepare stage and the
 * counters are shared.
 */
import { Cause, Clock, Context, Duration, Effect, Layer, Metric, Ref } from "effect"
import { cappedBackoff } from "../domain/Backoff.ts"
import { type BatchEntry, MAX_ERROR_TEXT, poisonOnlyBatch, type PreparedBatch, type WriteResult } from "../domain/Batch.ts"
import { laneOfPayload } from "../domain/SessionLanes.ts"
import type { Scope as TenantScope } from "../domain/Tenant.ts"
import { Domains } from "../layers/Domains.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import { NetworkLookup } from "../layers/NetworkLookup.ts"
import * as Metrics from "../layers/Metrics.ts"
import * as PgSink from "../layers/PgSink.ts"
import { Salts } from "../layers/Salts.ts"
import { Sink, type StagedBatch } from "../layers/Sink.ts"
import { SitePublisher } from "../layers/SitePublisher.ts"
import { describeSqlError } from "../layers/Sql.ts"
import { StreamConsumer, type StreamStatus } from "../layers/StreamConsumer.ts"
import { rotateSalts } from "./Maintenance.ts"
import { prepareBatch } from "./PrepareBatch.ts"
import { makeAcks } from "./WriterAcks.ts"
import { makeIntake } from "./WriterIntake.ts"
import { emptySnapshot, sessionLaneCount, type WriterOptions, writerOptions, type WriterSnapshot } from "./WriterOptions.ts"
import { runPipeline } from "./WriterPipeline.ts"

/** One partition of the log as the writer sees it (`/health`, `/metrics`). */
export interface PartitionState {
  readonly partition: number
  readonly key: string
  /** owned by this writer now */
  readonly owned: boolean
  /** null when the partition's node did not answer */
  readonly stream: StreamStatus | null
}

export interface WriterHandle {
  readonly options: WriterOptions
  /** One iteration: reclaim idle entries when due, else read new ones; handles what it got. */
  readonly step: Effect.Effect<number>
  /** Runs the pipeline until neither new nor reclaimable entries remain (tests, benchmarks). */
  readonly drain: Effect.Effect<void>
  /** Runs the pipeline forever; a defect is logged and the loop resumes after a second. */
  readonly run: Effect.Effect<never>
  /** The store's housekeeping (partitions ahead, retention), salt purge, dead consumers. */
  readonly maintain: Effect.Effect<void>
  readonly snapshot: Effect.Effect<WriterSnapshot>
  /**
   * Leaves the group: removes this consumer when it holds nothing pending, else marks its
   * pending entries long idle so that other writers reclaim them at once.
   */
  readonly leaveGroup: Effect.Effect<void>
}

interface Work {
  readonly entries: ReadonlyArray<BatchEntry>
  readonly staged: StagedBatch
  /** its session lane (WRITER_SESSION_LANES), undefined without lanes */
  readonly lane: number | undefined
}

const firstLine = (text: string) => {
  const newline = text.indexOf("\n")
  return newline === -1 ? text : text.slice(0, newline)
}

/**
 * Builds a writer: creates the consumer group (at id 0, MKSTREAM), readies the sink (partitions
 * around today) and opens the partition's blocking Redis connection (closed with the scope).
 */
export const makeWriter = Effect.fnUntraced(function*(overrides: Partial<WriterOptions> = {}) {
  const options = yield* writerOptions(overrides)
  const sink = yield* Sink
  const consumer = yield* StreamConsumer
  const partition = yield* consumer.open({ key: options.streamKey, group: options.group, consumer: options.consumer })
  const context = yield* Effect.context<Salts | Domains | GeoLookup | NetworkLookup>()
  const stats = yield* Ref.make(emptySnapshot(options))
  const now = Clock.currentTimeMillis

  const noteError = (message: string) =>
    Effect.flatMap(now, (at) => Ref.update(stats, (s) => ({ ...s, lastError: message, lastErrorAt: at })))

  const schedule = cappedBackoff(options.retryBaseMs, options.retryMaxMs)

  // the group is (re)created on NOGROUP by the read loop too, so a Redis that is down at start
  // only delays the writer
  yield* partition.ensureGroup.pipe(
    Effect.retry({ schedule, times: 5 }),
    Effect.catch((error) => Effect.logWarning(`writer: cannot create the consumer group yet (${error.message}); will retry`))
  )

  const maintain = Effect.gen(function*() {
    const nowMs = yield* now
    yield* sink.maintain({ nowMs, retentionDays: options.retentionDays })
    yield* rotateSalts(nowMs, options.saltKeepDays)
    const pruned = yield* partition.pruneConsumers(options.pruneConsumersIdleMs)
    if (pruned.length > 0) yield* Effect.logInfo(`writer: removed ${pruned.length} dead consumer(s) from the group: ${pruned.join(", ")}`)
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning("writer: maintenance failed", cause)),
    Effect.provideContext(context)
  )

  // PostgreSQL: partitions must exist before the first insert lands in DEFAULT for no reason
  yield* Effect.flatMap(now, sink.ready).pipe(
    Effect.catchCause((cause) => Effect.logWarning(`writer: the ${sink.name} sink is not ready`, cause))
  )

  const acks = makeAcks(partition)
  const intake = makeIntake({ partition, writer: options, acks, schedule, noteError })

  const record = (result: WriteResult) =>
    Effect.all([
      Metric.update(Metrics.written, result.inserted),
      Metric.update(Metrics.duplicates, result.duplicates),
      Metric.update(Metrics.poison, result.poison)
    ], { discard: true }).pipe(Effect.andThen(Effect.flatMap(now, (at) =>
      Ref.update(stats, (s) => ({
        ...s,
        batches: s.batches + 1,
        written: s.written + result.inserted,
        duplicates: s.duplicates + result.duplicates,
        poison: s.poison + result.poison,
        sessions: s.sessions + result.newSessions,
        lastBatchAt: at,
        lastWriteAt: result.inserted > 0 ? at : s.lastWriteAt
      })))))

  /** The write of one attempt, then the counters and the start of its XACK. */
  const write = Effect.fn("Writer.write")(function*(staged: StagedBatch) {
    const result = yield* sink.write(staged)
    yield* record(result)
    yield* acks.start(staged.batch.entryIds)
    return result
  })

  /**
   * One attempt: write → COMMIT → counters → XACK + XDEL started, uninterruptible as a whole
   * (the ack itself completes in its own uninterruptible fiber, awaited before the loop stops).
   */
  const attemptOnce = (staged: StagedBatch) => Effect.uninterruptible(write(staged))

  /**
   * Writes a staged batch, retrying transient errors forever (with backoff) and permanent
   * ones `permanentAttempts` times. Fails with the last permanent error.
   */
  const commit = (staged: StagedBatch) => {
    const batch = staged.batch
    let attempt = 0
    let permanentFailures = 0
    return Effect.suspend(() => {
      attempt++
      return attemptOnce(staged)
    }).pipe(
      Effect.tapError((error) =>
        Effect.gen(function*() {
          if (!error.transient) permanentFailures++
          yield* Ref.update(stats, (s) => ({ ...s, retries: s.retries + 1 }))
          yield* noteError(error.message)
          yield* Effect.logWarning(
            `writer: batch of ${batch.entryIds.length} failed (attempt ${attempt}, ${error.transient ? "transient" : "permanent"}): ${firstLine(error.message)}`
          )
          yield* partition.touch(batch.entryIds).pipe(Effect.ignore)
        })
      ),
      Effect.retry({ schedule, while: (error) => error.transient || permanentFailures < options.permanentAttempts })
    )
  }

  /**
   * Batches read and not yet settled that have views, oldest first. A later batch is prepared,
   * and its write may insert, before these commit: its events look their session's tenant and
   * bot status up here, as they would in the first touch a committed view left.
   */
  const unsettled: Array<PreparedBatch> = []
  const pendingViewScopes = (sessionId: string): TenantScope | undefined => {
    for (const batch of unsettled) {
      const scope = batch.viewScopes.get(sessionId)
      if (scope !== undefined) return scope
    }
    return undefined
  }
  const pendingSessionBot = (sessionId: string): boolean | undefined => {
    let known: boolean | undefined
    for (const batch of unsettled) {
      const bot = batch.sessionBots.get(sessionId)
      if (bot === true) return true
      if (bot === false) known = false
    }
    return known
  }

  /** The prepare stage, then the sink's own work ahead. */
  const prepareAndStage = Effect.fn("Writer.prepare")(function*(entries: ReadonlyArray<BatchEntry>) {
    const batch = yield* prepareBatch(entries, {
      streamKey: options.streamKey,
      maxDeliveries: options.maxDeliveries,
      pendingViewScopes,
      pendingSessionBot
    })
    return yield* sink.stage(batch)
  })

  const prepare = (entries: ReadonlyArray<BatchEntry>) =>
    prepareAndStage(entries).pipe(
      Effect.provideContext(context),
      Effect.tapError((error) =>
        Effect.gen(function*() {
          yield* noteError(describeSqlError(error))
          yield* Effect.logWarning(`writer: cannot prepare batch (will retry): ${firstLine(describeSqlError(error))}`)
          yield* partition.touch(entries.map((e) => e.id)).pipe(Effect.ignore)
        })
      ),
      Effect.retry({ schedule }),
      Effect.orDie // the schedule never ends
    )

  /** Commits a staged batch; a batch that keeps failing permanently is split (see above). */
  const commitWork = (work: Work): Effect.Effect<void> =>
    Effect.gen(function*() {
      for (const p of work.staged.batch.poison) {
        yield* Effect.logWarning(`writer: poison entry ${p.entryId} → ingest_failures: ${firstLine(p.error)}`)
      }
      const outcome = yield* Effect.result(commit(work.staged))
      if (outcome._tag === "Success") return
      const error = outcome.failure
      const { entries } = work
      if (entries.length > 1) {
        const middle = Math.ceil(entries.length / 2)
        yield* Effect.logWarning(`writer: splitting a failing batch of ${entries.length} to isolate the bad entry`)
        yield* processEntries(entries.slice(0, middle))
        yield* processEntries(entries.slice(middle))
        return
      }
      const entry = entries[0]!
      const poison = poisonOnlyBatch(options.streamKey, {
        entryId: entry.id,
        payload: entry.payload,
        error: `write failed: ${error.message}`.slice(0, MAX_ERROR_TEXT),
        attempts: entry.deliveries,
        eventId: work.staged.batch.events[0]?.row.eventId ?? null
      })
      yield* Effect.logWarning(`writer: entry ${entry.id} cannot be written → ingest_failures: ${firstLine(error.message)}`)
      const stored = yield* Effect.result(Effect.flatMap(sink.stage(poison), commit))
      if (stored._tag === "Failure") {
        yield* Effect.logError(
          `writer: entry ${entry.id} could not be stored nor recorded as poison; left pending (${stored.failure.message})`
        )
      }
    })

  const processEntries = (entries: ReadonlyArray<BatchEntry>): Effect.Effect<void> =>
    Effect.flatMap(prepare(entries), (staged) => commitWork({ entries, staged, lane: undefined }))

  /** session lanes (the intake splits each read into them): as many as writes in flight */
  const lanes = sessionLaneCount(options)

  /** The next batch, read and prepared; undefined when there was nothing to read. */
  const fetchWork: Effect.Effect<Work | undefined> = Effect.flatMap(intake.next, (entries) => {
    if (entries.length === 0) return Effect.succeed(undefined)
    return Effect.map(prepare(entries), (staged) => {
      if (staged.batch.sessionBots.size > 0) unsettled.push(staged.batch)
      return { entries, staged, lane: lanes > 1 ? laneOfPayload(entries[0]!.payload, lanes) : undefined }
    })
  })

  const settle = (work: Work) =>
    Effect.sync(() => {
      intake.settle(work.entries)
      const at = unsettled.indexOf(work.staged.batch)
      if (at !== -1) unsettled.splice(at, 1)
    })

  const commitAndSettle = (work: Work) => commitWork(work).pipe(Effect.ensuring(settle(work)))

  const step: Effect.Effect<number> = Effect.flatMap(fetchWork, (work) =>
    work === undefined
      ? Effect.succeed(0)
      : commitAndSettle(work).pipe(Effect.andThen(acks.await), Effect.as(work.entries.length)))

  const pipeline = (stopWhenIdle: boolean) =>
    runPipeline<Work>({
      depth: options.transactions,
      fetch: fetchWork,
      laneOf: (work) => work.lane,
      commit: commitAndSettle,
      commitOnStop: (work) =>
        attemptOnce(work.staged).pipe(
          Effect.ensuring(settle(work)),
          Effect.catch((error) =>
            Effect.logWarning(`writer: read-ahead batch not written on shutdown (${firstLine(error.message)}); released`)
          )
        ),
      awaitAcks: acks.await,
      lookAgain: intake.claimNow,
      reset: () => {
        intake.clear()
        unsettled.length = 0
      }
    }, stopWhenIdle)

  const run: Effect.Effect<never> = pipeline(false).pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logError("writer: loop failed; restarting in 1 s", cause).pipe(Effect.andThen(Effect.sleep("1 second")))
    ),
    Effect.forever
  ) as Effect.Effect<never>

  return {
    options,
    step,
    drain: pipeline(true),
    run,
    maintain,
    snapshot: Ref.get(stats),
    leaveGroup: acks.await.pipe(
      Effect.andThen(partition.leaveGroup),
      Effect.tap((released) =>
        released > 0
          ? Effect.logInfo(`writer: released ${released} pending entr${released === 1 ? "y" : "ies"} to the other writers`)
          : Effect.void
      ),
      Effect.ignore
    )
  } satisfies WriterHandle
})

// ---------------------------------------------------------------------------------------------
// service

/**
 * The running writer: its consumer name and counters (for `/health` and `/metrics`).
 * `Writer.layer` runs the loop (and the hourly maintenance) in background fibers scoped to
 * the layer; closing the scope stops it between batches and removes the consumer from the
 * group when it holds nothing pending.
 */
export class Writer extends Context.Service<Writer, {
  readonly consumer: string
  readonly options: WriterOptions
  readonly snapshot: Effect.Effect<WriterSnapshot>
  /**
   * On a partitioned log (Redis Cluster): every partition's stream state (length, lag, pending)
   * and which of them this writer owns; absent on the single primary stream.
   */
  readonly partitions?: Effect.Effect<ReadonlyArray<PartitionState>>
}>()("spoolway/programs/Writer") {
  /** Writer with options from AppConfig plus `overrides`. */
  static readonly layerWith = (overrides: Partial<WriterOptions> = {}) =>
    Layer.effect(
      Writer,
      Effect.gen(function*() {
        const writer = yield* makeWriter(overrides)
        yield* Effect.addFinalizer(() => writer.leaveGroup)
        if (writer.options.maintenance) {
          yield* Effect.sleep(Duration.millis(writer.options.maintenanceEveryMs)).pipe(
            Effect.andThen(writer.maintain),
            Effect.forever,
            Effect.forkScoped
          )
        }
        yield* Effect.forkScoped(writer.run)
        yield* Effect.logInfo(
          `writer ${writer.options.consumer} reading ${writer.options.streamKey} (group ${writer.options.group}, batch ${writer.options.batchSize})`
        )
        return Writer.of({ consumer: writer.options.consumer, options: writer.options, snapshot: writer.snapshot })
      })
    ).pipe(Layer.provide(Layer.mergeAll(Salts.layer, Domains.layer)))

  /** Requires AppConfig, Sink, StreamConsumer, SqlClient (salts, domains), GeoLookup and NetworkLookup. */
  static readonly layer = Writer.layerWith()

  /**
   * The production writer: the PostgreSQL sink on the primary stream, and the publisher of the
   * site registry to the primary Redis (collectors learn the sites there). Requires AppConfig,
   * PrimaryRedis, SqlClient (migrated — see Sql.layer), GeoLookup and NetworkLookup.
   */
  static readonly layerPostgres = (overrides: Partial<WriterOptions> = {}) =>
    Writer.layerWith(overrides).pipe(
      Layer.provide(Layer.mergeAll(PgSink.layer, StreamConsumer.layer)),
      Layer.merge(SitePublisher.layer)
    )
}

/**
 * What {@link makeWriter} needs besides AppConfig, GeoLookup and NetworkLookup, for running it directly (tests,
 * benchmarks): Salts, Domains, the stream consumer and the PostgreSQL sink, on SqlClient and
 * PrimaryRedis.
 */
export const WriterDependencies = Layer.mergeAll(Salts.layer, Domains.layer, StreamConsumer.layer, PgSink.layer)
