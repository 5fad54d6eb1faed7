/**
 * What the PostgreSQL sink knows is already stored (owned by one PgSink instance, i.e. one
 * writer), so a batch does not send rows the database would ignore anyway.
 */
import { compareEntry, type VisitRow } from "../domain/Visits.ts"
import { finite } from "./PgSinkParams.ts"
import type { SeenRow, SessionRow } from "./PgSinkRows.ts"

/** What orders visit entries (domain/Visits.ts `compareEntry`). */
interface EntryKey {
  readonly at: number
  readonly page: string | null
  readonly eventId: string
}

interface KnownSession {
  firstSeenMs: number
  viewportWidth: number | null
  viewportHeight: number | null
  viewportAt: number
  hasUser: boolean
}

const viewportOf = (row: SessionRow) => {
  const device = row.viewport?.device
  return {
    width: device === undefined ? null : finite(device.viewportWidth),
    height: device === undefined ? null : finite(device.viewportHeight)
  }
}

/**
 * Sessions and seen-set rows this writer has committed, so that a batch does not send rows
 * the database would ignore anyway: a later view of a known session that changes nothing
 * (not earlier, same viewport, user already set) and a visitor already counted for a bucket.
 * Only ever skips rows that would be no-ops given what this writer committed; rows written by
 * other writers are unknown here and simply sent (the statements' conflict rules decide).
 * One imprecision with several writers: a viewport set by another writer from a view later
 * than ours may be kept when a still later view repeats the viewport we stored. Bounded; the
 * maps are cleared when full.
 */
export class WriteCache {
  private readonly sessions = new Map<string, KnownSession>()
  private readonly seen = new Set<string>()
  /** visits: the entry this writer stored (its order key only, not the view), by `${siteId}|${sessionId}` */
  private readonly entries = new Map<string, EntryKey>()
  private readonly maxSessions: number
  private readonly maxSeen: number

  constructor(options: { readonly maxSessions?: number; readonly maxSeen?: number } = {}) {
    this.maxSessions = options.maxSessions ?? 200_000
    this.maxSeen = options.maxSeen ?? 400_000
  }

  /** The session rows that could change the stored fingerprint (or create it). */
  sessionsToWrite(rows: Iterable<SessionRow>): Array<SessionRow> {
    if (this.sessions.size === 0) return [...rows]
    const out: Array<SessionRow> = []
    for (const row of rows) {
      const known = this.sessions.get(row.sessionId)
      if (known === undefined || this.changes(row, known)) out.push(row)
    }
    return out
  }

  private changes(row: SessionRow, known: KnownSession): boolean {
    if (row.firstSeenMs < known.firstSeenMs) return true
    if (row.userId !== null && !known.hasUser) return true
    if (row.viewport === undefined || row.viewportAt < known.viewportAt) return false
    const { height, width } = viewportOf(row)
    return width !== known.viewportWidth || height !== known.viewportHeight
  }

  /**
   * Whether a visit row's entry (and so its first touch) can change the stored one: not when
   * this writer stored an entry at least as early. A stored entry only ever gets earlier, so
   * whatever other writers stored since is earlier still.
   */
  entryChanges(row: VisitRow): boolean {
    if (row.entry === undefined) return false
    const known = this.entries.get(`${row.siteId}|${row.sessionId}`)
    return known === undefined || compareEntry(row.entry, known) < 0
  }

  /** After COMMIT: the visits' entries now stored. */
  committedVisits(visits: ReadonlyArray<VisitRow>): void {
    if (this.entries.size + visits.length > this.maxSessions) this.entries.clear()
    for (const row of visits) {
      if (row.entry === undefined) continue
      const key = `${row.siteId}|${row.sessionId}`
      const known = this.entries.get(key)
      if (known === undefined || compareEntry(row.entry, known) < 0) {
        this.entries.set(key, { at: row.entry.at, page: row.entry.page, eventId: row.entry.eventId })
      }
    }
  }

  /** Is this seen-set row (by key) one this writer has stored? */
  isSeen(key: string): boolean {
    return this.seen.has(key)
  }

  /** After COMMIT: the state the database now holds for these rows. */
  committed(sessions: ReadonlyArray<SessionRow>, seen: ReadonlyArray<SeenRow>): void {
    if (this.sessions.size + sessions.length > this.maxSessions) this.sessions.clear()
    for (const row of sessions) {
      const { height, width } = viewportOf(row)
      const known = this.sessions.get(row.sessionId)
      if (known === undefined) {
        this.sessions.set(row.sessionId, {
          firstSeenMs: row.firstSeenMs,
          viewportWidth: width,
          viewportHeight: height,
          viewportAt: row.viewport === undefined ? row.firstSeenMs : row.viewportAt,
          hasUser: row.userId !== null
        })
        continue
      }
      known.firstSeenMs = Math.min(known.firstSeenMs, row.firstSeenMs)
      if (row.viewport !== undefined && row.viewportAt >= known.viewportAt) {
        known.viewportWidth = width
        known.viewportHeight = height
        known.viewportAt = row.viewportAt
      }
      known.hasUser ||= row.userId !== null
    }
    if (this.seen.size + seen.length > this.maxSeen) this.seen.clear()
    for (const row of seen) this.seen.add(row.key)
  }
}
