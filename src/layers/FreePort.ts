import { createServer } from "node:net"
import { Effect } from "effect"

/** A port the OS reports free on 127.0.0.1 right now (listened on and closed again). */
export const osFreePort: Effect.Effect<number> = Effect.callback<number>((resume) => {
  const server = createServer()
  server.unref()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Picks ports from `ask` (the OS), never one of a call's `avoid` and never one it handed out
 * before. A port is free only until its server binds it: an embedded PostgreSQL binds seconds
 * after its port is chosen (initdb runs first), and the servers of one `serve` start side by side,
 * so the OS could hand the same port to two of them, or to PostgreSQL and then to Spoolway's own
 * HTTP listener (`PORT`).
 */
export const makePortPicker = (ask: Effect.Effect<number>) => {
  const handedOut = new Set<number>()
  return Effect.fn("freePort")(function*(avoid: ReadonlyArray<number> = []) {
    for (;;) {
      const port = yield* ask
      if (avoid.includes(port) || handedOut.has(port)) continue
      handedOut.add(port)
      return port
    }
  })
}

/** A free TCP port on 127.0.0.1 for an embedded server (see {@link makePortPicker}); callers pass `PORT` in `avoid`. */
export const freePort = makePortPicker(osFreePort)
