/**
 * Starts the real collector HTTP server (port 0) on real Redis for a test, and stops it;
 * `testCollectors` does both for a whole test file.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Exit, Layer, Metric, References, Scope } from "effect"
import { HttpServer } from "effect/http"
import { Redis } from "ioredis"
import { afterAll } from "vitest"
import { decodeEnvelopeJson, type RawEventEnvelope } from "../../src/domain/Envelope.ts"
import { primaryStreamKey, spoolStreamKey } from "../../src/domain/Streams.ts"
import { AppConfig, type AppConfigValues } from "../../src/layers/AppConfig.ts"
import { HealthSource } from "../../src/http/Health.ts"
import { CollectorRoutes, serveHttp } from "../../src/http/Server.ts"
import { EventQueue } from "../../src/layers/EventQueue.ts"
import { parseLogLevel } from "../../src/layers/Logging.ts"
import { PrimaryRedis } from "../../src/layers/PrimaryRedis.ts"
import { SiteRegistry } from "../../src/layers/SiteRegistry.ts"
import { SpoolRedis } from "../../src/layers/SpoolRedis.ts"
import { fieldValue } from "../../src/layers/StreamStore.ts"
import { ProbeAndDrain } from "../../src/programs/ProbeAndDrain.ts"

/** The collector's routes with their services, given an EventQueue and AppConfig. */
const CollectorHttp = serveHttp(CollectorRoutes).pipe(Layer.provide(HealthSource.collector))

/**
 * The queue, with its probe + drain workflow, and the site registry, on the live Redis pair
 * (configured URLs or embedded servers).
 */
const LiveQueue = ProbeAndDrain.pipe(
  Layer.provideMerge(Layer.merge(EventQueue.layer, SiteRegistry.layer)),
  Layer.provide([PrimaryRedis.layer, SpoolRedis.layer])
)
import { REDIS_URL } from "./services.ts"

/** Tests log warnings and worse unless TEST_LOG_LEVEL says otherwise. */
export const testLogLevel = Layer.succeed(References.MinimumLogLevel, parseLogLevel(process.env["TEST_LOG_LEVEL"] ?? "warn") ?? "Warn")

/** The suite's Redis (test/support/services.ts); tests share it, each with its own prefix. */
export const SHARED_REDIS = REDIS_URL

export interface RunningCollector {
  readonly baseUrl: string
  readonly prefix: string
  readonly close: () => Promise<void>
  readonly queue: EventQueue["Service"]
}

/** The tracking API's endpoints (docs/api.md). */
export const TRACKING_PATHS = [
  "/track/view",
  "/track/engagement",
  "/track/interaction",
  "/track/event",
  "/track/batch",
  "/track/conversion",
  "/track/funnel",
  "/track/registration-funnel"
] as const

export const uniquePrefix = (name: string) => `test:${name}:${randomUUID().slice(0, 8)}`

export const startCollector = async (overrides: Partial<AppConfigValues> = {}): Promise<RunningCollector> => {
  const prefix = overrides.streamPrefix ?? uniquePrefix("collector")
  const config = AppConfig.layerWith({
    port: 0,
    host: "127.0.0.1",
    primaryRedisUrl: SHARED_REDIS,
    spoolRedisUrl: SHARED_REDIS,
    streamPrefix: prefix,
    ...overrides
  })
  const app = Layer.mergeAll(CollectorHttp, LiveQueue).pipe(
    Layer.provideMerge(LiveQueue),
    Layer.provideMerge(config),
    Layer.provide(testLogLevel),
    // each collector counts in its own registry, as a separate process would
    Layer.provide(Layer.sync(Metric.MetricRegistry, () => new Map()))
  )
  const scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(app, scope))
  const server = Context.get(context, HttpServer.HttpServer)
  const queue = Context.get(context, EventQueue)
  await Effect.runPromise(queue.probe)
  const address = server.address
  if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    prefix,
    queue,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Every envelope in a stream, decoded with the shared Schema (throws on a bad one). */
export const readStream = async (redis: Redis, key: string): Promise<Array<RawEventEnvelope>> => {
  const rows = await redis.xrange(key, "-", "+")
  return rows.map(([, fields]) => {
    const exit = decodeEnvelopeJson(fieldValue(fields))
    if (exit._tag !== "Success") throw new Error(`undecodable envelope in ${key}`)
    return exit.value
  })
}

export const primaryEnvelopes = (redis: Redis, prefix: string) => readStream(redis, primaryStreamKey(prefix))
export const spoolEnvelopes = (redis: Redis, prefix: string) => readStream(redis, spoolStreamKey(prefix))

export const post = (
  baseUrl: string,
  path: string,
  body: unknown,
  init: { headers?: Record<string, string>; raw?: string | Uint8Array; contentType?: string | null } = {}
) => {
  const headers: Record<string, string> = { ...init.headers }
  if (init.contentType !== null) headers["content-type"] = init.contentType ?? "application/json"
  return fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers,
    body: init.raw ?? JSON.stringify(body)
  })
}

export const cleanupKeys = async (redis: Redis, prefix: string) => {
  await redis.del(primaryStreamKey(prefix), spoolStreamKey(prefix))
}

/**
 * The collectors of one test file, on the suite's Redis; call it at the top level. `start` starts
 * one (`defaults` under its overrides). After the file's tests each is closed, and for each prefix
 * used (and each given to `removeAfterwards`) its streams and `keysOf(prefix)` are removed.
 */
export const testCollectors = (options: {
  readonly defaults?: Partial<AppConfigValues>
  readonly keysOf?: (prefix: string) => ReadonlyArray<string>
} = {}) => {
  const redis = new Redis(SHARED_REDIS)
  const started: Array<RunningCollector> = []
  const prefixes = new Set<string>()
  afterAll(async () => {
    for (const c of started) await c.close()
    for (const prefix of prefixes) {
      await cleanupKeys(redis, prefix)
      const more = options.keysOf?.(prefix) ?? []
      if (more.length > 0) await redis.del(...more)
    }
    redis.disconnect()
  })
  return {
    /** the suite's Redis, for the test's own reads and writes */
    redis,
    /** a collector; closing it early is fine (the afterAll does not close it again) */
    start: async (overrides: Partial<AppConfigValues> = {}): Promise<RunningCollector> => {
      const running = await startCollector({ ...options.defaults, ...overrides })
      let closing: Promise<void> | undefined
      const c = { ...running, close: () => (closing ??= running.close()) }
      started.push(c)
      prefixes.add(c.prefix)
      return c
    },
    /** a prefix the test used without a collector, cleaned up with the others */
    removeAfterwards: (prefix: string) => void prefixes.add(prefix)
  }
}
