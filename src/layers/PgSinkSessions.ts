/**
 * Server-side session assignment inside the PostgreSQL sink's transaction (domain/Visits.ts
 * for the rule, docs/visits.md): for a batch with events sent without a sessionId,
 *   1. lock their visitor keys (advisory transaction locks, hashes sorted: one global order,
 *      taken before any row lock of the batch);
 *   2. read each visitor's latest session (`visitor_sessions`) and which of the events are
 *      stored already — a redelivered event keeps the session it was stored with and takes
 *      no part in the assignment (it is not inserted again, so it changes nothing);
 *   3. for visitors with an event older than their latest session, their earlier
 *      server-assigned sessions (`visits`);
 *   4. assign, and store each visitor's new latest session.
 * Under the lock no other transaction assigns or stores an event of these visitors, so what
 * step 2 reads stays true until COMMIT: the same stored state always gives the same sessions.
 */
import { PgTypes } from "@effect/sql-pg"
import { Effect } from "effect"
import type { PreparedEvent } from "../domain/Batch.ts"
import { compareStrings } from "../domain/Batch.ts"
import {
  assignVisitorSessions,
  hexOf,
  type KnownSession,
  latestSession,
  needsEarlierSessions,
  type VisitorKey
} from "../domain/Visits.ts"
import { byteaArray, int4Array, type Params, textArray, tsArray, uuidArray } from "./PgSinkParams.ts"
import * as Statements from "./PgSinkStatements.ts"
import type { BatchWriteError } from "./Sink.ts"

type Run = <A extends object>(statement: string, params: () => Params) => Effect.Effect<ReadonlyArray<A>, BatchWriteError>

/** 32-bit FNV-1a of the key: the advisory lock's second key (collisions only lock more). */
export const visitorLockHash = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h | 0
}

interface SessionRowOut {
  readonly site_id: number
  readonly visitor_id_daily: Uint8Array
  readonly session_id: string
  readonly started_at: Date
  readonly last_seen_at: Date
}

const keyOfRow = (r: SessionRowOut) => `${r.site_id}|${hexOf(r.visitor_id_daily)}`

/** The events with their sessions assigned (same order); a no-op for a batch without such events. */
export const assignSessions = Effect.fnUntraced(function*(
  run: Run,
  events: ReadonlyArray<PreparedEvent>,
  /** runs once the visitors are locked (the sink lets its next write take its locks) */
  locked: Effect.Effect<void> = Effect.void
) {
  const keys = new Map<string, VisitorKey>()
  for (const e of events) if (e.assign !== undefined) keys.set(e.assign.key, e.assign)
  if (keys.size === 0) return events
  const sortedKeys = [...keys.values()].sort((a, b) => a.siteKey - b.siteKey || compareStrings(a.key, b.key))

  // 1. the visitors' locks, in ascending hash order
  const hashes = [...new Set(sortedKeys.map((k) => visitorLockHash(k.key)))].sort((a, b) => a - b)
  yield* run(Statements.LOCK_VISITORS, () => [int4Array(hashes)])
  yield* locked

  // 2. their latest sessions, and which events are stored already
  const keyParams = () => [int4Array(sortedKeys.map((k) => k.siteKey)), byteaArray(sortedKeys.map((k) => k.vid))]
  const latest = yield* run<SessionRowOut>(Statements.SELECT_VISITOR_SESSIONS, keyParams)
  const pending = events.filter((e) => e.assign !== undefined)
  const storedRows = yield* run<{ readonly id: string; readonly received_at: Date }>(
    Statements.SELECT_STORED_EVENTS,
    () => {
      let least = Infinity
      let greatest = -Infinity
      for (const e of pending) {
        least = Math.min(least, e.receivedAtMs)
        greatest = Math.max(greatest, e.receivedAtMs)
      }
      return [
        uuidArray(pending.map((e) => e.row.eventId)),
        tsArray(pending.map((e) => e.receivedAtMs)),
        PgTypes.timestamptz(least),
        PgTypes.timestamptz(greatest)
      ]
    }
  )
  // (none in the common case, a first delivery: then no key per event is built)
  const stored = new Set(storedRows.map((r) => `${r.id}|${r.received_at.getTime()}`))

  const known = new Map<string, Array<KnownSession>>()
  /** each visitor's latest session as stored (compared field by field after the assignment) */
  const before = new Map<string, KnownSession>()
  for (const r of latest) {
    const key = keyOfRow(r)
    const startedAt = r.started_at.getTime()
    const lastSeenAt = r.last_seen_at.getTime()
    known.set(key, [{ sessionId: r.session_id, startedAt, lastSeenAt }])
    before.set(key, { sessionId: r.session_id, startedAt, lastSeenAt })
  }
  const fresh = new Map<string, Array<PreparedEvent>>()
  for (const e of pending) {
    if (stored.size > 0 && stored.has(`${e.row.eventId.toLowerCase()}|${e.receivedAtMs}`)) continue
    const list = fresh.get(e.assign!.key)
    if (list === undefined) fresh.set(e.assign!.key, [e])
    else list.push(e)
  }

  // 3. earlier sessions of visitors with an event older than their latest session
  const older = sortedKeys.filter((k) => {
    const sessions = known.get(k.key)
    return sessions !== undefined && fresh.get(k.key)?.some((e) => needsEarlierSessions(sessions[0], e.receivedAtMs)) === true
  })
  if (older.length > 0) {
    const earlier = yield* run<SessionRowOut>(
      Statements.SELECT_EARLIER_SESSIONS,
      () => [int4Array(older.map((k) => k.siteKey)), byteaArray(older.map((k) => k.vid))]
    )
    for (const r of earlier) {
      const sessions = known.get(keyOfRow(r))!
      if (sessions.some((s) => s.sessionId === r.session_id)) continue
      sessions.push({ sessionId: r.session_id, startedAt: r.started_at.getTime(), lastSeenAt: r.last_seen_at.getTime() })
    }
  }

  // 4. assign, then store each visitor's latest session where it changed
  const assigned = new Map<PreparedEvent, string>()
  const upserts: Array<{ readonly key: VisitorKey; readonly session: KnownSession }> = []
  for (const k of sortedKeys) {
    const list = fresh.get(k.key)
    if (list === undefined) continue
    let sessions = known.get(k.key)
    if (sessions === undefined) known.set(k.key, sessions = [])
    const ids = assignVisitorSessions(sessions, list.map((e) => ({ at: e.receivedAtMs, eventId: e.row.eventId })))
    list.forEach((e, i) => assigned.set(e, ids[i]!))
    const now = latestSession(sessions)!
    const was = before.get(k.key)
    if (was === undefined || was.sessionId !== now.sessionId || was.startedAt !== now.startedAt || was.lastSeenAt !== now.lastSeenAt) {
      upserts.push({ key: k, session: now })
    }
  }
  if (upserts.length > 0) {
    yield* run(Statements.UPSERT_VISITOR_SESSIONS, () => [
      int4Array(upserts.map((u) => u.key.siteKey)),
      byteaArray(upserts.map((u) => u.key.vid)),
      textArray(upserts.map((u) => u.session.sessionId)),
      tsArray(upserts.map((u) => u.session.startedAt)),
      tsArray(upserts.map((u) => u.session.lastSeenAt))
    ])
  }
  // a stored (redelivered) event is not inserted: the session id it is sent with is unused
  return events.map((e) => {
    if (e.assign === undefined) return e
    const sessionId = assigned.get(e) ?? ""
    return { ...e, row: { ...e.row, sessionId } }
  })
})
