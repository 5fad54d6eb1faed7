/**
 * What the writer reads next from its stream partition: entries left pending by a dead writer
 * (`XAUTOCLAIM` once idle for `claimIdleMs`, at start and then every `claimEveryMs`), else new
 * entries (`XREADGROUP`, waiting up to `blockMs`). Entries read and not yet settled are "in
 * flight": a later claim (the read-ahead) must not take them, nor entries being acknowledged.
 */
import { Clock, Effect } from "effect"
import type { cappedBackoff } from "../domain/Backoff.ts"
import type { BatchEntry } from "../domain/Batch.ts"
import { splitIntoLanes } from "../domain/SessionLanes.ts"
import { groupBySite } from "../domain/SiteGroups.ts"
import type { StreamPartition } from "../layers/StreamConsumer.ts"
import type { Acks } from "./WriterAcks.ts"
import { sessionLaneCount, type WriterOptions } from "./WriterOptions.ts"

export interface Intake {
  /** The next entries (marked in flight); empty when there was nothing to read. Never fails. */
  readonly next: Effect.Effect<ReadonlyArray<BatchEntry>>
  /** The entries' batch is written or given up: no longer in flight. */
  readonly settle: (entries: ReadonlyArray<BatchEntry>) => void
  /** Forgets every entry in flight (the loop ended with a defect; they stay pending). */
  readonly clear: () => void
  /** Looks at idle entries on the next read, whatever the claim schedule says. */
  readonly claimNow: () => void
}

export const makeIntake = (options: {
  readonly partition: StreamPartition
  readonly writer: WriterOptions
  readonly acks: Acks
  /** read failures are retried forever with this schedule */
  readonly schedule: ReturnType<typeof cappedBackoff>
  readonly noteError: (message: string) => Effect.Effect<void>
}): Intake => {
  const { acks, noteError, partition, schedule, writer } = options
  let claimCursor = "0-0"
  let nextClaimAt = 0
  /** entries read and not yet committed (the read-ahead must not reclaim them) */
  const inFlight = new Set<string>()

  const claim = Effect.gen(function*() {
    const watch = acks.watchClaim()
    const result = yield* partition.autoClaim(writer.claimIdleMs, claimCursor, writer.batchSize).pipe(
      Effect.onError(() => watch.unwatch)
    )
    // every id acknowledged since the claim was sent is in `watch.acked`, every id still being
    // acknowledged is `isAcking`
    const entries = result.entries.filter((entry) =>
      !inFlight.has(entry.id) && !acks.isAcking(entry.id) && !watch.acked.has(entry.id)
    )
    yield* watch.unwatch
    claimCursor = result.next
    if (result.deleted.length > 0) yield* partition.ackAndDelete(result.deleted).pipe(Effect.ignore)
    if (entries.length > 0) {
      yield* Effect.logInfo(`writer: reclaimed ${entries.length} idle pending entr${entries.length === 1 ? "y" : "ies"}`)
    }
    return entries
  }).pipe(
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`writer: XAUTOCLAIM failed: ${error.message}`), [] as ReadonlyArray<BatchEntry>)
    )
  )

  const read = partition.readNew(writer.batchSize, writer.blockMs).pipe(
    Effect.tapError((error) =>
      Effect.gen(function*() {
        yield* noteError(error.message)
        yield* Effect.logWarning(`writer: XREADGROUP failed (will retry): ${error.message}`)
        // the stream or the group is gone (first start with Redis down, key deleted): recreate
        if (error.message.includes("NOGROUP")) yield* partition.ensureGroup.pipe(Effect.ignore)
      })
    ),
    Effect.retry({ schedule }),
    Effect.orDie // the schedule never ends
  )

  const fetch: Effect.Effect<ReadonlyArray<BatchEntry>> = Effect.gen(function*() {
    const at = yield* Clock.currentTimeMillis
    if (at >= nextClaimAt) {
      const claimed = yield* claim
      if (claimed.length === 0 && claimCursor === "0-0") nextClaimAt = at + writer.claimEveryMs
      if (claimed.length > 0) return claimed
    }
    return yield* read
  })

  const marked = Effect.map(fetch, (entries) => {
    for (const entry of entries) inFlight.add(entry.id)
    return entries
  })

  /**
   * The parts of the last read not yet handed out (all in flight): its site groups
   * (WRITER_GROUP_BY_SITE), each split into session lanes (WRITER_SESSION_LANES, one per write
   * in flight: domain/SessionLanes.ts)
   */
  const parts: Array<ReadonlyArray<BatchEntry>> = []
  const lanes = sessionLaneCount(writer)
  const split = writer.groupBySite || lanes > 1
  const nextPart: Effect.Effect<ReadonlyArray<BatchEntry>> = Effect.suspend(() => {
    const queued = parts.shift()
    if (queued !== undefined) return Effect.succeed(queued)
    return Effect.map(marked, (entries) => {
      if (entries.length === 0) return entries
      for (const group of writer.groupBySite ? groupBySite(entries) : [entries]) parts.push(...splitIntoLanes(group, lanes))
      return parts.shift()!
    })
  })

  return {
    next: split ? nextPart : marked,
    settle: (entries) => {
      for (const entry of entries) inFlight.delete(entry.id)
    },
    clear: () => {
      inFlight.clear()
      parts.length = 0
    },
    claimNow: () => {
      nextClaimAt = 0
    }
  }
}
