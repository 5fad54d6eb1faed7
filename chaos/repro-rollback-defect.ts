/**
 * Reproduction of chaos observation 1 (bench/README.md, "Chaos (issue 7)"): when the
 * connection of a `sql.withTransaction` dies mid-transaction (PostgreSQL shutdown / crash /
 * terminated backend), the ROLLBACK fails too and effect's `makeWithTransaction` turns that into
 * a defect (`Effect.orDie(rollback)`), so the exit's cause holds a Die — which `Effect.retry`
 * (as in Writer.ts `commit`) does not retry and `Effect.result` (as in `commitWork`) does not
 * catch: the writer loop ends with "writer: loop failed; restarting in 1 s".
 *
 *   npx node chaos/repro-rollback-defect.ts [postgres-url]   # default: the test PostgreSQL
 *
 * Only terminates its own backend (pg_terminate_backend of its own pid); changes no data.
 */
import { PgClient } from "@effect/sql-pg"
import { Data, Effect, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"

class BatchError extends Data.TaggedError("BatchError")<{ readonly message: string }> {}

const url = process.argv[2] ?? process.env.TEST_PG_ADMIN_URL ?? "postgres://root@127.0.0.1:5432/postgres"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  let attempts = 0
  const attempt = sql.withTransaction(Effect.gen(function*() {
    attempts++
    const rows = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
    // the transaction's own backend goes away, as in a server shutdown
    yield* sql`SELECT pg_terminate_backend(${rows[0]!.pid})`.pipe(Effect.ignore)
    yield* sql`SELECT 1`
  }).pipe(Effect.mapError((e) => new BatchError({ message: e.message })))).pipe(
    Effect.mapError((e) => (e._tag === "SqlError" ? new BatchError({ message: e.message }) : e))
  )
  const exit = yield* attempt.pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 3 }), Effect.result, Effect.exit)
  console.log(`attempts: ${attempts} (a retried failure would make 4)`)
  if (exit._tag === "Failure") {
    console.log(`escaped Effect.retry + Effect.result as: ${exit.cause.reasons.map((r) => r._tag).join(", ")}`)
  } else console.log(`caught as a failure: ${JSON.stringify(exit.value)}`)
})

await Effect.runPromise(program.pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))))
