/**
 * spoolway — the single entry point (SPEC §7):
 *   serve --role all|collector|writer, migrate, status, replay-failures, salts rotate, retention
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import { AppConfig } from "./layers/AppConfig.ts"
import { LoggingLayer } from "./layers/Logging.ts"
import { CollectorLive } from "./programs/Collector.ts"

const role = Flag.Literals("role", ["all", "collector", "writer"]).pipe(
  Flag.withDescription("which part of the pipeline this process runs"),
  Flag.withDefault("all")
)

const serve = Command.make("serve", { role }, ({ role }) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    yield* Effect.logInfo(`spoolway serving role=${role} on http://${config.host}:${config.port}`)
    return yield* Layer.launch(CollectorLive)
  }).pipe(Effect.provide(AppConfig.layer), Effect.provide(LoggingLayer))
).pipe(Command.withDescription("run the pipeline (collector HTTP API, writer, maintenance)"))

const spoolway = Command.make("spoolway").pipe(
  Command.withDescription("Spoolway: durable, exactly-once analytics ingestion"),
  Command.withSubcommands([serve])
)

spoolway.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
