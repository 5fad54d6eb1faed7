/**
 * `spoolway status`: primary health, spool depth and oldest age, stream length, the writer
 * group's lag and pending count, and — from a running daemon's /health — the last write.
 *
 * The daemon is the `serve` running on the same data dir (`<dataDir>/serve.json`, ServeInfo.ts:
 * its real port, whatever PORT says now); without one, HOST:PORT. The database is DATABASE_URL
 * (password hidden), else the embedded PostgreSQL of the data dir while a `serve` runs it — a
 * full URL a user can pass to `psql` (`psql "$(spoolway status --database-url)"`).
 */
import { Clock, Effect } from "effect"
import { partitionStreamKeys, primaryStreamKey, spoolStreamKey, writerGroup } from "../domain/Streams.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { acquireCluster } from "../layers/RedisClient.ts"
import { runningEmbeddedPostgres } from "../layers/EmbeddedPostgres.ts"
import { readServeInfo, withoutPassword } from "../layers/ServeInfo.ts"
import { SpoolRedis } from "../layers/SpoolRedis.ts"
import { streamStatus } from "../layers/StreamConsumer.ts"

export interface StatusReport {
  readonly primary: { readonly url: string; readonly healthy: boolean; readonly error?: string }
  readonly stream: { readonly key: string; readonly length: number; readonly lag: number | null; readonly pending: number; readonly consumers: number } | null
  /**
   * With PRIMARY_REDIS_CLUSTER: every partition's stream (null when its node did not answer);
   * `stream` then holds the totals
   */
  readonly partitions?: ReadonlyArray<{ readonly partition: number; readonly key: string; readonly length: number; readonly lag: number | null; readonly pending: number; readonly consumers: number } | null>
  readonly spool: { readonly url: string; readonly depth: number | null; readonly oldestAgeMs: number | null }
  readonly daemon: {
    readonly url: string
    readonly reachable: boolean
    readonly health?: unknown
    /** where the address came from: the running serve of this data dir, or HOST:PORT */
    readonly found: "serve.json" | "HOST:PORT"
    readonly pid?: number
    readonly role?: string
  }
  readonly database: {
    /** for psql; null when there is none to reach now */
    readonly url: string | null
    readonly source: "DATABASE_URL" | "embedded" | "embedded (not running)"
  }
}

/** The database a user can reach now: DATABASE_URL (password hidden), or the running embedded one. */
export const databaseOf = (databaseUrl: string | undefined, dataDir: string): StatusReport["database"] => {
  if (databaseUrl !== undefined) return { url: withoutPassword(databaseUrl), source: "DATABASE_URL" }
  const embedded = runningEmbeddedPostgres(dataDir)
  return embedded === undefined ? { url: null, source: "embedded (not running)" } : { url: embedded.url, source: "embedded" }
}

/** Every partition's stream on the cluster of PRIMARY_REDIS_CLUSTER (null where its node did not answer). */
const partitionsStatus = (seeds: ReadonlyArray<string>, prefix: string, partitions: number) =>
  Effect.scoped(Effect.gen(function*() {
    const cluster = yield* acquireCluster(seeds, "status")
    return yield* Effect.forEach(partitionStreamKeys(prefix, partitions), (key, partition) =>
      streamStatus(cluster, key, writerGroup(prefix)).pipe(
        Effect.timeout("2 seconds"),
        Effect.map((s) => ({ partition, key, length: s.length, lag: s.lag, pending: s.pending, consumers: s.consumers })),
        Effect.orElseSucceed(() => null)
      ), { concurrency: "unbounded" })
  }))

const attempt = <A>(f: () => Promise<A>) => Effect.tryPromise(f).pipe(Effect.result)

export const status = Effect.gen(function*() {
  const config = yield* AppConfig
  const primary = yield* PrimaryRedis
  const spool = yield* SpoolRedis
  const now = yield* Clock.currentTimeMillis

  const ping = yield* attempt(() => primary.client.ping())
  const partitions = config.primaryRedisCluster.length > 0
    ? yield* partitionsStatus(config.primaryRedisCluster, config.streamPrefix, config.streamPartitions)
    : undefined
  const stream = partitions !== undefined
    ? {
      key: `${config.streamPrefix}:{0…${config.streamPartitions - 1}}:events`,
      length: partitions.reduce((n, p) => n + (p?.length ?? 0), 0),
      lag: partitions.every((p) => p !== null && p.lag !== null) ? partitions.reduce((n, p) => n + (p?.lag ?? 0), 0) : null,
      pending: partitions.reduce((n, p) => n + (p?.pending ?? 0), 0),
      consumers: Math.max(0, ...partitions.map((p) => p?.consumers ?? 0))
    }
    : ping._tag === "Success"
    ? yield* streamStatus(primary.client, primaryStreamKey(config.streamPrefix), writerGroup(config.streamPrefix)).pipe(
      Effect.map((s) => ({ key: primaryStreamKey(config.streamPrefix), length: s.length, lag: s.lag, pending: s.pending, consumers: s.consumers })),
      Effect.orElseSucceed(() => null)
    )
    : null

  const spoolKey = spoolStreamKey(config.streamPrefix)
  const depth = yield* attempt(() => spool.client.xlen(spoolKey))
  const oldest = yield* attempt(async () => {
    const [first] = await spool.client.xrange(spoolKey, "-", "+", "COUNT", 1)
    if (first === undefined) return null
    const receivedAt = Date.parse(JSON.parse(first[1][1] ?? "{}").receivedAt)
    return Number.isFinite(receivedAt) ? now - receivedAt : null
  })

  const serve = readServeInfo(config.dataDir)
  const daemonUrl = serve !== undefined
    ? `${serve.url}/health`
    : `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}/health`
  const found = serve !== undefined ? { found: "serve.json" as const, pid: serve.pid, role: serve.role } : { found: "HOST:PORT" as const }
  const daemon = yield* attempt(async () => {
    const res = await fetch(daemonUrl, { signal: AbortSignal.timeout(1500) })
    return res.json() as Promise<unknown>
  })

  return {
    primary: {
      url: primary.url,
      healthy: ping._tag === "Success",
      ...(ping._tag === "Failure" ? { error: String(ping.failure) } : {})
    },
    stream,
    ...(partitions !== undefined ? { partitions } : {}),
    spool: {
      url: spool.url,
      depth: depth._tag === "Success" ? depth.success : null,
      oldestAgeMs: oldest._tag === "Success" ? oldest.success : null
    },
    daemon: daemon._tag === "Success"
      ? { url: daemonUrl, reachable: true, health: daemon.success, ...found }
      : { url: daemonUrl, reachable: false, ...found },
    database: databaseOf(config.databaseUrl, config.dataDir)
  } satisfies StatusReport
})

/** The report as aligned `key: value` lines. */
export const formatStatus = (r: StatusReport): string => {
  const health = r.daemon.health as { writer?: { lastWriteAt?: number | null; written?: number } } | undefined
  const lastWrite = health?.writer?.lastWriteAt
  const rows: Array<[string, string]> = [
    ["primary", `${r.primary.healthy ? "healthy" : "UNREACHABLE"} (${r.primary.url.replace(/\/\/[^@]*@/, "//")})`],
    ["stream length", r.stream ? String(r.stream.length) : "?"],
    ["writer lag", r.stream?.lag === null || r.stream === null ? "?" : String(r.stream.lag)],
    ["writer pending", r.stream ? String(r.stream.pending) : "?"],
    ["writer consumers", r.stream ? String(r.stream.consumers) : "?"],
    ...(r.partitions === undefined ? [] : [[
      "partitions",
      r.partitions.map((p, i) => p === null ? `${i}: UNREACHABLE` : `${p.partition}: lag ${p.lag ?? "?"} pending ${p.pending}`).join(", ")
    ] as [string, string]]),
    ["spool depth", r.spool.depth === null ? "UNREACHABLE" : String(r.spool.depth)],
    ["oldest spooled", r.spool.oldestAgeMs === null ? "-" : `${Math.round(r.spool.oldestAgeMs / 1000)} s ago`],
    [
      "daemon",
      (r.daemon.reachable ? `up (${r.daemon.url})` : `not reachable at ${r.daemon.url}`) +
        (r.daemon.pid !== undefined ? `, pid ${r.daemon.pid}, role ${r.daemon.role}` : "")
    ],
    ["last write", lastWrite ? new Date(lastWrite).toISOString() : "-"],
    [
      "database",
      r.database.url === null
        ? "embedded PostgreSQL not running (it runs while spoolway serve does)"
        : `${r.database.url}  (${r.database.source}; psql "$(spoolway status --database-url)")`
    ]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
}
