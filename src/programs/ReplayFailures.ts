/**
 * `spoolway replay-failures` (docs/operations.md, replay): puts poison envelopes kept in
 * `ingest_failures` back on the primary stream (with PRIMARY_REDIS_CLUSTER: into each event's
 * partition), e.g. after a writer bug was fixed.
 *
 * Each replayed row is marked `replayed_at` after its `XADD`. A crash between the two replays
 * that row again next time, which is harmless: the writer's idempotent insert stores an event
 * once. By default, payloads that still do not decode as an envelope are left alone (they
 * would only come back as poison); `includeUndecodable` replays them anyway.
 */
import { Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"
import { decodeEnvelopeJson } from "../domain/Envelope.ts"
import { primaryStreamKey } from "../domain/Streams.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { clusterEventLog } from "../layers/PrimaryCluster.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { redisStreamStore } from "../layers/StreamStore.ts"

export interface ReplayOptions {
  /** at most this many rows (oldest first; default 10 000) */
  readonly limit?: number
  /** only these ingest_failures ids */
  readonly ids?: ReadonlyArray<number>
  readonly includeUndecodable?: boolean
  /** list what would be replayed without doing it */
  readonly dryRun?: boolean
}

export interface ReplayResult {
  readonly replayed: number
  readonly skippedUndecodable: number
  readonly streamKey: string
}

export const replayFailures = (options: ReplayOptions = {}) => Effect.scoped(replayScoped(options))

const replayScoped = Effect.fn("replayFailures")(function*(options: ReplayOptions) {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AppConfig
  const { client } = yield* PrimaryRedis
  // with PRIMARY_REDIS_CLUSTER, back into the partition of each event (the writers read those)
  const partitioned = config.primaryRedisCluster.length > 0
  const streamKey = partitioned
    ? `${config.streamPrefix}:{0…${config.streamPartitions - 1}}:events`
    : primaryStreamKey(config.streamPrefix)
  const primary = partitioned ? yield* clusterEventLog(config) : redisStreamStore({ name: "primary", client, key: streamKey })
  const rows = options.ids !== undefined
    ? yield* sql<{ readonly id: string; readonly payload: string }>`
        SELECT id::text AS id, payload FROM ingest_failures
        WHERE replayed_at IS NULL AND id IN ${sql.in(options.ids.length > 0 ? [...options.ids] : [-1])}
        ORDER BY id`
    : yield* sql<{ readonly id: string; readonly payload: string }>`
        SELECT id::text AS id, payload FROM ingest_failures
        WHERE replayed_at IS NULL ORDER BY id LIMIT ${options.limit ?? 10_000}`
  let replayed = 0
  let skippedUndecodable = 0
  for (const row of rows) {
    if (options.includeUndecodable !== true && Exit.isFailure(decodeEnvelopeJson(row.payload))) {
      skippedUndecodable++
      continue
    }
    if (options.dryRun === true) {
      replayed++
      continue
    }
    yield* primary.append([row.payload])
    yield* sql`UPDATE ingest_failures SET replayed_at = now() WHERE id = ${row.id}::bigint`
    replayed++
  }
  return { replayed, skippedUndecodable, streamKey } satisfies ReplayResult
})
