/**
 * The PostgreSQL sink (the `Sink` of production; docs/architecture.md, writer transaction): ONE
 * transaction per batch that
 *   1. inserts every event into `raw_events` with a single `unnest` statement,
 *      `ON CONFLICT DO NOTHING RETURNING id, received_at`;
 *   2. upserts `session_fingerprints` for the views that were actually inserted (first touch;
 *      later views only update the viewport and fill an empty user_id);
 *   3. inserts the daily / hourly unique-visitor seen-set rows of those views;
 *   4. upserts the `visits` rows of the inserted events (domain/Visits.ts: commutative merges),
 *      then their contents (`visit_items` and its rollups, domain/VisitItems.ts: the item rows
 *      computed here from the events, the visits' hours as the first statement returned them);
 *   5. adds ONLY the inserted rows, new sessions and new seen-set rows to `aggregated_metrics`
 *      and `daily_metrics` (one upsert each, `value = value + excluded.value`);
 *   6. records poison entries in `ingest_failures`.
 * Before 1., a batch with events sent without a sessionId has their sessions assigned under
 * visitor locks (PgSinkSessions.ts); its session-dependent parameters are then computed in the
 * transaction instead of in `stage`.
 * A redelivered / drained / replayed envelope therefore changes nothing, and a failure at any
 * point leaves nothing of the batch behind. The statements and their parameters are
 * PgSinkStatements.ts; the session and seen-set rows PgSinkRows.ts.
 *
 * `stage` computes the statements' parameters ahead (outside the transaction, while earlier
 * batches are being written), assuming every event is new — the common case; the transaction
 * only recomputes for the inserted subset when some rows already existed.
 *
 * Tenant and bot status of non-view events whose session was not known when the batch was
 * prepared (`resolveScope`, `resolveBot`): the insert itself takes them from the session's
 * stored fingerprint, and the rollups use what it returned.
 *
 * Adding a table to the transaction (as visits did): its rows (sorted by conflict key) come from
 * the batch, its parameters are computed in `makePlan` for the all-new case and recomputed from
 * `inserted` otherwise, its statement runs at its place in the order of `STATEMENTS`, and
 * whatever it creates feeds the rollups through `extra` / `daily` below.
 *
 * Failures: SQL errors are classified by SQLSTATE (Sql.ts) into transient (retry the batch)
 * and permanent; a transaction whose connection died fails its ROLLBACK too, which effect
 * reports as a defect — `recoverFailedRollback` turns that back into a transient failure.
 */
import { Cause, Deferred, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import type { PreparedBatch, PreparedEvent, WriteResult } from "../domain/Batch.ts"
import { DailyAccumulator, type DailyRow, type Granularity, MetricAccumulator, type MetricRow } from "../domain/RollupAccumulators.ts"
import { addSessions, addVisitors, type CountedSession, eventRollups, moveSessions } from "../domain/Rollups.ts"
import { NO_SCOPE, type Scope } from "../domain/Tenant.ts"
import { visitItemRows } from "../domain/VisitItems.ts"
import { visitRollupDeltas } from "../domain/VisitRollups.ts"
import { type VisitRow, visitRows } from "../domain/Visits.ts"
import { ensurePartitionsAround, maintainPartitions } from "./Partitions.ts"
import { WriteCache } from "./PgSinkCache.ts"
import { type Params, type ParamsOrError, tryParams } from "./PgSinkParams.ts"
import { countedSession, type SeenRow, seenRows, type SessionRow, sessionRows } from "./PgSinkRows.ts"
import { assignSessions } from "./PgSinkSessions.ts"
import * as Statements from "./PgSinkStatements.ts"
import { BatchWriteError, Sink, type StagedBatch } from "./Sink.ts"
import { describeSqlError, isTransientSqlError } from "./Sql.ts"

const fromSqlError = (error: SqlError) =>
  new BatchWriteError({ message: describeSqlError(error), transient: isTransientSqlError(error), cause: error })

// ---------------------------------------------------------------------------------------------
// the plan: everything computable before knowing which rows are new

/** The parts that depend on session ids (known ahead unless the sink assigns sessions). */
export interface SessionPlan {
  readonly raw: ParamsOrError
  readonly sessions: ReadonlyArray<SessionRow>
  readonly fingerprints: ParamsOrError
  readonly visits: ReadonlyArray<VisitRow>
  readonly visitParams: ParamsOrError
  /** the item rows' part of the contents statement's parameters */
  readonly itemParams: ParamsOrError
}

export interface BatchPlan {
  /** undefined when the batch has events without a sessionId (assigned in the transaction) */
  readonly bySession: SessionPlan | undefined
  readonly seen: ReadonlyArray<SeenRow>
  readonly seenParams: ParamsOrError
}

const sessionPlan = Effect.fnUntraced(function*(events: ReadonlyArray<PreparedEvent>, cache: WriteCache | undefined) {
  const raw = tryParams(() => Statements.rawParams(events))
  yield* Effect.yieldNow
  const sessions = sessionRows(events, cache)
  const fingerprints = tryParams(() => Statements.fingerprintParams(sessions))
  yield* Effect.yieldNow
  const visits = visitRows(events)
  const items = visitItemRows(events)
  const visitParams = tryParams(() => Statements.visitParams(visits, items, cache && ((row) => cache.entryChanges(row))))
  const itemParams = tryParams(() => Statements.itemParams(items))
  yield* Effect.yieldNow
  return { raw, sessions, fingerprints, visits, visitParams, itemParams } satisfies SessionPlan
})

/** Computed in slices, yielding to the event loop between them (the previous batch's transaction runs meanwhile). */
export const makePlan = Effect.fnUntraced(function*(batch: PreparedBatch, cache: WriteCache | undefined) {
  const events = batch.events
  if (events.length === 0) return undefined
  const bySession = events.some((e) => e.assign !== undefined) ? undefined : yield* sessionPlan(events, cache)
  const seen = seenRows(events, cache)
  const seenParams = tryParams(() => Statements.seenParams(seen))
  yield* Effect.yieldNow
  return { bySession, seen, seenParams } satisfies BatchPlan
})

// ---------------------------------------------------------------------------------------------
// the transaction

/** Test seams of {@link layerTest}: they run inside the real sink, around its transaction. */
export interface PgSinkTestHooks {
  /** Inside the transaction, after every statement, before COMMIT (tests inject failures and pauses). */
  readonly beforeCommit?: (
    batch: { readonly entryIds: ReadonlyArray<string>; readonly events: number; readonly attempt: number }
  ) => Effect.Effect<void, SqlError>
  /**
   * After COMMIT, before the write returns (tests inject a crash here, e.g. `Effect.interrupt`,
   * which ends the writer fiber with the batch committed but its entries pending).
   */
  readonly afterCommit?: (batch: { readonly entryIds: ReadonlyArray<string> }) => Effect.Effect<void>
  /**
   * Inside the transaction of a batch with events without a sessionId, before it locks their
   * visitors (tests delay one batch to check that batches in flight still assign in order).
   */
  readonly beforeVisitorLocks?: (batch: { readonly entryIds: ReadonlyArray<string> }) => Effect.Effect<void>
}

/** Writes a staged batch in one transaction; returns the result and the rows the cache may learn. */
const transaction = (
  sql: SqlClient.SqlClient,
  cache: WriteCache,
  staged: StagedBatch,
  beforeCommit: Effect.Effect<void, SqlError> | undefined,
  locked: Effect.Effect<void>,
  beforeLocks: Effect.Effect<void>
) => {
  const batch = staged.batch
  const plan = staged.plan as BatchPlan | undefined
  const run = <A extends object>(statement: string, params: ParamsOrError | (() => Params)) =>
    Effect.suspend(() => {
      const resolved = typeof params === "function" ? tryParams(params) : params
      if ("error" in resolved) {
        return Effect.fail(
          new BatchWriteError({ message: `cannot encode parameters: ${resolved.error}`, transient: false, cause: resolved.error })
        )
      }
      return sql.unsafe<A>(statement, resolved.params).pipe(Effect.mapError(fromSqlError))
    })

  const body = Effect.gen(function*() {
    let events = batch.events
    let inserted: ReadonlyArray<PreparedEvent> = []
    let allNew = false
    let newSessions: Array<SessionRow> = []
    /** sessions whose first touch an earlier view of this batch took over: their count moves */
    const movedSessions: Array<{ readonly from: string; readonly to: CountedSession }> = []
    let newVisitors: Array<{ bucketStart: number; granularity: Granularity; scope: Scope }> = []
    let eventMetrics: ReadonlyArray<MetricRow> = []
    let eventDaily: ReadonlyArray<DailyRow> = []
    let sentSessions: ReadonlyArray<SessionRow> = []
    let sentSeen: ReadonlyArray<SeenRow> = []
    let sentVisits: ReadonlyArray<VisitRow> = []

    if (plan !== undefined) {
      // 0. sessions of the events sent without one (PgSinkSessions.ts)
      let bySession = plan.bySession
      if (bySession === undefined) {
        yield* beforeLocks
        events = yield* assignSessions(run, events, locked)
        bySession = yield* sessionPlan(events, cache)
      }
      // 1. raw_events
      const returned = yield* run<
        {
          readonly id: string
          readonly received_at: Date
          readonly corp_id: number | null
          readonly domain_id: number | null
          readonly is_bot: boolean
        }
      >(Statements.INSERT_RAW_EVENTS, bySession.raw)
      allNew = returned.length === events.length
      // resolveBot events come back as bots when their session's first touch is one (only ever
      // false → true): when every row is new, equal counts mean none did
      let botsCompleted = false
      if (allNew && events.some((e) => e.resolveBot)) {
        let returnedBots = 0
        for (const r of returned) if (r.is_bot) returnedBots++
        let preparedBots = 0
        for (const e of events) if (e.row.isBot) preparedBots++
        botsCompleted = returnedBots !== preparedBots
      }
      if (allNew && !botsCompleted && !events.some((e) => e.resolveScope)) {
        // the common case: every row is new and scoped — no need to match the returned rows
        inserted = events
      } else {
        const stored = new Map<string, { readonly scope: Scope | undefined; readonly isBot: boolean }>()
        for (const r of returned) {
          stored.set(`${r.id}|${r.received_at.getTime()}`, {
            scope: r.domain_id !== null || r.corp_id !== null ? { corpId: r.corp_id, domainId: r.domain_id } : undefined,
            isBot: r.is_bot
          })
        }
        const kept: Array<PreparedEvent> = []
        for (const e of events) {
          const row = stored.get(`${e.row.eventId}|${e.receivedAtMs}`)
          if (row === undefined) continue
          let event = e
          if (e.resolveScope) event = { ...event, scope: row.scope ?? NO_SCOPE }
          if (e.resolveBot && row.isBot) event = { ...event, row: { ...event.row, isBot: true } }
          kept.push(event)
        }
        inserted = kept
      }

      // 2. session fingerprints of the inserted views
      const sessions = allNew ? bySession.sessions : sessionRows(inserted, cache)
      sentSessions = sessions
      if (sessions.length > 0) {
        const returnedSessions = yield* run<
          { readonly session_id: string; readonly inserted: boolean; readonly prev_rollup_key: string | null }
        >(
          Statements.UPSERT_FINGERPRINTS,
          allNew ? bySession.fingerprints : () => Statements.fingerprintParams(sessions)
        )
        const created = new Set<string>()
        const takenOver = new Map<string, string>()
        for (const r of returnedSessions) {
          if (r.inserted) created.add(r.session_id)
          else if (r.prev_rollup_key !== null) takenOver.set(r.session_id, r.prev_rollup_key)
        }
        newSessions = sessions.filter((s) => created.has(s.sessionId))
        if (takenOver.size > 0) {
          for (const s of sessions) {
            const from = takenOver.get(s.sessionId)
            if (from !== undefined) movedSessions.push({ from, to: countedSession(s) })
          }
        }
      }

      // 3. unique-visitor seen-set of the inserted human views
      const seen = allNew ? plan.seen : seenRows(inserted, cache)
      sentSeen = seen
      if (seen.length > 0) {
        const returnedSeen = yield* run<
          {
            readonly bucket_start: Date
            readonly granularity: Granularity
            readonly domain_id: number | null
            readonly corp_id: number | null
          }
        >(Statements.INSERT_SEEN, allNew ? plan.seenParams : () => Statements.seenParams(seen))
        newVisitors = returnedSeen.map((r) => ({
          bucketStart: r.bucket_start.getTime(),
          granularity: r.granularity,
          scope: { corpId: r.corp_id, domainId: r.domain_id }
        }))
      }

      // 4. visits of the inserted events (domain/Visits.ts): scopes and bots as stored
      const exact = allNew && !botsCompleted && !events.some((e) => e.resolveScope)
      const visits = exact ? bySession.visits : visitRows(inserted)
      sentVisits = visits
      if (visits.length > 0) {
        const items = exact ? undefined : visitItemRows(inserted)
        const upserted = yield* run<Statements.UpsertedVisit>(
          Statements.UPSERT_VISITS,
          items === undefined ? bySession.visitParams : () => Statements.visitParams(visits, items, (row) => cache.entryChanges(row))
        )
        // 4a. the visit rollups' changes, computed here from what the statement returned
        const rollups = visitRollupDeltas(upserted)
        if (rollups.length > 0) yield* run(Statements.UPSERT_VISIT_ROLLUPS, () => Statements.visitRollupParams(rollups))
        // 4b. their contents (domain/VisitItems.ts): item rows computed here, the visits' hours as just
        // stored (the stored items of a visit whose start moved to another hour first move with it)
        const moved = Statements.movedVisitHours(upserted)
        if (moved.length > 0) yield* run(Statements.MOVE_VISIT_ITEMS_HOUR, () => Statements.movedHoursParams(moved))
        const itemParams = items === undefined ? bySession.itemParams : tryParams(() => Statements.itemParams(items))
        yield* run(
          Statements.UPSERT_VISIT_ITEMS,
          "error" in itemParams ? itemParams : () => [...Statements.visitHoursParams(upserted), ...itemParams.params]
        )
      }

      // 5. rollups of the inserted events (computed ahead when all are new, scoped and no bot
      // was completed from a stored session)
      const hasResolved = inserted.some((e) => e.resolveScope)
      if (allNew && !hasResolved && !botsCompleted && batch.rollups !== undefined) {
        eventMetrics = batch.rollups.metrics
        eventDaily = batch.rollups.daily
      } else {
        const rollups = eventRollups(inserted)
        eventMetrics = rollups.metrics
        eventDaily = rollups.daily
      }
    }

    // sessions and unique visitors (metric names disjoint from the event metrics, so the
    // two row sets never share a key and their concatenation keeps a global lock order)
    const extra = new MetricAccumulator()
    const daily = new DailyAccumulator()
    for (const row of eventDaily) daily.addRow(row)
    addSessions(extra, daily, newSessions.map(countedSession))
    moveSessions(extra, daily, movedSessions)
    addVisitors(extra, daily, newVisitors)
    const extraRows = extra.rows()
    if (eventMetrics.length > 0 || extraRows.length > 0) {
      yield* run(
        Statements.UPSERT_METRICS,
        () => Statements.metricParams(extraRows.length === 0 ? eventMetrics : [...eventMetrics, ...extraRows])
      )
    }
    if (daily.size > 0) yield* run(Statements.UPSERT_DAILY, () => Statements.dailyParams(daily.rows()))

    // 6. poison entries, kept with their raw payload
    if (batch.poison.length > 0) {
      yield* run(Statements.INSERT_FAILURES, () => Statements.failureParams(batch.streamKey, batch.poison))
    }

    if (beforeCommit !== undefined) yield* Effect.mapError(beforeCommit, fromSqlError)

    return [{
      inserted: inserted.length,
      duplicates: events.length - inserted.length + batch.inBatchDuplicates,
      poison: batch.poison.length,
      newSessions: newSessions.filter((s) => !s.first.row.isBot).length,
      newVisitors: newVisitors.filter((v) => v.granularity === "day").length
    } satisfies WriteResult, sentSessions, sentSeen, sentVisits] as const
  })

  return Effect.gen(function*() {
    const [result, sessions, seen, visits] = yield* sql.withTransaction(body).pipe(
      Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError(error)))
    )
    cache.committed(sessions, seen)
    cache.committedVisits(visits)
    return result
  })
}

/**
 * A transaction whose connection died (PostgreSQL shut down or crashed, backend terminated,
 * network cut) fails its ROLLBACK too, and effect's `withTransaction` reports that as a defect
 * (`Effect.orDie(rollback)`): the cause holds only Dies of SQL errors / of the batch's own error.
 * Nothing was committed that a retry would store twice (the statements are idempotent: rows
 * ON CONFLICT DO NOTHING, rollups only for rows the retry itself inserts), so this is a
 * transient failure of the batch, retried in place like a lost connection before ROLLBACK —
 * not a defect that restarts the writer loop and leaves the entries to be reclaimed (and
 * counted as a delivery) later. Any other defect (a bug) stays a defect.
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

// ---------------------------------------------------------------------------------------------
// the layer

const make = (hooks: PgSinkTestHooks) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    /** what this sink (this writer) knows is stored: its own cache, updated after each COMMIT */
    const cache = new WriteCache()
    /** attempts per staged batch (the writer retries with the same object): for the test hooks */
    const attempts = new WeakMap<StagedBatch, number>()
    const storeError = (what: string) => (error: SqlError) =>
      new BatchWriteError({ message: `${what}: ${describeSqlError(error)}`, transient: isTransientSqlError(error), cause: error })

    /**
     * Server-side session assignment in this writer's stream order: a write with events
     * without a sessionId takes its visitor locks only after the previous such write (in the
     * order the loop started them) has taken its own, so batches in flight assign in the order
     * they were read, as a one-at-a-time writer does (docs/visits.md). Released on any end.
     */
    let lockTurn: Deferred.Deferred<void> | undefined
    const inTurn = (staged: StagedBatch, write: (locked: Effect.Effect<void>) => Effect.Effect<WriteResult, BatchWriteError>) =>
      Effect.suspend(() => {
        if (!staged.batch.events.some((e) => e.assign !== undefined)) return write(Effect.void)
        const previous = lockTurn
        const mine = Deferred.makeUnsafe<void>()
        lockTurn = mine
        const release = Deferred.succeed(mine, undefined).pipe(Effect.asVoid)
        return (previous === undefined ? Effect.void : Deferred.await(previous)).pipe(
          Effect.andThen(write(release)),
          Effect.ensuring(release)
        )
      })

    const write = (staged: StagedBatch): Effect.Effect<WriteResult, BatchWriteError> => {
      let beforeCommit: Effect.Effect<void, SqlError> | undefined
      if (hooks.beforeCommit !== undefined) {
        const attempt = (attempts.get(staged) ?? 0) + 1
        attempts.set(staged, attempt)
        beforeCommit = hooks.beforeCommit({ entryIds: staged.batch.entryIds, events: staged.batch.events.length, attempt })
      }
      const beforeLocks = hooks.beforeVisitorLocks?.({ entryIds: staged.batch.entryIds }) ?? Effect.void
      const written = inTurn(
        staged,
        (locked) => recoverFailedRollback(transaction(sql, cache, staged, beforeCommit, locked, beforeLocks))
      )
      const afterCommit = hooks.afterCommit
      return afterCommit === undefined
        ? written
        : Effect.tap(written, () => afterCommit({ entryIds: staged.batch.entryIds }))
    }

    return Sink.of({
      name: "postgres",
      stage: (batch) => Effect.map(makePlan(batch, cache), (plan) => ({ batch, plan })),
      write,
      ready: (nowMs) =>
        ensurePartitionsAround(nowMs, 7).pipe(
          Effect.asVoid,
          Effect.mapError(storeError("could not create partitions (rows go to DEFAULT)")),
          Effect.provideService(SqlClient.SqlClient, sql)
        ),
      maintain: (options) =>
        maintainPartitions(options).pipe(
          Effect.asVoid,
          Effect.mapError(storeError("partition maintenance failed")),
          Effect.provideService(SqlClient.SqlClient, sql)
        )
    })
  })

/** The PostgreSQL sink on the `SqlClient` (migrated: Sql.ts). One per writer: it owns its WriteCache. */
export const layer: Layer.Layer<Sink, never, SqlClient.SqlClient> = Layer.effect(Sink, make({}))

/** The same sink with test hooks around its transaction (see {@link PgSinkTestHooks}). */
export const layerTest = (hooks: PgSinkTestHooks): Layer.Layer<Sink, never, SqlClient.SqlClient> => Layer.effect(Sink, make(hooks))
