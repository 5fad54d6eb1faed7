/**
 * The `spoolway` command tree (docs/operations.md, CLI):
 *   serve --role all|collector|writer|api, stats, migrate, status, replay-failures, salts rotate, retention, network, sites
 * and the program that runs it on the arguments of `Stdio`. src/main/cli.ts runs it as the binary;
 * the tests also run it inside their own process (test/support/cliInProcess.ts) — one command table.
 */
import { Cause, Clock, Console, Effect, Exit, Layer } from "effect"
import type { Runtime } from "effect"
import { Command, Flag } from "effect/cli"
import { VERSION } from "../domain/Version.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { LoggingLayer } from "../layers/Logging.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { Salts } from "../layers/Salts.ts"
import { SpoolRedis } from "../layers/SpoolRedis.ts"
import * as Sql from "../layers/Sql.ts"
import { rotateSalts, runMaintenance } from "../programs/Maintenance.ts"
import { replayFailures } from "../programs/ReplayFailures.ts"
import { formatStatus, status } from "../programs/Status.ts"
import { daemon } from "./Daemon.ts"
import { databaseUrlFlag, printDatabaseUrl } from "./DatabaseUrl.ts"
import { networkCommand } from "./NetworkCommand.ts"
import { sitesCommand } from "./SitesCommand.ts"
import { statsCommand } from "./StatsCommand.ts"
import { checkListenable, reportStartupFailures } from "./StartupErrors.ts"

/** Maintenance commands use the servers a running `serve` owns, or start their own briefly. */
const attached = AppConfig.layerWith({ embeddedAttach: true })

const role = Flag.Literals("role", ["all", "collector", "writer", "api"]).pipe(
  Flag.withDescription("which part of the pipeline this process runs (collector never needs Postgres; api: the stats query API)"),
  Flag.withDefault("all")
)

const serve = Command.make("serve", { role }, ({ role }) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    // a taken port is reported before Redis, PostgreSQL and the writer start
    yield* checkListenable(config.host, config.port)
    yield* Effect.logInfo(`spoolway serve --role ${role} on http://${config.host}:${config.port}`)
    return yield* Layer.launch(daemon(role).pipe(Layer.provide(AppConfig.layer)))
  }).pipe(Effect.provide(AppConfig.layer))
).pipe(Command.withDescription("run the pipeline: collector HTTP API, writer, maintenance (default role: all)"))

const migrate = Command.make("migrate", {}, () =>
  Effect.gen(function*() {
    const applied = yield* Sql.runMigrations
    yield* Console.log(applied.length === 0 ? "schema is up to date" : `applied: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
  }).pipe(Effect.provide(Sql.layerNoMigrations().pipe(Layer.provide(attached))))
).pipe(Command.withDescription("run pending database migrations (every start does this too)"))

const json = Flag.Boolean("json").pipe(Flag.withDescription("print JSON"), Flag.withDefault(false))

const statusReport = (json: boolean) =>
  Effect.gen(function*() {
    const report = yield* status
    yield* Console.log(json ? JSON.stringify(report, null, 2) : formatStatus(report))
  }).pipe(Effect.provide(Layer.mergeAll(PrimaryRedis.layer, SpoolRedis.layer).pipe(Layer.provideMerge(attached))))

const statusCommand = Command.make("status", { json, databaseUrl: databaseUrlFlag }, ({ databaseUrl, json }) =>
  Effect.gen(function*() {
    if (databaseUrl) return yield* printDatabaseUrl
    yield* statusReport(json)
  })
).pipe(Command.withDescription("primary health, spool depth and age, stream lag and pending, last write, the running serve and its database"))

const replay = Command.make(
  "replay-failures",
  {
    limit: Flag.Int("limit").pipe(Flag.withDescription("replay at most this many rows, oldest first"), Flag.withDefault(10_000)),
    dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("list what would be replayed; change nothing"), Flag.withDefault(false)),
    includeUndecodable: Flag.Boolean("include-undecodable").pipe(
      Flag.withDescription("also replay rows that still do not decode (they will come back as poison)"),
      Flag.withDefault(false)
    )
  },
  ({ dryRun, includeUndecodable, limit }) =>
    Effect.gen(function*() {
      const result = yield* replayFailures({ limit, dryRun, includeUndecodable })
      yield* Console.log(
        `${dryRun ? "would replay" : "replayed"} ${result.replayed} to ${result.streamKey}; ` +
          `${result.skippedUndecodable} still undecodable (left in ingest_failures)`
      )
    }).pipe(Effect.provide(Layer.mergeAll(Sql.layer(), PrimaryRedis.layer).pipe(Layer.provideMerge(attached))))
).pipe(Command.withDescription("re-enqueue ingest_failures rows that now decode (each at most once)"))

const keepDays = Flag.Int("keep-days").pipe(
  Flag.withDescription("keep the salts of this many past days (the longest spool age; default 2)"),
  Flag.withDefault(2)
)

const rotate = Command.make("rotate", { keepDays }, ({ keepDays }) =>
  Effect.gen(function*() {
    const result = yield* rotateSalts(yield* Clock.currentTimeMillis, keepDays)
    yield* Console.log(`salt for ${result.today} ready; ${result.purged} older salt(s) deleted`)
  }).pipe(Effect.provide(Salts.layer.pipe(Layer.provideMerge(Sql.layer()), Layer.provide(attached))))
).pipe(Command.withDescription("create today's visitor salt and delete salts older than --keep-days"))

const salts = Command.make("salts").pipe(
  Command.withDescription("daily visitor-id salts"),
  Command.withSubcommands([rotate])
)

const retention = Command.make("retention", { keepDays }, ({ keepDays }) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    const result = yield* runMaintenance({ nowMs: yield* Clock.currentTimeMillis, retentionDays: config.retentionDays, saltKeepDays: keepDays })
    yield* Console.log(
      `partitions created: ${result.createdPartitions}; dropped: ${result.droppedPartitions.join(", ") || "none"}; ` +
        `old rows deleted from the default partition: ${result.deletedDefaultRows}; salts deleted: ${result.purgedSalts}`
    )
  }).pipe(Effect.provide(Salts.layer.pipe(Layer.provideMerge(Sql.layer()), Layer.provideMerge(attached))))
).pipe(Command.withDescription("drop raw_events partitions older than RETENTION_DAYS, create the coming ones, purge old salts"))

export const spoolway = Command.make("spoolway").pipe(
  Command.withDescription("Spoolway: durable, exactly-once analytics ingestion"),
  Command.withSubcommands([serve, migrate, statusCommand, replay, salts, retention, networkCommand, sitesCommand, statsCommand])
)

/**
 * The whole CLI on the arguments of `Stdio`: parse, run the command, expected start-up failures as
 * one line (StartupErrors.ts), logs per LOG_FORMAT / LOG_LEVEL. Needs the platform services
 * (NodeServices) and reads its configuration from the ConfigProvider.
 */
export const program = spoolway.pipe(
  Command.run({ version: VERSION }),
  reportStartupFailures,
  Effect.provide(LoggingLayer)
)

/** SIGTERM/SIGINT interrupt the program; a clean, complete shutdown then exits 0; any failure 1. */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
