/**
 * The rows the PostgreSQL sink sends besides the events themselves, each list sorted by its
 * table's conflict key (concurrent writers take row locks in one global order — no deadlocks):
 * - one `session_fingerprints` row per session of the batch's views (first touch);
 * - the `visitor_seen` seen-set rows of the human views (one per hour / day bucket, domain and
 *   visitor), whose newly created ones count the unique visitors.
 * With a WriteCache, rows this writer knows would change nothing are left out.
 * (The visit rows are domain/Visits.ts `visitRows`: the same rows for every sink.)
 */
import type { PreparedEvent } from "../domain/Batch.ts"
import { compareStrings } from "../domain/Batch.ts"
import type { EnrichedView } from "../domain/Enrich.ts"
import type { Granularity } from "../domain/RollupAccumulators.ts"
import type { CountedSession } from "../domain/Rollups.ts"
import type { Scope } from "../domain/Tenant.ts"
import { dayStart, hourStart } from "../domain/Time.ts"
import type { WriteCache } from "./PgSinkCache.ts"
import { noNul } from "./PgSinkParams.ts"

export interface SessionRow {
  readonly sessionId: string
  first: PreparedEvent & { readonly row: EnrichedView }
  viewport: EnrichedView | undefined
  viewportAt: number
  userId: string | null
  userAt: number
  firstSeenMs: number
}

/** What the rollups count for a session row: its first view, that view's time and tenant. */
export const countedSession = (s: SessionRow): CountedSession => ({ firstSeenMs: s.firstSeenMs, scope: s.first.scope, view: s.first.row })

/**
 * One row per session from the views, sorted by session id: first-touch columns from the
 * earliest view, the viewport of the latest view that has one, the user id of the earliest
 * view that has one.
 */
export const sessionRows = (events: ReadonlyArray<PreparedEvent>, cache?: WriteCache): Array<SessionRow> => {
  const sessions = new Map<string, SessionRow>()
  for (const event of events) {
    if (!event.row.isView) continue
    const view = event.row
    const hasViewport = view.device.viewportWidth !== undefined || view.device.viewportHeight !== undefined
    const userId = view.userId !== null && view.userId.length > 0 ? view.userId : null
    const current = sessions.get(view.sessionId)
    if (current === undefined) {
      sessions.set(view.sessionId, {
        sessionId: noNul(view.sessionId),
        first: event as PreparedEvent & { readonly row: EnrichedView },
        viewport: hasViewport ? view : undefined,
        viewportAt: event.receivedAtMs,
        userId,
        userAt: event.receivedAtMs,
        firstSeenMs: event.receivedAtMs
      })
      continue
    }
    if (event.receivedAtMs < current.firstSeenMs) {
      current.first = event as PreparedEvent & { readonly row: EnrichedView }
      current.firstSeenMs = event.receivedAtMs
    }
    if (hasViewport && (current.viewport === undefined || event.receivedAtMs >= current.viewportAt)) {
      current.viewport = view
      current.viewportAt = event.receivedAtMs
    }
    if (userId !== null && (current.userId === null || event.receivedAtMs < current.userAt)) {
      current.userId = userId
      current.userAt = event.receivedAtMs
    }
  }
  // only the rows that can change something are sorted and sent
  const rows = cache === undefined ? [...sessions.values()] : cache.sessionsToWrite(sessions.values())
  return rows.sort((a, b) => compareStrings(a.sessionId, b.sessionId))
}

export interface SeenRow {
  readonly key: string
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly scope: Scope
  readonly vid: Uint8Array
}

/** The visitor id bytes as a map key (latin1: one char per byte); visitor ids are shared per visitor. */
const vidKeys = new WeakMap<Uint8Array, string>()
const vidKey = (vid: Uint8Array): string => {
  let key = vidKeys.get(vid)
  if (key === undefined) {
    key = Buffer.from(vid.buffer, vid.byteOffset, vid.byteLength).toString("latin1")
    vidKeys.set(vid, key)
  }
  return key
}

/**
 * Hour and day seen-set rows of the human views, one per (bucket, domain, visitor), sorted;
 * with a cache, without the rows this writer already stored.
 */
export const seenRows = (events: ReadonlyArray<PreparedEvent>, cache?: WriteCache): Array<SeenRow> => {
  const rows = new Map<string, SeenRow | null>()
  for (const event of events) {
    if (!event.row.isView || event.row.isBot) continue
    const vid = event.row.visitorIdDaily
    const hour = hourStart(event.receivedAtMs)
    const day = dayStart(event.receivedAtMs)
    const base = `${event.scope.domainId}|${vidKey(vid)}`
    const hourKey = `${hour}|h|${base}`
    const dayKey = `${day}|d|${base}`
    if (!rows.has(hourKey)) {
      rows.set(
        hourKey,
        cache?.isSeen(hourKey) ? null : { key: hourKey, bucketStart: hour, granularity: "hour", scope: event.scope, vid }
      )
    }
    if (!rows.has(dayKey)) {
      rows.set(
        dayKey,
        cache?.isSeen(dayKey) ? null : { key: dayKey, bucketStart: day, granularity: "day", scope: event.scope, vid }
      )
    }
  }
  const out: Array<SeenRow> = []
  for (const row of rows.values()) if (row !== null) out.push(row)
  return out.sort((a, b) => compareStrings(a.key, b.key))
}
