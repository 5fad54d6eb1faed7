/** The error of the embedded servers (EmbeddedRedis.ts, EmbeddedPostgres.ts) and of the processes that own them. */
import { Schema } from "effect"

/** An embedded server (redis-server, PostgreSQL) — or the writer thread — could not be started. */
export class EmbeddedServerError extends Schema.TaggedError<EmbeddedServerError>()("EmbeddedServerError", {
  server: Schema.String,
  message: Schema.String
}) {}
