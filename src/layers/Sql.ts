/**
 * The `Sql` resource: PostgreSQL through `@effect/sql-pg`, at `DATABASE_URL`, or an embedded
 * PostgreSQL (see EmbeddedPostgres.ts) when it is unset. Every layer here runs the pending
 * migrations when it is built, so code and schema cannot drift apart. Also here: what a
 * `SqlError` means (transient or permanent, by SQLSTATE class) and how it is described.
 *
 * Migrations are a static record of imports (not a directory scan) so they load the same way
 * under `node --experimental-strip-types`, vitest and a bundler.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Schedule } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import migration0001 from "../../migrations/0001_initial.ts"
import migration0002 from "../../migrations/0002_rollup_fillfactor.ts"
import migration0003 from "../../migrations/0003_sites.ts"
import migration0004 from "../../migrations/0004_visits.ts"
import migration0005 from "../../migrations/0005_network.ts"
import migration0006 from "../../migrations/0006_site_shares.ts"
import migration0007 from "../../migrations/0007_query_indexes.ts"
import migration0008 from "../../migrations/0008_visit_rollups.ts"
import migration0009 from "../../migrations/0009_visit_rollups_daily.ts"
import migration0010 from "../../migrations/0010_visit_items.ts"
import migration0011 from "../../migrations/0011_visits_covering_index.ts"
import migration0012 from "../../migrations/0012_visits_bots_index.ts"
import migration0013 from "../../migrations/0013_page_rollups.ts"
import migration0014 from "../../migrations/0014_visit_items_value_index.ts"
import migration0015 from "../../migrations/0015_visits_first_touch_index.ts"
import migration0016 from "../../migrations/0016_session_rollup_key.ts"
import migration0017 from "../../migrations/0017_visits_started_session_id.ts"
import migration0018 from "../../migrations/0018_bot_rollups.ts"
import migration0019 from "../../migrations/0019_visit_items_hour.ts"
import migration0020 from "../../migrations/0020_visit_rollups_last_seen.ts"
import migration0021 from "../../migrations/0021_custom_events_page_index.ts"
import { AppConfig } from "./AppConfig.ts"
import { startConfiguredPostgres } from "./EmbeddedPostgres.ts"

/** SQLSTATE classes that mean "this data / statement is wrong", not "try again later". */
const PERMANENT_SQLSTATE_CLASSES = new Set(["0A", "21", "22", "23", "26", "2B", "2D", "2F", "3F", "42", "44", "P0", "XX"])

export const sqlState = (error: SqlError): string | undefined => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  const code = typeof cause === "object" && cause !== null ? (cause as { readonly code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

/**
 * Transient: the driver says retryable (connection, deadlock, serialization, lock/statement
 * timeout), or the server gave a state outside the "bad data / bad statement" classes
 * (e.g. 57P01 admin shutdown, 53100 disk full), or gave none at all (socket-level failure).
 */
export const isTransientSqlError = (error: SqlError): boolean => {
  if (error.isRetryable) return true
  const code = sqlState(error)
  return code === undefined ? error.reason._tag === "UnknownError" : !PERMANENT_SQLSTATE_CLASSES.has(code.slice(0, 2))
}

/** "<driver message>: <server message> (SQLSTATE)" */
export const describeSqlError = (error: SqlError): string => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  const detail = cause instanceof Error && cause.message !== error.message ? `: ${cause.message}` : ""
  const code = sqlState(error)
  return `${error.message}${detail}${code === undefined ? "" : ` (SQLSTATE ${code})`}`
}

/** Every migration, keyed `<id>_<name>`; add new files here. */
export const migrations = {
  "0001_initial": migration0001,
  "0002_rollup_fillfactor": migration0002,
  "0003_sites": migration0003,
  "0004_visits": migration0004,
  "0005_network": migration0005,
  "0006_site_shares": migration0006,
  "0007_query_indexes": migration0007,
  "0008_visit_rollups": migration0008,
  "0009_visit_rollups_daily": migration0009,
  "0010_visit_items": migration0010,
  "0011_visits_covering_index": migration0011,
  "0012_visits_bots_index": migration0012,
  "0013_page_rollups": migration0013,
  "0014_visit_items_value_index": migration0014,
  "0015_visits_first_touch_index": migration0015,
  "0016_session_rollup_key": migration0016,
  "0017_visits_started_session_id": migration0017,
  "0018_bot_rollups": migration0018,
  "0019_visit_items_hour": migration0019,
  "0020_visit_rollups_last_seen": migration0020,
  "0021_custom_events_page_index": migration0021
} as const

export const MIGRATIONS_TABLE = "spoolway_migrations"

const migrator = Migrator.make({})

/**
 * Migrations numbered below the newest applied one that were never applied: the migrator only
 * runs ids above the newest, so a database migrated while a higher-numbered migration had landed
 * before a lower one would never get the lower one. They run here, in id order, in one
 * transaction holding the migrations table's lock (as the migrator does), and are recorded.
 */
const runSkippedMigrations = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [table] = yield* sql<{ name: string | null }>`SELECT to_regclass(${MIGRATIONS_TABLE})::text AS name`
  if (table?.name == null) return []
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`LOCK TABLE ${sql(MIGRATIONS_TABLE)} IN ACCESS EXCLUSIVE MODE`
    const rows = yield* sql<{ migration_id: number }>`SELECT migration_id FROM ${sql(MIGRATIONS_TABLE)}`.withoutTransform
    const done = new Set(rows.map((row) => Number(row.migration_id)))
    const newest = Math.max(0, ...done)
    const skipped = Object.entries(migrations)
      .map(([key, migration]) => [Number(key.slice(0, key.indexOf("_"))), key.slice(key.indexOf("_") + 1), migration] as const)
      .filter(([id]) => id < newest && !done.has(id))
      .sort(([a], [b]) => a - b)
    for (const [id, name, migration] of skipped) {
      yield* migration
      yield* sql`INSERT INTO ${sql(MIGRATIONS_TABLE)} (migration_id, name) VALUES (${id}, ${name})`.withoutTransform
    }
    return skipped.map(([id, name]): readonly [id: number, name: string] => [id, name])
  }))
})

/**
 * Runs the pending migrations (`spoolway migrate`, and every start): first any skipped ones
 * (above), then those above the newest applied. Returns the applied `[id, name]` pairs (empty
 * when the schema was up to date). Concurrent runs are serialised by the migrations table's
 * lock; one that loses the race sees nothing left to do.
 */
export const runMigrations = Effect.zipWith(
  runSkippedMigrations,
  migrator({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE }),
  (skipped, applied) => [...skipped, ...applied]
).pipe(
  Effect.tap((applied) =>
    applied.length > 0
      ? Effect.logInfo(`applied migrations: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
      : Effect.void
  ),
  Effect.withSpan("runMigrations")
)

/** Pool settings shared by every layer here. */
export interface SqlOptions {
  readonly maxConnections?: number
  readonly applicationName?: string
}

const clientLayer = (url: string, options: SqlOptions = {}) =>
  PgClient.layer({
    url: Redacted.make(url),
    maxConnections: options.maxConnections ?? 8,
    applicationName: options.applicationName ?? "spoolway",
    connectTimeout: "10 seconds"
  })

/** Runs the migrations once the client is up (retrying while the server is still starting). */
const withMigrations = <E, R>(client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>) =>
  Layer.effectDiscard(
    runMigrations.pipe(
      Effect.retry({
        schedule: Schedule.spaced("500 millis"),
        times: 20,
        while: (error) => error._tag === "SqlError" && error.isRetryable
      })
    )
  ).pipe(Layer.provideMerge(client))

/** PostgreSQL at `url`, migrated. */
export const layerUrl = (url: string, options?: SqlOptions) => withMigrations(clientLayer(url, options))

/** PostgreSQL at `url`, without running migrations (for `migrate` itself, tools, tests). */
export const layerUrlNoMigrations = (url: string, options?: SqlOptions) => clientLayer(url, options)

/**
 * `DATABASE_URL`, or an embedded PostgreSQL under `<dataDir>/pg` started (and stopped) with the
 * layer's scope; migrated. Provides `PgClient` and `SqlClient`.
 */
export const layer = (options?: SqlOptions) =>
  Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (config.databaseUrl !== undefined) return layerUrl(config.databaseUrl, options)
      const running = yield* startConfiguredPostgres(config)
      return layerUrl(running.url, options)
    })
  )

/** Same as {@link layer} but does not run the migrations (e.g. for `spoolway migrate`). */
export const layerNoMigrations = (options?: SqlOptions) =>
  Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (config.databaseUrl !== undefined) return clientLayer(config.databaseUrl, options)
      const running = yield* startConfiguredPostgres(config)
      return clientLayer(running.url, options)
    })
  )

/**
 * The application's Sql layer (`DATABASE_URL` or embedded, migrated). Use this one constant
 * everywhere so the layer — and an embedded server — is built once per program.
 */
export const SqlLive = layer()
