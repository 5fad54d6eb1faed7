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

/** The first port `ask` gives that is not one of `avoid`. */
export const firstPortNotIn = Effect.fn("firstPortNotIn")(function*(
  ask: Effect.Effect<number>,
  avoid: ReadonlyArray<number>
) {
  for (;;) {
    const port = yield* ask
    if (!avoid.includes(port)) return port
  }
})

/**
 * A free TCP port on 127.0.0.1, never one of `avoid`. The embedded servers start before Spoolway
 * listens on its own HTTP port, so that port is still free when the OS is asked and could be
 * handed to PostgreSQL or Redis (then `serve` fails with "port … already in use"); their callers
 * pass it here.
 */
export const freePort = (avoid: ReadonlyArray<number> = []) => firstPortNotIn(osFreePort, avoid)
