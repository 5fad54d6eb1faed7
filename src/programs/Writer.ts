/**
 * The writer (SPEC §5): reads the primary stream with a consumer group, writes each batch in
 * ONE PostgreSQL transaction (WriteBatch.ts) and acknowledges (`XACK` + `XDEL`) only after
 * COMMIT. Several writer processes may share the group.
 *
 * Recovery
 * - Entries left pending by a crashed writer are reclaimed with `XAUTOCLAIM` once idle for
 *   `claimIdleMs` (default 30 s), at start and then every `claimEveryMs`.
 * - An entry delivered more than `maxDeliveries` times (default 5), or undecodable, or whose
 *   enrichment throws, is stored in `ingest_failures` (raw payload, error, attempts) in the
 *   batch's transaction and acknowledged with it — never lost (`replayFailures`).
 * - A transient SQL error (connection lost, deadlock, server shutting down, …) retries the same
 *   batch with a capped exponential backoff `Schedule`, without acknowledging; between attempts
 *   the entries' idle time is reset (`XCLAIM … JUSTID`) so other writers do not claim them
 *   while this one is still trying. A permanent error (bad data the statements reject) is
 *   retried `permanentAttempts` times, then the batch is split in halves until the offending
 *   entry is alone; that entry goes to `ingest_failures`.
 *
 * Throughput: a pipeline — batch N+2 is read, decoded, enriched and its statement parameters
 * and rollups computed while batches N and N+1 are in their transactions (`transactions`,
 * WRITER_TRANSACTIONS, default 2, each on its own connection); acknowledgements run in the
 * background, in commit order. Rows this writer already stored and that a later view
 * would not change (known sessions, visitors already counted for a bucket) are not sent again
 * (WriteCache).
 *
 * Graceful stop: each attempt — transaction, COMMIT, starting XACK — runs uninterruptibly, so
 * interrupting the writer (scope close, SIGTERM) takes effect only between batches or while
 * waiting (blocked read, backoff). The in-flight batch commits, a batch already read ahead is
 * committed too, every acknowledgement completes, and entries still pending for this consumer
 * are handed to the other writers (`leaveGroup`).
 */
import { hostname } from "node:os"
import { Cause, Clock, Context, Duration, Effect, Fiber, Layer, Metric, Ref, Schedule } from "effect"
import type { Scope } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import { cappedBackoff } from "../domain/Backoff.ts"
import { primaryStreamKey, writerGroup } from "../domain/Streams.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { Domains } from "../layers/Domains.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import * as Metrics from "../layers/Metrics.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { acquireBlockingRedis } from "../layers/RedisClient.ts"
import { Salts } from "../layers/Salts.ts"
import { SitePublisher } from "../layers/SitePublisher.ts"
import { runMaintenance } from "./Maintenance.ts"
import { ensurePartitionsAround } from "./Partitions.ts"
import type { Scope as TenantScope } from "./Rollups.ts"
import {
  type BatchEntry,
  BatchWriteError,
  WriteCache,
  describeSqlError,
  type PreparedBatch,
  prepareBatch,
  type WriteResult,
  writeBatch
} from "./WriteBatch.ts"
import * as Stream from "./WriterStream.ts"

// ---------------------------------------------------------------------------------------------
// options

export interface WriterHooks {
  /** Inside the transaction, after every statement, before COMMIT (tests inject failures). */
  readonly beforeCommit?: (
    batch: { readonly entryIds: ReadonlyArray<string>; readonly events: number; readonly attempt: number }
  ) => Effect.Effect<void, SqlError>
  /**
   * After COMMIT, before XACK, inside the uninterruptible region (tests inject a crash here,
   * e.g. `Effect.interrupt`, which ends the writer fiber with the batch committed but pending).
   */
  readonly afterCommit?: (batch: { readonly entryIds: ReadonlyArray<string> }) => Effect.Effect<void>
}

export interface WriterOptions {
  readonly streamKey: string
  readonly group: string
  /** unique per writer process */
  readonly consumer: string
  /** XREADGROUP COUNT (WRITER_BATCH_SIZE) */
  readonly batchSize: number
  /** XREADGROUP BLOCK (WRITER_BLOCK_MS) */
  readonly blockMs: number
  /** batch transactions in flight at once (WRITER_TRANSACTIONS, at least 1) */
  readonly transactions: number
  /** reclaim entries pending (in any consumer) for at least this long */
  readonly claimIdleMs: number
  readonly claimEveryMs: number
  /** consumers idle this long with nothing pending are dead writers' and are removed (maintenance) */
  readonly pruneConsumersIdleMs: number
  /** entries delivered more often than this are poison */
  readonly maxDeliveries: number
  /** transient-error backoff: exponential from `retryBaseMs`, capped at `retryMaxMs` */
  readonly retryBaseMs: number
  readonly retryMaxMs: number
  /** attempts of a batch failing with a permanent error before it is split */
  readonly permanentAttempts: number
  /** partitions ahead, retention, salt purge — hourly (the `Writer.layer` runs it) */
  readonly maintenance: boolean
  readonly maintenanceEveryMs: number
  readonly retentionDays: number
  /** visitor salts are deleted once older than this many days */
  readonly saltKeepDays: number
  readonly hooks: WriterHooks
}

export const defaultConsumerName = (): string =>
  `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

/** Options from AppConfig (SPEC §9), with overrides. */
export const writerOptions = Effect.fnUntraced(function*(overrides: Partial<WriterOptions> = {}) {
  const config = yield* AppConfig
  return {
    streamKey: primaryStreamKey(config.streamPrefix),
    group: writerGroup(config.streamPrefix),
    consumer: defaultConsumerName(),
    batchSize: config.writerBatchSize,
    blockMs: config.writerBlockMs,
    transactions: config.writerTransactions,
    claimIdleMs: config.writerClaimIdleMs,
    claimEveryMs: config.writerClaimEveryMs,
    pruneConsumersIdleMs: 600_000,
    maxDeliveries: 5,
    retryBaseMs: 100,
    retryMaxMs: 5_000,
    permanentAttempts: 3,
    maintenance: true,
    maintenanceEveryMs: 3_600_000,
    retentionDays: config.retentionDays,
    saltKeepDays: 2,
    hooks: {},
    ...overrides
  } satisfies WriterOptions
})

// ---------------------------------------------------------------------------------------------
// health / metrics

export interface WriterSnapshot {
  readonly consumer: string
  readonly streamKey: string
  readonly group: string
  /** batches committed */
  readonly batches: number
  /** raw_events rows inserted */
  readonly written: number
  /** entries whose event was already stored (redelivery, double drain, replay) */
  readonly duplicates: number
  /** entries moved to ingest_failures */
  readonly poison: number
  /** sessions created (human) */
  readonly sessions: number
  /** failed batch attempts that were retried */
  readonly retries: number
  /** epoch ms of the last commit that inserted rows */
  readonly lastWriteAt: number | null
  /** epoch ms of the last committed batch */
  readonly lastBatchAt: number | null
  readonly lastError: string | null
  readonly lastErrorAt: number | null
}

const emptySnapshot = (options: WriterOptions): WriterSnapshot => ({
  consumer: options.consumer,
  streamKey: options.streamKey,
  group: options.group,
  batches: 0,
  written: 0,
  duplicates: 0,
  poison: 0,
  sessions: 0,
  retries: 0,
  lastWriteAt: null,
  lastBatchAt: null,
  lastError: null,
  lastErrorAt: null
})

// ---------------------------------------------------------------------------------------------
// the writer

export interface WriterHandle {
  readonly options: WriterOptions
  /** One iteration: reclaim idle entries when due, else read new ones; handles what it got. */
  readonly step: Effect.Effect<number>
  /** Runs the pipeline until neither new nor reclaimable entries remain (tests, benchmarks). */
  readonly drain: Effect.Effect<void>
  /** Runs the pipeline forever; a defect is logged and the loop resumes after a second. */
  readonly run: Effect.Effect<never>
  /** Partitions ahead (yesterday … +7 days), retention, salt purge. */
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
  readonly batch: PreparedBatch
}

/**
 * A transaction whose connection died (PostgreSQL shut down or crashed, backend terminated,
 * network cut) fails its ROLLBACK too, and effect's `withTransaction` reports that as a defect
 * (`Effect.orDie(rollback)`): the cause holds only Dies of SQL errors / of the batch's own error.
 * Nothing was committed that a retry would store twice (the statements are idempotent: rows
 * ON CONFLICT DO NOTHING, rollups only for rows the retry itself inserts), so this is a
 * transient failure of the batch, retried in place like a lost connection before ROLLBACK —
 * not a defect that restarts the loop and leaves the entries to be reclaimed (and counted as
 * a delivery) later. Any other defect (a bug) stays a defect.
 */
export const recoverFailedRollback = <A, R>(
  self: Effect.Effect<A, BatchWriteError, R>
): Effect.Effect<A, BatchWriteError, R> =>
  Effect.catchCause(self, (cause) => {
    if (Cause.hasInterrupts(cause) || !Cause.hasDies(cause)) return Effect.failCause(cause)
    const errors: Array<BatchWriteError> = []
    const sqlDefects: Array<SqlError> = []
    for (const reason of cause.reasons) {
      const value = Cause.isFailReason(reason) ? reason.error : Cause.isDieReason(reason) ? reason.defect : undefined
      if (value instanceof BatchWriteError) errors.push(value)
      else if (isSqlError(value)) sqlDefects.push(value)
      else return Effect.failCause(cause)
    }
    const first = errors[0]
    const rollback = sqlDefects[0]
    const message = [
      first?.message,
      rollback === undefined ? undefined : `ROLLBACK failed: ${describeSqlError(rollback)}`
    ].filter((part) => part !== undefined).join("; ")
    return Effect.fail(
      new BatchWriteError({
        message,
        // a failed ROLLBACK means the connection is gone: whatever the statement error was, the
        // retry runs on a new connection
        transient: rollback !== undefined || errors.some((error) => error.transient),
        cause: first ?? rollback
      })
    )
  })

const firstLine = (text: string) => {
  const newline = text.indexOf("\n")
  return newline === -1 ? text : text.slice(0, newline)
}

/**
 * Builds a writer: creates the consumer group (at id 0, MKSTREAM) and the partitions around
 * today, and opens a dedicated blocking Redis connection (closed with the scope).
 */
export const makeWriter = Effect.fnUntraced(function*(overrides: Partial<WriterOptions> = {}) {
  const options = yield* writerOptions(overrides)
  const primary = yield* PrimaryRedis
  const blocking = yield* acquireBlockingRedis(primary.url, `writer-${options.consumer}`)
  const context = yield* Effect.context<SqlClient.SqlClient | Salts | Domains | GeoLookup>()
  const h: Stream.StreamHandles = {
    key: options.streamKey,
    group: options.group,
    consumer: options.consumer,
    client: primary.client,
    blocking
  }
  const stats = yield* Ref.make(emptySnapshot(options))
  const cache = new WriteCache()
  const now = Clock.currentTimeMillis

  const noteError = (message: string) =>
    Effect.flatMap(now, (at) => Ref.update(stats, (s) => ({ ...s, lastError: message, lastErrorAt: at })))

  const schedule = cappedBackoff(options.retryBaseMs, options.retryMaxMs)

  // the group is (re)created on NOGROUP by the read loop too, so a Redis that is down at start
  // only delays the writer
  yield* Stream.ensureGroup(h).pipe(
    Effect.retry({ schedule, times: 5 }),
    Effect.catch((error) => Effect.logWarning(`writer: cannot create the consumer group yet (${error.message}); will retry`))
  )

  const maintain = Effect.gen(function*() {
    yield* runMaintenance({ nowMs: yield* now, retentionDays: options.retentionDays, saltKeepDays: options.saltKeepDays })
    const pruned = yield* Stream.pruneConsumers(h, options.pruneConsumersIdleMs)
    if (pruned.length > 0) yield* Effect.logInfo(`writer: removed ${pruned.length} dead consumer(s) from the group: ${pruned.join(", ")}`)
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning("writer: maintenance failed", cause)),
    Effect.provideContext(context)
  )

  // partitions must exist before the first insert lands in DEFAULT for no reason
  yield* Effect.gen(function*() {
    yield* ensurePartitionsAround(yield* now, 7)
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning("writer: could not create partitions (rows go to DEFAULT)", cause)),
    Effect.provideContext(context)
  )

  const ackAfterCommit = (ids: ReadonlyArray<string>) =>
    Stream.ackAndDelete(h, ids).pipe(
      Effect.retry({ schedule: Schedule.spaced(Duration.millis(200)), times: 10 }),
      Effect.catch((error) =>
        Effect.logWarning(
          `writer: batch committed but XACK failed (${error.message}); its ${ids.length} entries will be redelivered and skipped as duplicates`
        )
      )
    )

  /**
   * XACK + XDEL run in the background, overlapping the next batch's transaction (acks stay in
   * commit order: each waits for the previous one). `awaitAcks` waits for all of them; the
   * loop does so before it stops.
   */
  let pendingAck: Fiber.Fiber<void> | undefined
  /** committed entries whose acknowledgement is still on its way (not to be reclaimed) */
  const acking = new Set<string>()
  /**
   * Entries acknowledged while an XAUTOCLAIM is on its way: its reply may still list them
   * (claimed before the ack reached Redis), so they are dropped from it.
   */
  let claimWatch: Set<string> | undefined
  const startAck = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const previous = pendingAck
      for (const id of ids) acking.add(id)
      pendingAck = yield* Effect.forkDetach(
        Effect.gen(function*() {
          if (previous !== undefined) yield* Fiber.join(previous)
          yield* ackAfterCommit(ids)
        }).pipe(
          Effect.ensuring(Effect.sync(() => {
            for (const id of ids) {
              acking.delete(id)
              claimWatch?.add(id)
            }
          }))
        ),
        { uninterruptible: true }
      )
    })
  const awaitAcks = Effect.suspend(() => (pendingAck === undefined ? Effect.void : Fiber.join(pendingAck)))

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

  /**
   * One attempt: transaction → COMMIT → (hook) → counters → XACK + XDEL started, uninterruptible
   * as a whole (the ack itself completes in its own uninterruptible fiber, awaited before the
   * loop stops).
   */
  const attemptOnce = (batch: PreparedBatch, attempt: number) =>
    Effect.uninterruptible(
      Effect.gen(function*() {
        const result = yield* recoverFailedRollback(writeBatch(batch, {
          streamKey: options.streamKey,
          cache,
          beforeCommit: options.hooks.beforeCommit?.({ entryIds: batch.entryIds, events: batch.events.length, attempt })
        }))
        if (options.hooks.afterCommit !== undefined) yield* options.hooks.afterCommit({ entryIds: batch.entryIds })
        yield* record(result)
        yield* startAck(batch.entryIds)
        return result
      })
    )

  /**
   * Writes a prepared batch, retrying transient errors forever (with backoff) and permanent
   * ones `permanentAttempts` times. Fails with the last permanent error.
   */
  const commit = (batch: PreparedBatch) => {
    let attempt = 0
    let permanentFailures = 0
    return Effect.suspend(() => attemptOnce(batch, ++attempt)).pipe(
      Effect.tapError((error) =>
        Effect.gen(function*() {
          if (!error.transient) permanentFailures++
          yield* Ref.update(stats, (s) => ({ ...s, retries: s.retries + 1 }))
          yield* noteError(error.message)
          yield* Effect.logWarning(
            `writer: batch of ${batch.entryIds.length} failed (attempt ${attempt}, ${error.transient ? "transient" : "permanent"}): ${firstLine(error.message)}`
          )
          yield* Stream.touch(h, batch.entryIds).pipe(Effect.ignore)
        })
      ),
      Effect.retry({ schedule, while: (error) => error.transient || permanentFailures < options.permanentAttempts })
    )
  }

  /**
   * The session tenants of batches read and not yet settled, oldest first. A later batch is
   * prepared, and its transaction may insert, before these commit: its header-less events look
   * their session's tenant up here, as they would in the fingerprint a committed view left.
   */
  const unsettledViewScopes: Array<ReadonlyMap<string, TenantScope>> = []
  const pendingViewScopes = (sessionId: string) => {
    for (const scopes of unsettledViewScopes) {
      const scope = scopes.get(sessionId)
      if (scope !== undefined) return scope
    }
    return undefined
  }

  const prepare = (entries: ReadonlyArray<BatchEntry>) =>
    prepareBatch(entries, { maxDeliveries: options.maxDeliveries, cache, pendingViewScopes }).pipe(
      Effect.provideContext(context),
      Effect.tapError((error) =>
        Effect.gen(function*() {
          yield* noteError(describeSqlError(error))
          yield* Effect.logWarning(`writer: cannot prepare batch (will retry): ${firstLine(describeSqlError(error))}`)
          yield* Stream.touch(h, entries.map((e) => e.id)).pipe(Effect.ignore)
        })
      ),
      Effect.retry({ schedule }),
      Effect.orDie // the schedule never ends
    )

  /** Commits a prepared batch; a batch that keeps failing permanently is split (see above). */
  const commitWork = (work: Work): Effect.Effect<void> =>
    Effect.gen(function*() {
      for (const p of work.batch.poison) {
        yield* Effect.logWarning(`writer: poison entry ${p.entryId} → ingest_failures: ${firstLine(p.error)}`)
      }
      const outcome = yield* commit(work.batch).pipe(Effect.provideContext(context), Effect.result)
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
      const poisonBatch: PreparedBatch = {
        entryIds: [entry.id],
        events: [],
        poison: [{
          entryId: entry.id,
          payload: entry.payload,
          error: `write failed: ${error.message}`.slice(0, 4000),
          attempts: entry.deliveries,
          eventId: work.batch.events[0]?.row.eventId ?? null
        }],
        inBatchDuplicates: 0,
        viewScopes: new Map(),
        plan: undefined
      }
      yield* Effect.logWarning(`writer: entry ${entry.id} cannot be written → ingest_failures: ${firstLine(error.message)}`)
      const stored = yield* commit(poisonBatch).pipe(Effect.provideContext(context), Effect.result)
      if (stored._tag === "Failure") {
        yield* Effect.logError(
          `writer: entry ${entry.id} could not be stored nor recorded as poison; left pending (${stored.failure.message})`
        )
      }
    })

  const processEntries = (entries: ReadonlyArray<BatchEntry>): Effect.Effect<void> =>
    Effect.flatMap(prepare(entries), (batch) => commitWork({ entries, batch }))

  let claimCursor = "0-0"
  let nextClaimAt = 0
  /** entries read and not yet committed (the read-ahead must not reclaim them) */
  const inFlight = new Set<string>()

  const claim = Effect.gen(function*() {
    const watch = new Set<string>()
    claimWatch = watch
    const unwatch = Effect.sync(() => {
      if (claimWatch === watch) claimWatch = undefined
    })
    const result = yield* Stream.autoClaim(h, options.claimIdleMs, claimCursor, options.batchSize).pipe(
      Effect.onError(() => unwatch)
    )
    // every id acknowledged since the claim was sent is in `watch`, every id still being
    // acknowledged in `acking`
    const entries = result.entries.filter((entry) =>
      !inFlight.has(entry.id) && !acking.has(entry.id) && !watch.has(entry.id)
    )
    yield* unwatch
    claimCursor = result.next
    if (result.deleted.length > 0) yield* Stream.ackAndDelete(h, result.deleted).pipe(Effect.ignore)
    if (entries.length > 0) {
      yield* Effect.logInfo(`writer: reclaimed ${entries.length} idle pending entr${entries.length === 1 ? "y" : "ies"}`)
    }
    return entries
  }).pipe(
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`writer: XAUTOCLAIM failed: ${error.message}`), [] as ReadonlyArray<BatchEntry>)
    )
  )

  const read = Stream.readNew(h, options.batchSize, options.blockMs).pipe(
    Effect.tapError((error) =>
      Effect.gen(function*() {
        yield* noteError(error.message)
        yield* Effect.logWarning(`writer: XREADGROUP failed (will retry): ${error.message}`)
        // the stream or the group is gone (first start with Redis down, key deleted): recreate
        if (error.message.includes("NOGROUP")) yield* Stream.ensureGroup(h).pipe(Effect.ignore)
      })
    ),
    Effect.retry({ schedule }),
    Effect.orDie // the schedule never ends
  )

  /** Idle entries to reclaim when due, else new entries (waiting up to blockMs). */
  const fetchEntries: Effect.Effect<ReadonlyArray<BatchEntry>> = Effect.gen(function*() {
    const at = yield* now
    if (at >= nextClaimAt) {
      const claimed = yield* claim
      if (claimed.length === 0 && claimCursor === "0-0") nextClaimAt = at + options.claimEveryMs
      if (claimed.length > 0) return claimed
    }
    return yield* read
  })

  /** The next batch, read and prepared; undefined when there was nothing to read. */
  const fetchWork: Effect.Effect<Work | undefined> = Effect.flatMap(fetchEntries, (entries) => {
    if (entries.length === 0) return Effect.succeed(undefined)
    for (const entry of entries) inFlight.add(entry.id)
    return Effect.map(prepare(entries), (batch) => {
      if (batch.viewScopes.size > 0) unsettledViewScopes.push(batch.viewScopes)
      return { entries, batch }
    })
  })

  const settle = (work: Work) =>
    Effect.sync(() => {
      for (const entry of work.entries) inFlight.delete(entry.id)
      const at = unsettledViewScopes.indexOf(work.batch.viewScopes)
      if (at !== -1) unsettledViewScopes.splice(at, 1)
    })

  const commitAndSettle = (work: Work) => commitWork(work).pipe(Effect.ensuring(settle(work)))

  const step: Effect.Effect<number> = Effect.flatMap(fetchWork, (work) =>
    work === undefined
      ? Effect.succeed(0)
      : commitAndSettle(work).pipe(Effect.andThen(awaitAcks), Effect.as(work.entries.length)))

  /**
   * Pipeline: while batches N and N+1 are in their transactions (one connection each, up to
   * `transactions` at once), batch N+2 is read and prepared (decode, enrich, rollups,
   * parameters). One transaction waiting for its COMMIT's WAL flush, or for a rollup row the
   * other holds, leaves the database and this process work to do on the next one. Overlapping
   * transactions are safe: every statement takes its row locks in one global order (tables in
   * statement order, rows sorted by conflict key — no deadlocks), a row inserted by both is
   * kept and counted by the one that commits first (the other waits on its key, then finds it
   * ON CONFLICT), and the WriteCache only learns what has committed. Acknowledgements follow
   * the commits, in commit order. When interrupted, the transactions in flight finish their
   * current attempt (uninterruptible) and a batch already read ahead is committed too (one
   * attempt) — whatever remains pending is released to the other writers by `leaveGroup`.
   */
  const pipeline = (stopWhenIdle: boolean): Effect.Effect<void> => {
    const depth = Math.max(1, Math.floor(options.transactions))
    let next: Fiber.Fiber<Work | undefined> | undefined
    /**
     * Batches in their transactions, oldest first. A fiber leaves the list only once it has
     * ended, so that a stop (or a defect) arriving while the loop waits for one still finds it.
     */
    const committing: Array<Fiber.Fiber<void>> = []
    const awaitOldest = Effect.suspend(() => Fiber.join(committing[0]!)).pipe(
      Effect.andThen(Effect.sync(() => committing.shift()))
    )
    const awaitCommits = Effect.suspend(() => Effect.forEach([...committing], (fiber) => Fiber.join(fiber), { discard: true })).pipe(
      Effect.andThen(Effect.sync(() => {
        committing.length = 0
      }))
    )
    // an interrupted commit still finishes its current attempt (it is uninterruptible)
    const stopCommits = Effect.suspend(() => Effect.forEach([...committing], (fiber) => Fiber.interrupt(fiber), { discard: true })).pipe(
      Effect.andThen(Effect.sync(() => {
        committing.length = 0
      }))
    )
    const handoff = Effect.gen(function*() {
      yield* stopCommits
      const fiber = next
      if (fiber === undefined) return
      yield* Fiber.interrupt(fiber)
      const exit = yield* Fiber.await(fiber)
      if (exit._tag !== "Success" || exit.value === undefined) return
      const work = exit.value
      yield* attemptOnce(work.batch, 1).pipe(
        Effect.provideContext(context),
        Effect.ensuring(settle(work)),
        Effect.catch((error) =>
          Effect.logWarning(`writer: read-ahead batch not written on shutdown (${firstLine(error.message)}); released`)
        )
      )
    }).pipe(Effect.ensuring(awaitAcks))
    return Effect.gen(function*() {
      let idle = 0
      next = yield* Effect.forkChild(fetchWork)
      while (true) {
        // a free transaction slot first: meanwhile the read-ahead batch stays in `next`, where
        // the shutdown handoff finds it
        if (committing.length >= depth) yield* awaitOldest
        const work = yield* Fiber.join(next)
        if (work === undefined) {
          yield* awaitCommits // nothing new: let the transactions in flight finish (or fail)
          if (stopWhenIdle) {
            if (++idle > 1) return yield* awaitAcks
            nextClaimAt = 0 // one more look, at idle entries too
          }
          next = yield* Effect.forkChild(fetchWork)
          continue
        }
        idle = 0
        next = yield* Effect.forkChild(fetchWork)
        committing.push(yield* Effect.forkChild(commitAndSettle(work)))
      }
    }).pipe(
      Effect.onExit((exit) => {
        if (exit._tag === "Success") return Effect.void
        if (Cause.hasInterruptsOnly(exit.cause)) return handoff
        // a defect: stop the read-ahead and the other transactions' retries; their entries stay
        // pending and are reclaimed later
        const fiber = next
        return stopCommits.pipe(
          Effect.andThen(fiber === undefined ? Effect.void : Fiber.interrupt(fiber)),
          Effect.andThen(Effect.sync(() => {
            inFlight.clear()
            unsettledViewScopes.length = 0
          }))
        )
      })
    )
  }

  const drain: Effect.Effect<void> = pipeline(true)

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
    drain,
    run,
    maintain,
    snapshot: Ref.get(stats),
    leaveGroup: awaitAcks.pipe(
      Effect.andThen(Stream.leaveGroup(h)),
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
    ).pipe(Layer.provide(Layer.mergeAll(Salts.layer, Domains.layer)), Layer.merge(SitePublisher.layer))

  /** Requires AppConfig, PrimaryRedis, SqlClient (migrated — see Sql.layer) and GeoLookup. */
  static readonly layer = Writer.layerWith()
}

/** Salts + Domains for running {@link makeWriter} directly (tests, benchmarks). */
export const WriterDependencies = Layer.mergeAll(Salts.layer, Domains.layer)

export type WriterRequirements = AppConfig | PrimaryRedis | SqlClient.SqlClient | GeoLookup | Salts | Domains | Scope.Scope

export { BatchWriteError }
