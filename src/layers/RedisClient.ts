import { Effect } from "effect"
import { Redis } from "ioredis"

/**
 * An ioredis client for the request path, released with its scope. It never queues
 * commands while disconnected (`enableOfflineQueue: false`) and never retries a command
 * (`maxRetriesPerRequest: 0`): a failure must surface at once so the route can fail
 * over to the spool. It keeps reconnecting in the background (capped at 1 s).
 */
export const acquireRedis = (url: string, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Redis(url, {
        connectionName: `spoolway-${name}`,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 2000,
        retryStrategy: (times) => Math.min(times * 50, 1000)
      }).on("error", () => {
        // connection errors are reported by the commands that fail and by the probe
      })
    ),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

/** A client for blocking reads (XREADGROUP BLOCK): may queue while reconnecting. */
export const acquireBlockingRedis = (url: string, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Redis(url, {
        connectionName: `spoolway-${name}`,
        maxRetriesPerRequest: null,
        retryStrategy: (times) => Math.min(times * 50, 1000)
      }).on("error", () => {})
    ),
    (client) => Effect.sync(() => client.disconnect())
  )
