/** Tagged errors shared across programs. */
import { Schema } from "effect"

/** A stream store (primary or spool Redis) could not complete a command. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  store: Schema.String,
  message: Schema.String
}) {}

/** Neither the primary nor the spool would take the event(s): the client must retry (503). */
export class QueueUnavailable extends Schema.TaggedError<QueueUnavailable>()("QueueUnavailable", {
  reason: Schema.Literals(["primary_down", "spool_down", "spool_full"]),
  message: Schema.String
}) {}

/** An embedded server (redis-server, PostgreSQL) could not be started. */
export class EmbeddedServerError extends Schema.TaggedError<EmbeddedServerError>()("EmbeddedServerError", {
  server: Schema.String,
  message: Schema.String
}) {}
