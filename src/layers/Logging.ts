/**
 * Structured logs: LOG_FORMAT json (default; one JSON object per line) or pretty,
 * LOG_LEVEL (default info; case-insensitive: trace, debug, info, warn, error, fatal, none).
 */
import { Config, Effect, Layer, Logger, References } from "effect"
import type { LogLevel } from "effect"

const LEVELS: ReadonlyArray<LogLevel.LogLevel> = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"]

export const parseLogLevel = (raw: string): LogLevel.LogLevel | undefined =>
  LEVELS.find((l) => l.toLowerCase() === raw.trim().toLowerCase() || (raw.trim().toLowerCase() === "warning" && l === "Warn"))

export const LoggingLayer = Layer.unwrap(
  Effect.gen(function*() {
    const format = yield* Config.Literals(["json", "pretty"], "LOG_FORMAT").pipe(Config.withDefault("json" as const))
    const raw = yield* Config.String("LOG_LEVEL").pipe(Config.withDefault("info"))
    const level = parseLogLevel(raw)
    if (level === undefined) return yield* Effect.die(new Error(`LOG_LEVEL '${raw}' is not one of ${LEVELS.join(", ")}`))
    return Layer.mergeAll(
      Logger.layer([format === "json" ? Logger.consoleJson : Logger.consolePretty()]),
      Layer.succeed(References.MinimumLogLevel, level)
    )
  })
)
