/**
 * Entry point of the writer's worker thread (started by WriterThread.ts for `serve --role all`):
 * runs `Writer.layer` on its own Redis and PostgreSQL connections with the configuration it is
 * given, reports the writer's counters to the parent thread, and stops — committing and
 * acknowledging the batch in flight, leaving the consumer group — when the parent says so.
 */
import { parentPort, workerData } from "node:worker_threads"
import { Cause, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../layers/AppConfig.ts"
import { GeoLookup } from "../layers/GeoLookup.ts"
import { NetworkLookup } from "../layers/NetworkLookup.ts"
import { LoggingLayer } from "../layers/Logging.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import * as Sql from "../layers/Sql.ts"
import { Writer } from "../programs/Writer.ts"
import type { WriterSnapshot } from "../programs/WriterOptions.ts"
import type { FromWriterThread, ToWriterThread, WriterThreadInput } from "./WriterThreadProtocol.ts"

const port = parentPort
if (port === null) throw new Error("WriterWorker.ts runs as a worker thread only")
const { config, consumer } = workerData as WriterThreadInput
const send = (message: FromWriterThread) => port.postMessage(message)

const WriterInThread = Writer.layerPostgres({ consumer }).pipe(
  Layer.provide([
    Sql.layerUrl(config.databaseUrl),
    Layer.orDie(GeoLookup.layer),
    Layer.orDie(NetworkLookup.layer),
    PrimaryRedis.layerUrl(config.primaryRedisUrl)
  ]),
  Layer.provide(Layer.succeed(AppConfig, AppConfig.of(config)))
)

const stopRequested = Effect.callback<void>((resume) => {
  const onMessage = (message: ToWriterThread) => {
    if (message.type === "stop") resume(Effect.void)
  }
  port.on("message", onMessage)
  return Effect.sync(() => port.off("message", onMessage))
})

const program = Effect.gen(function*() {
  const writer = yield* Writer
  const options = writer.options
  let last: WriterSnapshot = yield* writer.snapshot
  send({ type: "ready", options, snapshot: last })
  // counters to the parent (its /health and /metrics) whenever they changed
  const report = Effect.gen(function*() {
    const snapshot = yield* writer.snapshot
    if (snapshot !== last) {
      last = snapshot
      send({ type: "snapshot", snapshot })
    }
  })
  yield* report.pipe(Effect.repeat(Schedule.spaced("100 millis")), Effect.forkScoped)
  yield* stopRequested
  yield* report
}).pipe(Effect.scoped, Effect.provide(WriterInThread), Effect.provide(LoggingLayer))

const exit = await Effect.runPromiseExit(program)
if (exit._tag === "Failure" && !Cause.hasInterruptsOnly(exit.cause)) {
  send({ type: "failed", message: Cause.pretty(exit.cause) })
  process.exitCode = 1
}
// the thread ends once its connections are closed (the layers did that) and the port is; not
// process.exit(), which could drop log lines still on their way to the main thread's stdout
port.close()
