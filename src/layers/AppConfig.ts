/**
 * Every setting (docs/operations.md, configuration), read once from the environment through Effect `Config`.
 * Absent URLs mean "start the embedded server" (see EmbeddedRedis / EmbeddedPostgres).
 */
import { Config, Context, Effect, Layer } from "effect"

const list = (name: string, fallback: string) =>
  Config.String(name).pipe(
    Config.withDefault(fallback),
    Config.map((raw) => raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0))
  )

const optionalString = (name: string) =>
  Config.String(name).pipe(
    Config.withDefault(""),
    Config.map((s) => (s.trim() === "" ? undefined : s.trim()))
  )

/**
 * The writer's read size (XREADGROUP / XAUTOCLAIM COUNT, `WRITER_BATCH_SIZE`): an upper bound —
 * a read returns what the stream holds, so at a site's usual rate batches stay small and nothing
 * waits for a batch to fill; under a backlog or a burst, bigger batches share each statement's
 * work among more events (bench/README.md, Writer: 500 → 2,000 → 5,000 events per batch gave
 * 7.2–8.1K → 10.5–10.8K → 12.6–12.8K events/s with the visits model on 2 cores). A read is split
 * into WRITER_TRANSACTIONS session lanes (domain/SessionLanes.ts), so each transaction of a full
 * read holds about 10,000 / 2 = 5,000 events, the size measured best.
 */
export const DEFAULT_WRITER_BATCH_SIZE = 10_000

export const AppConfigSchema = Config.all({
  port: Config.Int("PORT").pipe(Config.withDefault(8787)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  databaseUrl: optionalString("DATABASE_URL"),
  primaryRedisUrl: optionalString("PRIMARY_REDIS_URL"),
  spoolRedisUrl: optionalString("SPOOL_REDIS_URL"),
  /**
   * Seed nodes (`host:port,…`) of a Redis Cluster for the event log (docs/scaling.md); empty = the
   * single primary Redis (the default). The log is then split into STREAM_PARTITIONS streams.
   */
  primaryRedisCluster: list("PRIMARY_REDIS_CLUSTER", ""),
  /** partitions of the event log on a Redis Cluster (`<prefix>:{p}:events`, p < STREAM_PARTITIONS) */
  streamPartitions: Config.Int("STREAM_PARTITIONS").pipe(Config.withDefault(16)),
  /**
   * Replicas that must acknowledge an event-log write before the collector answers 2xx (WAIT,
   * or WAITAOF on Redis ≥ 7.2); 0 = the primary's acknowledgement suffices (docs/scaling.md)
   */
  redisMinReplicasAck: Config.Int("REDIS_MIN_REPLICAS_ACK").pipe(Config.withDefault(0)),
  /** how long WAIT waits for those replicas, ms; fewer in time = a failed write (→ the spool) */
  redisReplicasAckTimeoutMs: Config.Int("REDIS_REPLICAS_ACK_TIMEOUT_MS").pipe(Config.withDefault(100)),
  streamPrefix: Config.String("STREAM_PREFIX").pipe(Config.withDefault("spoolway")),
  probeIntervalMs: Config.Int("PROBE_INTERVAL_MS").pipe(Config.withDefault(5000)),
  spoolMaxEvents: Config.Int("SPOOL_MAX_EVENTS").pipe(Config.withDefault(1_000_000)),
  /** fsync policy of the embedded Redis servers' AOF (see EmbeddedRedis.ts for the trade-off) */
  appendfsync: Config.Literals(["always", "everysec", "no"], "REDIS_APPENDFSYNC").pipe(Config.withDefault("always" as const)),
  writeKeys: list("COLLECTOR_WRITE_KEYS", ""),
  trustedProxies: list("TRUSTED_PROXIES", "127.0.0.0/8,::1/128"),
  /** allowed CORS origins while no site is defined (with sites, the sites' origins decide) */
  corsOrigins: list("CORS_ORIGINS", "*"),
  /**
   * How often the collector looks for a new site registry on the primary Redis, and the writer
   * for a change of the sites in PostgreSQL to publish there, ms
   */
  sitesRefreshMs: Config.Int("SITES_REFRESH_MS").pipe(Config.withDefault(2000)),
  rateLimitPerMinute: Config.Int("RATE_LIMIT_PER_MINUTE").pipe(Config.withDefault(600)),
  maxBodyBytes: Config.Int("MAX_BODY_BYTES").pipe(Config.withDefault(262_144)),
  maxBatchEvents: Config.Int("MAX_BATCH_EVENTS").pipe(Config.withDefault(500)),
  writerBatchSize: Config.Int("WRITER_BATCH_SIZE").pipe(Config.withDefault(DEFAULT_WRITER_BATCH_SIZE)),
  writerBlockMs: Config.Int("WRITER_BLOCK_MS").pipe(Config.withDefault(1000)),
  /**
   * Batch transactions one writer keeps in flight at once (each on its own connection): while
   * one waits for its COMMIT's WAL flush or for row locks, the next one runs.
   */
  writerTransactions: Config.Int("WRITER_TRANSACTIONS").pipe(Config.withDefault(2)),
  /**
   * Write each batch as one transaction per site (for a PostgreSQL distributed by site, where a
   * transaction then touches one shard: docs/scaling.md)
   */
  writerGroupBySite: Config.Boolean("WRITER_GROUP_BY_SITE").pipe(Config.withDefault(false)),
  /**
   * Split each batch read by session into WRITER_TRANSACTIONS writes, so that the transactions in
   * flight touch disjoint sessions and do not wait for each other's commits (domain/SessionLanes.ts)
   */
  writerSessionLanes: Config.Boolean("WRITER_SESSION_LANES").pipe(Config.withDefault(true)),
  /** entries pending this long in a (dead) writer are reclaimed by another (XAUTOCLAIM) */
  writerClaimIdleMs: Config.Int("WRITER_CLAIM_IDLE_MS").pipe(Config.withDefault(30_000)),
  writerClaimEveryMs: Config.Int("WRITER_CLAIM_EVERY_MS").pipe(Config.withDefault(10_000)),
  retentionDays: Config.Int("RETENTION_DAYS").pipe(Config.withDefault(90)),
  dataDir: Config.String("SPOOLWAY_DATA_DIR").pipe(Config.withDefault(".data")),
  /**
   * Embedded servers: false = this process owns them (serve: start, stop an orphan left by a
   * killed run, stop at exit); true = attach to the ones a running `serve` owns, starting
   * (and stopping) its own only when none runs (the maintenance commands).
   */
  embeddedAttach: Config.succeed(false),
  /** `serve --role all`: the writer runs in a worker thread of the process (false: on the main thread) */
  writerThread: Config.Boolean("WRITER_THREAD").pipe(Config.withDefault(true)),
  /** timeout of one Redis command on the request path (enqueue), ms */
  redisCommandTimeoutMs: Config.Int("REDIS_COMMAND_TIMEOUT_MS").pipe(Config.withDefault(250)),
  /**
   * How long a tracking request waits for a Redis write still in doubt (unanswered past the
   * command timeout) before it is answered 202 and the collector writes the events again until
   * Redis acknowledges them, ms (docs/operations.md)
   */
  answerDeadlineMs: Config.Int("ANSWER_DEADLINE_MS").pipe(Config.withDefault(1000)),
  /**
   * After SIGTERM/SIGINT: how long open keep-alive connections may still send a request (answered
   * with `Connection: close`) before idle ones are closed, ms (0 = close them at once)
   */
  shutdownGraceMs: Config.Int("SHUTDOWN_GRACE_MS").pipe(Config.withDefault(2000)),
  /** where the collector serves the tracker script; the full variant at `<path without .js>.full.js` */
  trackerPath: Config.String("TRACKER_PATH").pipe(Config.withDefault("/sw.js"))
})

export type AppConfigValues = Config.Success<typeof AppConfigSchema>

export class AppConfig extends Context.Service<AppConfig, AppConfigValues>()("spoolway/layers/AppConfig") {
  /** Reads the environment (the default ConfigProvider). */
  static readonly layer = Layer.effect(
    AppConfig,
    Effect.gen(function*() {
      return AppConfig.of(yield* AppConfigSchema)
    })
  )

  /** A fixed configuration, for tests: the defaults overridden by `overrides`. */
  static readonly layerWith = (overrides: Partial<AppConfigValues>) =>
    Layer.effect(
      AppConfig,
      Effect.gen(function*() {
        const values = yield* AppConfigSchema
        return AppConfig.of({ ...values, ...overrides })
      })
    )
}
