/**
 * The writer's options (from AppConfig, docs/operations.md configuration, with overrides) and
 * its counters (`/health`, `/metrics`, the writer thread's reports).
 */
import { hostname } from "node:os"
import { Effect } from "effect"
import { primaryStreamKey, writerGroup } from "../domain/Streams.ts"
import { HOUR_MS } from "../domain/Time.ts"
import { AppConfig } from "../layers/AppConfig.ts"

export interface WriterOptions {
  readonly streamKey: string
  readonly group: string
  /** unique per writer process */
  readonly consumer: string
  /** XREADGROUP COUNT (WRITER_BATCH_SIZE) */
  readonly batchSize: number
  /** XREADGROUP BLOCK (WRITER_BLOCK_MS) */
  readonly blockMs: number
  /** WRITER_GROUP_BY_SITE: each batch read is written as one transaction per site (domain/SiteGroups.ts) */
  readonly groupBySite: boolean
  /**
   * WRITER_SESSION_LANES: each batch read is split by session into `transactions` writes, so the
   * writes in flight touch disjoint sessions (domain/SessionLanes.ts)
   */
  readonly sessionLanes: boolean
  /** batch writes (transactions) in flight at once (WRITER_TRANSACTIONS, at least 1) */
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
}

/** How many session lanes a read is split into: one per write in flight, or 1 without lanes. */
export const sessionLaneCount = (options: WriterOptions): number => options.sessionLanes ? options.transactions : 1

export const defaultConsumerName = (): string =>
  `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

/** Options from AppConfig, with overrides. */
export const writerOptions = Effect.fnUntraced(function*(overrides: Partial<WriterOptions> = {}) {
  const config = yield* AppConfig
  return {
    streamKey: primaryStreamKey(config.streamPrefix),
    group: writerGroup(config.streamPrefix),
    consumer: defaultConsumerName(),
    batchSize: config.writerBatchSize,
    blockMs: config.writerBlockMs,
    transactions: config.writerTransactions,
    groupBySite: config.writerGroupBySite,
    sessionLanes: config.writerSessionLanes,
    claimIdleMs: config.writerClaimIdleMs,
    claimEveryMs: config.writerClaimEveryMs,
    pruneConsumersIdleMs: 600_000,
    maxDeliveries: 5,
    retryBaseMs: 100,
    retryMaxMs: 5_000,
    permanentAttempts: 3,
    maintenance: true,
    maintenanceEveryMs: HOUR_MS,
    retentionDays: config.retentionDays,
    saltKeepDays: 2,
    ...overrides
  } satisfies WriterOptions
})

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

export const emptySnapshot = (options: WriterOptions): WriterSnapshot => ({
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
