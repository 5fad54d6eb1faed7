/**
 * Test layer: an in-memory `Sink` (the same interface as PgSink.ts) with the same exactly-once
 * rules — an event key (eventId, receivedAt) is stored once; only newly stored events, newly
 * created sessions and newly seen visitors reach the rollups; poison entries are kept once per
 * (stream key, entry id) — and with failures a test can inject (transient or permanent), so
 * the writer loop's retry, split and acknowledgement can be driven without a database.
 * A write is atomic: a failing one changes nothing.
 */
import { Effect, Layer } from "effect"
import type { PoisonEntry, PreparedBatch, PreparedEvent, WriteResult } from "../domain/Batch.ts"
import type { EnrichedView } from "../domain/Enrich.ts"
import { DailyAccumulator, type Granularity, MetricAccumulator } from "../domain/RollupAccumulators.ts"
import { addSessions, addVisitors, type CountedSession, eventRollups, moveSessions, sessionRollupKey } from "../domain/Rollups.ts"
import { NO_SCOPE, type Scope } from "../domain/Tenant.ts"
import { dayStart, hourStart } from "../domain/Time.ts"
import {
  assignVisitorSessions,
  isServerSessionId,
  type KnownSession,
  latestSession,
  mergeVisit,
  needsEarlierSessions,
  type VisitorKey,
  type VisitRow,
  visitRows
} from "../domain/Visits.ts"
import { BatchWriteError, Sink, unplanned } from "./Sink.ts"

interface StoredSession {
  readonly firstSeenMs: number
  readonly scope: Scope
  /** the first touch is a bot */
  readonly isBot: boolean
  /** what the rollups counted for it (`sessionRollupKey`) */
  readonly rollupKey: string
}

/** What the memory sink holds; tests read it and queue failures on it. */
export class MemoryStore {
  /** stored events by `${eventId}|${receivedAtMs}` */
  readonly events = new Map<string, PreparedEvent>()
  /** sessions by id: first touch (earliest view), its tenant and whether it is a bot */
  readonly sessions = new Map<string, StoredSession>()
  /** the unique-visitor seen-set: `${bucketStart}|${granularity}|${domainId}|${visitor id hex}` */
  readonly seen = new Set<string>()
  /** visits by `${siteId}|${sessionId}` (domain/Visits.ts) */
  readonly visits = new Map<string, VisitRow>()
  /** server-side session assignment: each visitor's latest session, by `VisitorKey.key` */
  readonly visitorSessions = new Map<string, KnownSession>()
  /** poison by `${streamKey}|${entryId}` */
  readonly poison = new Map<string, PoisonEntry>()
  /** `metric|granularity|dimension|value` (value `∅` for null) → sum, over every scope */
  readonly metrics = new Map<string, number>()
  /** `daily_metrics` sums over every day and scope */
  readonly daily = { pageviews: 0, uniqueVisitors: 0, sessions: 0, events: 0, conversions: 0, conversionValue: 0, botEvents: 0 }
  /** successful writes */
  writes = 0
  private readonly failures: Array<{ readonly transient: boolean; readonly message: string }> = []
  private failWhen: ((batch: PreparedBatch) => string | undefined) | undefined

  /** The next `count` writes fail (nothing stored). */
  failNext(count: number, transient: boolean, message = "injected failure"): void {
    for (let i = 0; i < count; i++) this.failures.push({ transient, message })
  }

  /** Every write of a batch for which `reason` returns a message fails permanently with it. */
  refuse(reason: ((batch: PreparedBatch) => string | undefined) | undefined): void {
    this.failWhen = reason
  }

  /** @internal the failure of this write, if any */
  nextFailure(batch: PreparedBatch): BatchWriteError | undefined {
    const queued = this.failures.shift()
    if (queued !== undefined) return new BatchWriteError({ message: queued.message, transient: queued.transient, cause: queued.message })
    const refused = this.failWhen?.(batch)
    return refused === undefined ? undefined : new BatchWriteError({ message: refused, transient: false, cause: refused })
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

/** Assigns the sessions of events sent without one, as PgSinkSessions.ts does (same rule, same state). */
const assign = (store: MemoryStore, events: ReadonlyArray<PreparedEvent>): ReadonlyArray<PreparedEvent> => {
  if (!events.some((e) => e.assign !== undefined)) return events
  const fresh = new Map<string, { readonly key: VisitorKey; readonly events: Array<PreparedEvent> }>()
  for (const e of events) {
    if (e.assign === undefined || store.events.has(`${e.row.eventId}|${e.receivedAtMs}`)) continue
    const group = fresh.get(e.assign.key)
    if (group === undefined) fresh.set(e.assign.key, { key: e.assign, events: [e] })
    else group.events.push(e)
  }
  const assigned = new Map<PreparedEvent, string>()
  for (const { key, events: list } of fresh.values()) {
    const latest = store.visitorSessions.get(key.key)
    const sessions: Array<KnownSession> = latest === undefined ? [] : [{ ...latest }]
    if (list.some((e) => needsEarlierSessions(latest, e.receivedAtMs))) {
      for (const visit of store.visits.values()) {
        if (
          visit.siteId === key.siteKey && visit.visitorIdDaily !== null && Buffer.compare(visit.visitorIdDaily, key.vid) === 0 &&
          isServerSessionId(visit.sessionId) && !sessions.some((s) => s.sessionId === visit.sessionId)
        ) sessions.push({ sessionId: visit.sessionId, startedAt: visit.startedAt, lastSeenAt: visit.lastSeenAt })
      }
    }
    const ids = assignVisitorSessions(sessions, list.map((e) => ({ at: e.receivedAtMs, eventId: e.row.eventId })))
    list.forEach((e, i) => assigned.set(e, ids[i]!))
    store.visitorSessions.set(key.key, { ...latestSession(sessions)! })
  }
  return events.map((e) => e.assign === undefined ? e : { ...e, row: { ...e.row, sessionId: assigned.get(e) ?? "" } })
}

const write = (store: MemoryStore, sent: ReadonlyArray<PreparedEvent>, poison: ReadonlyArray<PoisonEntry>, streamKey: string) => {
  const events = assign(store, sent)
  // raw events: new keys only; a header-less event takes its session's stored tenant, an event
  // of a session not known when prepared its stored bot status
  const inserted: Array<PreparedEvent> = []
  for (const event of events) {
    const key = `${event.row.eventId}|${event.receivedAtMs}`
    if (store.events.has(key)) continue
    const session = store.sessions.get(event.row.sessionId)
    let stored = event
    if (event.resolveScope) stored = { ...stored, scope: session?.scope ?? NO_SCOPE }
    if (event.resolveBot && session?.isBot === true) stored = { ...stored, row: { ...stored.row, isBot: true } }
    store.events.set(key, stored)
    inserted.push(stored)
  }
  // sessions: created by this write's earliest view of each; an earlier view takes the first touch over
  const firstViews = new Map<string, PreparedEvent & { readonly row: EnrichedView }>()
  for (const event of inserted) {
    if (!event.row.isView) continue
    const current = firstViews.get(event.row.sessionId)
    if (current === undefined || event.receivedAtMs < current.receivedAtMs) {
      firstViews.set(event.row.sessionId, event as PreparedEvent & { readonly row: EnrichedView })
    }
  }
  const created: Array<CountedSession> = []
  const moved: Array<{ readonly from: string; readonly to: CountedSession }> = []
  for (const [sessionId, view] of firstViews) {
    const known = store.sessions.get(sessionId)
    const counted: CountedSession = { firstSeenMs: view.receivedAtMs, scope: view.scope, view: view.row }
    if (known === undefined) created.push(counted)
    else if (view.receivedAtMs < known.firstSeenMs) moved.push({ from: known.rollupKey, to: counted })
    if (known === undefined || view.receivedAtMs < known.firstSeenMs) {
      store.sessions.set(sessionId, {
        firstSeenMs: view.receivedAtMs,
        scope: view.scope,
        isBot: view.row.isBot,
        rollupKey: sessionRollupKey(counted)
      })
    }
  }
  // unique visitors: hour and day seen-set rows of human views
  const visitors: Array<{ readonly bucketStart: number; readonly granularity: Granularity; readonly scope: Scope }> = []
  for (const event of inserted) {
    if (!event.row.isView || event.row.isBot) continue
    for (const [bucketStart, granularity] of [[hourStart(event.receivedAtMs), "hour"], [dayStart(event.receivedAtMs), "day"]] as const) {
      const key = `${bucketStart}|${granularity}|${event.scope.domainId}|${hex(event.row.visitorIdDaily)}`
      if (store.seen.has(key)) continue
      store.seen.add(key)
      visitors.push({ bucketStart, granularity, scope: event.scope })
    }
  }
  // visits of what is new, merged into the stored ones
  for (const visit of visitRows(inserted)) {
    const key = `${visit.siteId}|${visit.sessionId}`
    const stored = store.visits.get(key)
    if (stored === undefined) store.visits.set(key, visit)
    else mergeVisit(stored, visit)
  }
  // rollups of what is new
  const { daily: eventDaily, metrics: eventMetrics } = eventRollups(inserted)
  const extra = new MetricAccumulator()
  const daily = new DailyAccumulator()
  for (const row of eventDaily) daily.addRow(row)
  addSessions(extra, daily, created)
  moveSessions(extra, daily, moved)
  addVisitors(extra, daily, visitors)
  for (const row of [...eventMetrics, ...extra.rows()]) {
    const key = `${row.metric}|${row.granularity}|${row.dimension}|${row.dimensionValue ?? "∅"}`
    store.metrics.set(key, (store.metrics.get(key) ?? 0) + row.value)
  }
  for (const row of daily.rows()) {
    for (const field of Object.keys(store.daily) as Array<keyof MemoryStore["daily"]>) store.daily[field] += row[field]
  }
  for (const entry of poison) {
    const key = `${streamKey}|${entry.entryId}`
    if (!store.poison.has(key)) store.poison.set(key, entry)
  }
  store.writes++
  return {
    inserted: inserted.length,
    duplicates: events.length - inserted.length,
    poison: poison.length,
    newSessions: created.filter((s) => !s.view.isBot).length,
    newVisitors: visitors.filter((v) => v.granularity === "day").length
  }
}

/** The memory sink on `store` (a fresh one by default). */
export const layer = (store: MemoryStore = new MemoryStore()): Layer.Layer<Sink> =>
  Layer.succeed(
    Sink,
    Sink.of({
      name: "memory",
      stage: unplanned,
      write: ({ batch }) =>
        Effect.suspend(() => {
          const failure = store.nextFailure(batch)
          if (failure !== undefined) return Effect.fail(failure)
          const result = write(store, batch.events, batch.poison, batch.streamKey)
          return Effect.succeed<WriteResult>({ ...result, duplicates: result.duplicates + batch.inBatchDuplicates })
        }),
      ready: () => Effect.void,
      maintain: () => Effect.void
    })
  )
