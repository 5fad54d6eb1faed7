/**
 * Start-up failures a user causes and can fix — `redis-server` missing, the HTTP port taken,
 * the data dir owned by another `serve`, an embedded server that would not start — end the
 * process with one line on stderr and exit code 1, without a stack trace. Anything else (a
 * bug) is still reported in full by the runtime.
 */
import { createServer } from "node:net"
import { Cause, Console, Effect, Runtime, Schema } from "effect"
import { HttpServerError } from "effect/http"
import { EmbeddedServerError } from "../layers/EmbeddedServerError.ts"
import { ClusterConfigError } from "../layers/PrimaryCluster.ts"

/** HOST:PORT cannot be listened on. */
export class ListenError extends Schema.TaggedError<ListenError>()("ListenError", {
  message: Schema.String
}) {}

/** What to tell the user when listening on `host:port` failed with `error`. */
export const listenProblem = (host: string, port: number, error: NodeJS.ErrnoException): string => {
  switch (error.code) {
    case "EADDRINUSE":
      return `port ${port} on ${host} is already in use by another program; choose another port with PORT=<port> ` +
        `(e.g. PORT=${port === 65_535 ? port - 1 : port + 1} npm start)`
    case "EACCES":
      return `no permission to listen on ${host}:${port} (ports below 1024 need privileges); choose another port with PORT=<port>`
    case "EADDRNOTAVAIL":
      return `HOST=${host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 (all addresses) or one of its own`
    default:
      return `cannot listen on ${host}:${port}: ${error.message}`
  }
}

/**
 * Fails with a {@link ListenError} when `host:port` cannot be listened on, so that `serve`
 * says so before it starts Redis, PostgreSQL and the writer (port 0 = any free port: no check).
 */
export const checkListenable = (host: string, port: number): Effect.Effect<void, ListenError> =>
  port === 0 ? Effect.void : Effect.callback<void, ListenError>((resume) => {
    const server = createServer()
    server.once("error", (error) => resume(Effect.fail(new ListenError({ message: listenProblem(host, port, error) }))))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resume(Effect.void)))
  })

/** The one line for an expected start-up failure in `cause`, if it holds one. */
export const expectedFailure = (cause: Cause.Cause<unknown>): string | undefined => {
  for (const reason of cause.reasons) {
    if (!Cause.isFailReason(reason)) continue
    const error = reason.error
    if (error instanceof ListenError || error instanceof EmbeddedServerError || error instanceof ClusterConfigError) return error.message
    // the port was taken between the check and the server's own listen
    if (error instanceof HttpServerError.ServeError && error.cause instanceof Error) {
      const cause = error.cause as NodeJS.ErrnoException & { address?: string; port?: number }
      if (cause.code !== undefined && cause.syscall === "listen") {
        return listenProblem(cause.address ?? "?", cause.port ?? 0, cause)
      }
    }
  }
  return undefined
}

/** An error already told to the user: the runtime exits 1 without logging it again. */
class Reported extends Error {
  override readonly [Runtime.errorReported] = false
}

/** Expected start-up failures of `effect` → one line on stderr, then exit 1 (see the module doc). */
export const reportStartupFailures = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Reported, R> =>
  Effect.catchCause(effect, (cause): Effect.Effect<never, E | Reported> => {
    const line = expectedFailure(cause)
    return line === undefined
      ? Effect.failCause(cause)
      : Console.error(`spoolway: ${line}`).pipe(Effect.andThen(Effect.fail(new Reported(line))))
  })
