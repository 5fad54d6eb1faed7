/**
 * Visits (sessions) and server-side session assignment (docs/visits.md), pure: the sinks
 * (layers/PgSink.ts, layers/MemorySink.ts) feed them the events they actually inserted, so a
 * redelivered event changes nothing.
 *
 * A visit is one row per (site, session) — `migrations/0004_visits.ts` — built from a batch's
 * newly inserted events of a known site and merged into the stored row with commutative
 * rules, so arrival order, batching and concurrent transactions give the same row:
 * - time of an event = its edge `receivedAt` (as the rollups: the clock clients cannot skew);
 * - `started_at` / `last_seen_at`: least / greatest time; `pageviews`, `events` (views
 *   included): sums; `engaged`: or — every non-view event is engagement (the tracker's
 *   `engagement` events, clicks, custom events, conversions); `is_bot`: or;
 * - entry = the earliest view by (time, page path, event id), exit = the latest view by
 *   (time, page path); page = the rollups' normalized path (`pagePath`);
 * - first touch (hostname, source, referrer, UTM, device, browser, OS, geo, language) = the
 *   entry view's: only views carry them;
 * - `visitor_id_daily`: the least of the session's daily visitor ids (a client session id may
 *   span midnight; a server-assigned session never does).
 *
 * Server-side sessions (an event sent without `sessionId`): per (site, daily visitor id), an
 * event less than {@link SESSION_GAP_MS} from a known session of that visitor joins it (the
 * nearest one; ties → the earlier session), else it opens a new session whose id is
 * {@link serverSessionId} of its own event id. Events of a batch are assigned in (time, event
 * id) order. Known sessions: the visitor's latest (`visitor_sessions`), plus, when an event is
 * older than that, the visitor's earlier server-assigned visits.
 */
import { compareStrings, type PreparedEvent } from "./Batch.ts"
import type { EnrichedView } from "./Enrich.ts"
import { SERVER_SESSION_PREFIX } from "./Limits.ts"
import { memoizeString } from "./Memo.ts"
import { pagePath } from "./Rollups.ts"

/** Inactivity that ends a server-assigned session. */
export const SESSION_GAP_MS = 30 * 60_000

/**
 * Server-assigned session ids start with this character; the tracking API refuses client
 * session ids that do (docs/api.md, `ClientSessionId`), so the two never collide.
 */
export { SERVER_SESSION_PREFIX }

/** The id of a session opened by the event `eventId` (lower-case, as PostgreSQL prints a uuid). */
export const serverSessionId = (eventId: string): string => `${SERVER_SESSION_PREFIX}${eventId.toLowerCase()}`

export const isServerSessionId = (sessionId: string): boolean => sessionId.startsWith(SERVER_SESSION_PREFIX)

/** An event is engagement when it is not a page view (see the module comment). */
export const isEngaged = (event: PreparedEvent): boolean => !event.row.isView

/**
 * Lower-case hex of the bytes, as one flat string (Node's encoder): visitor keys built from it
 * are hashed and compared in maps several times per event, which a string concatenated pair by
 * pair (a rope of 32 pieces) makes several times slower.
 */
export const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

/** The hostname of a page URL (lower-case); null for a relative or unparseable one. */
export const pageHost = memoizeString((pageUrl: string): string | null => {
  const trimmed = pageUrl.trim()
  if (trimmed.length === 0 || trimmed.startsWith("/")) return null
  try {
    const host = new URL(trimmed).hostname
    return host.length === 0 ? null : host.toLowerCase()
  } catch {
    return null
  }
})

export interface EntryView {
  readonly at: number
  readonly page: string | null
  /** lower-case */
  readonly eventId: string
  readonly view: EnrichedView
}

export interface VisitRow {
  readonly siteId: number
  readonly sessionId: string
  visitorIdDaily: Uint8Array | null
  startedAt: number
  lastSeenAt: number
  pageviews: number
  events: number
  engaged: boolean
  isBot: boolean
  entry: EntryView | undefined
  exitAt: number | null
  exitPage: string | null
}

/** (time, page, event id) order of entry candidates; a null page sorts as "". */
export const compareEntry = (
  a: Pick<EntryView, "at" | "page" | "eventId">,
  b: Pick<EntryView, "at" | "page" | "eventId">
): number =>
  a.at !== b.at ? a.at - b.at : compareStrings(a.page ?? "", b.page ?? "") || compareStrings(a.eventId, b.eventId)

/** (time, page) order of exit candidates. */
export const compareExit = (aAt: number, aPage: string | null, bAt: number, bPage: string | null): number =>
  aAt !== bAt ? aAt - bAt : compareStrings(aPage ?? "", bPage ?? "")

const compareBytes = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

/** The least of two visitor ids (PostgreSQL's LEAST over bytea: NULLs ignored). */
export const leastVid = (a: Uint8Array | null, b: Uint8Array | null): Uint8Array | null =>
  a === null ? b : b === null ? a : compareBytes(a, b) <= 0 ? a : b

/** The visit row of one event. */
export const visitOfEvent = (event: PreparedEvent, siteId: number): VisitRow => {
  const row = event.row
  const at = event.receivedAtMs
  const page = row.isView ? pagePath(row.pageUrl) : null
  return {
    siteId,
    sessionId: row.sessionId,
    visitorIdDaily: row.visitorIdDaily,
    startedAt: at,
    lastSeenAt: at,
    pageviews: row.isView ? 1 : 0,
    events: 1,
    engaged: isEngaged(event),
    isBot: row.isBot,
    entry: row.isView ? { at, page, eventId: row.eventId.toLowerCase(), view: row } : undefined,
    exitAt: row.isView ? at : null,
    exitPage: page
  }
}

/** Merges `b` into `a` (the rules of the module comment: commutative and associative). */
export const mergeVisit = (a: VisitRow, b: VisitRow): VisitRow => {
  a.visitorIdDaily = leastVid(a.visitorIdDaily, b.visitorIdDaily)
  a.startedAt = Math.min(a.startedAt, b.startedAt)
  a.lastSeenAt = Math.max(a.lastSeenAt, b.lastSeenAt)
  a.pageviews += b.pageviews
  a.events += b.events
  a.engaged ||= b.engaged
  a.isBot ||= b.isBot
  if (b.entry !== undefined && (a.entry === undefined || compareEntry(b.entry, a.entry) < 0)) a.entry = b.entry
  if (b.exitAt !== null && (a.exitAt === null || compareExit(b.exitAt, b.exitPage, a.exitAt, a.exitPage) > 0)) {
    a.exitAt = b.exitAt
    a.exitPage = b.exitPage
  }
  return a
}

export const compareVisitKeys = (a: { siteId: number; sessionId: string }, b: { siteId: number; sessionId: string }) =>
  a.siteId - b.siteId || compareStrings(a.sessionId, b.sessionId)

/**
 * One visit row per (site, session) of the events of a known site, sorted by (site id,
 * session id) — the conflict key, so concurrent upserts lock in one order.
 */
export const visitRows = (events: ReadonlyArray<PreparedEvent>): Array<VisitRow> => {
  const rows = new Map<string, VisitRow>()
  for (const event of events) {
    const siteId = event.scope.domainId
    if (siteId === null) continue
    const key = `${siteId}|${event.row.sessionId}`
    const current = rows.get(key)
    const visit = visitOfEvent(event, siteId)
    if (current === undefined) rows.set(key, visit)
    else mergeVisit(current, visit)
  }
  return [...rows.values()].sort(compareVisitKeys)
}

// ---------------------------------------------------------------------------------------------
// server-side session assignment

/** A session of one visitor (site, daily visitor id) as the assignment sees it. */
export interface KnownSession {
  readonly sessionId: string
  startedAt: number
  lastSeenAt: number
}

/** What the assignment keys on: the site (0 when the event has none) and the daily visitor id. */
export interface VisitorKey {
  readonly siteKey: number
  readonly vid: Uint8Array
  /** `${siteKey}|${hex vid}` */
  readonly key: string
}

export const visitorKeyOf = (siteKey: number, vid: Uint8Array): VisitorKey => ({
  siteKey,
  vid,
  key: `${siteKey}|${hexOf(vid)}`
})

/**
 * The session id a prepared event without one carries until the sink assigns it: one per
 * visitor key, so the prepare stage's per-session carry-over (tenant, bot) works per visitor.
 * Never stored (the sink replaces it; it starts with a NUL, which no stored text holds).
 */
export const provisionalSessionId = (key: VisitorKey): string => `\u0000${key.key}`

export const isProvisionalSessionId = (sessionId: string): boolean => sessionId.startsWith("\u0000")

const distance = (t: number, s: KnownSession) => (t < s.startedAt ? s.startedAt - t : t > s.lastSeenAt ? t - s.lastSeenAt : 0)

/**
 * Assigns the events of ONE visitor (each `{ at, eventId }`, any order) to sessions: `known`
 * are that visitor's stored sessions (updated in place; new ones appended). Returns the session
 * id per event, in the order given.
 */
export const assignVisitorSessions = (
  known: Array<KnownSession>,
  events: ReadonlyArray<{ readonly at: number; readonly eventId: string }>
): Array<string> => {
  const order = events.map((_, i) => i).sort((a, b) =>
    events[a]!.at - events[b]!.at || compareStrings(events[a]!.eventId.toLowerCase(), events[b]!.eventId.toLowerCase())
  )
  const out = new Array<string>(events.length)
  for (const i of order) {
    const { at, eventId } = events[i]!
    let best: KnownSession | undefined
    let bestDistance = Infinity
    for (const s of known) {
      const d = distance(at, s)
      if (d >= SESSION_GAP_MS) continue
      if (d < bestDistance || (d === bestDistance && best !== undefined && s.startedAt < best.startedAt)) {
        best = s
        bestDistance = d
      }
    }
    if (best === undefined) {
      best = { sessionId: serverSessionId(eventId), startedAt: at, lastSeenAt: at }
      known.push(best)
    } else {
      best.startedAt = Math.min(best.startedAt, at)
      best.lastSeenAt = Math.max(best.lastSeenAt, at)
    }
    out[i] = best.sessionId
  }
  return out
}

/** The visitor's latest session (what `visitor_sessions` keeps): greatest last_seen_at, then started_at. */
export const latestSession = (sessions: ReadonlyArray<KnownSession>): KnownSession | undefined => {
  let latest: KnownSession | undefined
  for (const s of sessions) {
    if (
      latest === undefined || s.lastSeenAt > latest.lastSeenAt ||
      (s.lastSeenAt === latest.lastSeenAt && (s.startedAt > latest.startedAt ||
        (s.startedAt === latest.startedAt && compareStrings(s.sessionId, latest.sessionId) > 0)))
    ) latest = s
  }
  return latest
}

/** Whether an event at `at` precedes the latest session (so the visitor's earlier sessions are needed). */
export const needsEarlierSessions = (latest: KnownSession | undefined, at: number): boolean =>
  latest !== undefined && at < latest.startedAt
