/**
 * The writer's batch, sink-neutral: what the prepare stage (programs/PrepareBatch.ts) makes of
 * the stream entries it read, and what a `Sink` (layers/Sink.ts) stores in one atomic write.
 *
 *   stream entries ──prepare──▶ PreparedBatch ──Sink.stage──▶ StagedBatch ──Sink.write──▶ WriteResult
 *   (BatchEntry)    decode, enrich,               the sink's own work        one transaction
 *                   tenant, rollup deltas         done ahead (parameters)
 *
 * Everything here is computed assuming every event is new (the common case); a sink recomputes
 * for the subset it actually inserted when some rows already existed (redelivery, replay).
 *
 * Visits (domain/Visits.ts): a sink builds the visit rows from the events it inserted (the
 * PostgreSQL sink ahead, in `stage`, for the all-new case). Events sent without a sessionId
 * carry `assign` and a provisional session id; the sink assigns the real one inside its
 * transaction, where the visitor's stored sessions are locked (layers/PgSinkSessions.ts).
 *
 * Extension points (planned work lands here first, then in the sinks):
 * - Bots: `PreparedEvent.row.isBot` is final for every event except those flagged
 *   `resolveBot`, which the sink completes from the session it stores (see PrepareBatch.ts for
 *   the rule); rollups branch on `row.isBot` for every kind.
 * - Network enrichment (ASN, organisation per visit): more columns on the enriched row
 *   (domain/Enrich.ts) and, per visit, on the visit row; the sinks' statements add columns.
 * - Batches grouped by site: `PreparedBatch` is per stream key (partition) today; a writer that
 *   groups by site splits `events` by `scope` before staging — every list here is already
 *   sorted by its conflict key, so a split keeps each part's lock order.
 */
import type { EnrichedEvent, EnrichedView } from "./Enrich.ts"
import type { EventRollups } from "./Rollups.ts"
import type { Scope } from "./Tenant.ts"
import type { VisitorKey } from "./Visits.ts"

/** A stream entry as read (or claimed) from a stream key by the writer's consumer. */
export interface BatchEntry {
  readonly id: string
  /** the envelope JSON (field "e"); "" when the entry had no such field */
  readonly payload: string
  /** times delivered to a consumer of the group (1 for a first read) */
  readonly deliveries: number
}

/** One event to store, enriched, with its tenant. */
export interface PreparedEvent {
  readonly entryId: string
  readonly receivedAtMs: number
  readonly timestampMs: number
  readonly scope: Scope
  /**
   * A non-view event without a tenant of its own (no usable Origin/Referer/Host, e.g. sent
   * server-side) whose session has no view in this batch nor in a batch still being written:
   * the sink takes the tenant of the session's stored first touch when it stores the event.
   */
  readonly resolveScope: boolean
  /**
   * A non-view event whose own User-Agent is not a bot and whose session has no view in this
   * batch nor in a batch still being written: the sink marks it a bot when the session's stored
   * first touch is one (`row.isBot` is false until then).
   */
  readonly resolveBot: boolean
  /**
   * Sent without a sessionId: the sink assigns its session (domain/Visits.ts) from this
   * visitor key inside the transaction; until then `row.sessionId` is a provisional id per
   * visitor (`provisionalSessionId`).
   */
  readonly assign?: VisitorKey | undefined
  readonly row: EnrichedView | EnrichedEvent
}

/** An entry that cannot be stored as an event: kept with its raw payload (`ingest_failures`). */
export interface PoisonEntry {
  readonly entryId: string
  readonly payload: string
  readonly error: string
  readonly attempts: number
  readonly eventId: string | null
}

export interface PreparedBatch {
  /** the stream (partition) key the entries were read from; poison rows name it */
  readonly streamKey: string
  /** every entry of the batch: all of them are acknowledged once the write committed */
  readonly entryIds: ReadonlyArray<string>
  /** events to insert, one per (eventId, receivedAt), sorted by eventId */
  readonly events: ReadonlyArray<PreparedEvent>
  readonly poison: ReadonlyArray<PoisonEntry>
  /** entries of this batch that repeated an (eventId, receivedAt) already in the batch */
  readonly inBatchDuplicates: number
  /** the tenant of each session that has a view with a tenant in this batch (its first such view) */
  readonly viewScopes: ReadonlyMap<string, Scope>
  /** each session that has a view in this batch → whether the session is a bot (as its events were marked) */
  readonly sessionBots: ReadonlyMap<string, boolean>
  /**
   * Rollups of `events` without `resolveScope` (their tenant is known), valid when every one of
   * them turns out to be new and no `resolveBot` event turns out to be a bot; undefined when
   * there are no events.
   */
  readonly rollups: EventRollups | undefined
}

/** What a write stored. */
export interface WriteResult {
  readonly inserted: number
  /** events already stored (redelivered, drained twice, replayed) plus in-batch repeats */
  readonly duplicates: number
  readonly poison: number
  /** sessions created (human) */
  readonly newSessions: number
  /** unique visitors counted for the first time in a day bucket */
  readonly newVisitors: number
}

/** The order of every sorted list of a batch (by conflict key): plain UTF-16 code unit order. */
export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Error texts kept with a poison entry are cut at this length. */
export const MAX_ERROR_TEXT = 4000

export const truncateError = (text: string, max = MAX_ERROR_TEXT): string =>
  text.length > max ? `${text.slice(0, max)}…` : text

/** The eventId of an envelope that did not decode, when its JSON text still shows one. */
export const eventIdOf = (payload: string): string | null => {
  const match = /"eventId"\s*:\s*"([^"\\]{1,64})"/.exec(payload)
  return match?.[1] ?? null
}

/** A batch of one entry that is stored as poison only (an entry whose write keeps failing). */
export const poisonOnlyBatch = (streamKey: string, poison: PoisonEntry): PreparedBatch => ({
  streamKey,
  entryIds: [poison.entryId],
  events: [],
  poison: [poison],
  inBatchDuplicates: 0,
  viewScopes: new Map(),
  sessionBots: new Map(),
  rollups: undefined
})
