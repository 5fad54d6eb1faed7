/**
 * Redis connections (ioredis) and the one error of every Redis command Spoolway sends: the
 * collector's queue (StreamStore.ts) and the writer's consumer (StreamConsumer.ts) alike.
 */
import { Effect, Schema } from "effect"
import { Cluster, Redis, ReplyError } from "ioredis"

/**
 * A Redis command failed or timed out. `target`: the store ("primary", "spool") or stream key.
 * `notWritten: true` when the command is known to have changed nothing (it was never sent, or
 * the server refused it before running it); absent, a write may have landed (a timeout, a
 * connection lost after sending) — the collector never answers 503 for such a write.
 */
export class RedisError extends Schema.TaggedError<RedisError>()("RedisError", {
  target: Schema.String,
  operation: Schema.String,
  message: Schema.String,
  notWritten: Schema.optionalKey(Schema.Boolean)
}) {}

/** Server replies that refuse a command before it runs (nothing written). */
const REFUSED_BEFORE_RUNNING = /^(OOM|MISCONF|READONLY|NOREPLICAS|LOADING|BUSY|MASTERDOWN|NOAUTH|NOPERM|EXECABORT|WRONGTYPE|CLUSTERDOWN|MOVED|ASK|TRYAGAIN|CROSSSLOT)\b/

/** ioredis's answers to a command issued while disconnected, with the offline queue off: never sent. */
const NOT_SENT = ["Stream isn't writeable", "Cluster isn't ready"]

/**
 * True when `cause` (what an ioredis write rejected with) proves the write changed nothing: it was
 * never sent, or the server refused it before running it. Anything else (a timeout, a connection
 * closed after sending, an error in the middle of a script) may have written.
 */
export const provesNotWritten = (cause: unknown): boolean => {
  if (!(cause instanceof Error)) return false
  if (NOT_SENT.some((prefix) => cause.message.startsWith(prefix))) return true
  return cause instanceof ReplyError && REFUSED_BEFORE_RUNNING.test(cause.message)
}

/** The message of whatever a Redis call threw or rejected with. */
export const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/**
 * An ioredis client for the request path, released with its scope. It never queues
 * commands while disconnected (`enableOfflineQueue: false`) and never retries a command
 * (`maxRetriesPerRequest: 0`): a failure must surface at once so the route can fail
 * over to the spool. It keeps reconnecting in the background every ≤ 250 ms, so a
 * restarted server is found by the next probe.
 */
export const acquireRedis = (url: string, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Redis(url, {
        connectionName: `spoolway-${name}`,
        enableOfflineQueue: false,
        // no auto-pipelining: it holds new commands back until the running pipeline's reply
        // arrived and makes V8 promote ≈ 1 KB per command to the old generation (long
        // scavenge pauses → p99); `coalesceWrites` batches the writes instead
        enableAutoPipelining: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 2000,
        retryStrategy: (times) => Math.min(times * 50, 250)
      }).on("error", () => {
        // connection errors are reported by the commands that fail and by the probe
      })
    ).pipe(Effect.tap(awaitFirstConnect)),
    (client) => Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect()))
  )

/**
 * Commands issued from now until the end of this event-loop turn go out in one socket write
 * (cork now, uncork in `setImmediate`): all tracking requests read in one poll phase share a
 * syscall, as with pipelining, but each command is sent as soon as the turn ends and nothing
 * waits for an earlier reply. Call it right before issuing a command on the request path.
 */
export const coalesceWrites = (client: Redis | Cluster): void => {
  // a Cluster has one connection per node, and no `stream` of its own
  const stream = (client as Partial<Redis>).stream as Redis["stream"] | undefined
  if (stream === undefined || stream.writableCorked > 0 || !stream.writable) return
  stream.cork()
  setImmediate(uncork, stream)
}
const uncork = (stream: Redis["stream"]) => stream.uncork()

/**
 * Gives a new client up to 2 s to connect, so the first probe does not fail merely
 * because the socket is still opening. A server that is down is not an error here:
 * the route starts unhealthy and the probe finds it later.
 */
const awaitFirstConnect = (client: Redis) =>
  Effect.callback<void>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    const done = () => {
      clearTimeout(timer)
      client.off("ready", done)
      client.off("error", done)
      resume(Effect.void)
    }
    const timer = setTimeout(done, 2000)
    client.once("ready", done)
    client.once("error", done)
  })

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

/** `host:port` → ioredis cluster node. */
const clusterNode = (seed: string) => {
  const colon = seed.lastIndexOf(":")
  return colon < 0 ? { host: seed, port: 6379 } : { host: seed.slice(0, colon), port: Number(seed.slice(colon + 1)) }
}

/**
 * An ioredis Cluster client for the partitioned event log (PRIMARY_REDIS_CLUSTER), released with
 * its scope. Like `acquireRedis`: no offline queue (a command while the cluster is not ready fails
 * at once, "Cluster isn't ready"), no retries per node command; it follows MOVED/ASK and refreshes
 * the slot map after a failover by itself.
 */
export const acquireCluster = (seeds: ReadonlyArray<string>, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Cluster(seeds.map(clusterNode), {
        enableOfflineQueue: false,
        enableAutoPipelining: false,
        scaleReads: "master",
        slotsRefreshTimeout: 2000,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        clusterRetryStrategy: (times) => Math.min(100 + times * 50, 1000),
        redisOptions: {
          connectionName: `spoolway-${name}`,
          maxRetriesPerRequest: 0,
          connectTimeout: 2000
        }
      }).on("error", () => {
        // reported by the commands that fail and by the probe
      })
    ).pipe(Effect.tap(awaitClusterReady)),
    (client) => Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect()))
  )

/** A Cluster client for blocking reads (XREADGROUP BLOCK): may queue while the slot map reloads. */
export const acquireBlockingCluster = (seeds: ReadonlyArray<string>, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Cluster(seeds.map(clusterNode), {
        scaleReads: "master",
        clusterRetryStrategy: (times) => Math.min(100 + times * 50, 1000),
        redisOptions: { connectionName: `spoolway-${name}`, maxRetriesPerRequest: null }
      }).on("error", () => {})
    ),
    (client) => Effect.sync(() => client.disconnect())
  )

/** Up to 5 s for the slot map, so the first probe does not fail merely because it is loading. */
const awaitClusterReady = (client: Cluster) =>
  Effect.callback<void>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    const done = () => {
      clearTimeout(timer)
      client.off("ready", done)
      resume(Effect.void)
    }
    const timer = setTimeout(done, 5000)
    client.once("ready", done)
  })
