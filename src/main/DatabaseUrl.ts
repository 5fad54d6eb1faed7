/**
 * `spoolway status --database-url`: only the URL of the database, for scripts and psql:
 *   psql "$(spoolway status --database-url)"
 * DATABASE_URL when set (password hidden), else the embedded PostgreSQL of the data dir while a
 * `spoolway serve` runs it (it is never started for this).
 */
import { Console, Effect } from "effect"
import { CliError, Flag } from "effect/cli"
import { AppConfig } from "../layers/AppConfig.ts"
import { databaseOf } from "../programs/Status.ts"

export const databaseUrlFlag = Flag.Boolean("database-url").pipe(
  Flag.withDescription("print only the database URL (for psql)"),
  Flag.withDefault(false)
)

export const printDatabaseUrl = Effect.gen(function*() {
  const config = yield* AppConfig
  const database = databaseOf(config.databaseUrl, config.dataDir)
  if (database.url === null) {
    const message = "no database to reach: the embedded PostgreSQL runs while spoolway serve does (or set DATABASE_URL)"
    return yield* Effect.fail(new CliError.UserError({ cause: new Error(message), userMessage: message }))
  }
  yield* Console.log(database.url)
}).pipe(Effect.provide(AppConfig.layer))
