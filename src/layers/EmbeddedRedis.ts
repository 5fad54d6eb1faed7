/**
 * Zero-configuration Redis: starts a `redis-server` from PATH on a free loopback port
 * with its data under `<dataDir>/<name>/`, and stops it (SIGTERM, then SIGKILL after
 * 10 s) when the scope closes.
 *
 * Persistence: append-only file with `appendfsync always` by default: redis-server writes and
 * fsyncs a command's AOF record before it replies, so nothing it acknowledged is lost to a crash
 * of Spoolway, of redis-server or of the OS. `everysec` is faster but not loss-free, even without
 * an OS crash: while its once-a-second background fsync is still running (a busy disk),
 * redis-server holds new writes in memory for up to 2 s and replies all the same, so a kill of
 * redis-server then loses acknowledged events (docs/operations.md, "Durability settings").
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Duration, Effect, Layer, Schedule } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { Redis } from "ioredis"
import { AppConfig, type AppConfigValues } from "./AppConfig.ts"
import { EmbeddedServerError } from "./EmbeddedServerError.ts"
import { freePort } from "./FreePort.ts"
import { isRunning, stopPid } from "./Pids.ts"

export interface EmbeddedRedisOptions {
  readonly name: string
  readonly dataDir: string
  readonly appendonly: boolean
  readonly appendfsync?: "always" | "everysec" | "no"
  /** use a redis-server already running on this data dir instead of replacing it */
  readonly attach?: boolean
  /** ports the server must not take (Spoolway's own HTTP port, not yet listened on at start) */
  readonly avoidPorts?: ReadonlyArray<number>
}

/** `<dir>/runtime.json`: where the redis-server of this data dir listens (for attaching). */
const RUNTIME_FILE = "runtime.json"

/** The redis-server recorded in `dir`, if its pid is alive and still a redis-server. */
const runningOn = (dir: string): { readonly port: number; readonly pid: number } | undefined => {
  try {
    const { port, pid } = JSON.parse(readFileSync(resolve(dir, RUNTIME_FILE), "utf8")) as { port: number; pid: number }
    return isRunning(pid, "redis-server") ? { port, pid } : undefined
  } catch {
    return undefined
  }
}

/** Stops a redis-server left running on `dir` by a killed run: two servers must never share an AOF. */
const stopOrphan = (dir: string, name: string) =>
  Effect.gen(function*() {
    const orphan = runningOn(dir)
    if (orphan === undefined) return
    yield* Effect.logWarning(`stopping redis-server '${name}' left running by a previous run (pid ${orphan.pid})`)
    yield* stopPid(orphan.pid, "SIGTERM")
  })

export interface RunningRedis {
  readonly url: string
  readonly port: number
  readonly pid: number
}

export const REDIS_INSTALL_COMMAND = "Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`"

export const REDIS_INSTALL_HINT = `redis-server was not found on PATH. Install Redis ≥ 7 (${REDIS_INSTALL_COMMAND}), ` +
  "or point PRIMARY_REDIS_URL / SPOOL_REDIS_URL at a running Redis."

const waitForPing = (url: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null }).on("error", () => {})),
    (client) =>
      Effect.tryPromise(async () => {
        if (client.status !== "ready") {
          client.disconnect()
          await client.connect()
        }
        await client.ping()
      }).pipe(Effect.retry({ schedule: Schedule.spaced(Duration.millis(50)), times: 200 })),
    (client) => Effect.sync(() => client.disconnect())
  )

export const startEmbeddedRedis = Effect.fn("startEmbeddedRedis")(function*(options: EmbeddedRedisOptions) {
  const dir = resolve(options.dataDir, options.name)
  mkdirSync(dir, { recursive: true })
  const existing = options.attach === true ? runningOn(dir) : undefined
  if (existing !== undefined) {
    const url = `redis://127.0.0.1:${existing.port}`
    yield* Effect.logDebug(`attached to redis-server '${options.name}' on ${url} (pid ${existing.pid})`)
    return { url, port: existing.port, pid: existing.pid } satisfies RunningRedis
  }
  yield* stopOrphan(dir, options.name)
  const port = yield* freePort(options.avoidPorts)
  const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--save", "",
    "--appendonly", options.appendonly ? "yes" : "no",
    "--appendfsync", options.appendfsync ?? "always",
    "--logfile", "redis.log",
    "--daemonize", "no"
  ]
  const handle = yield* spawner.spawn(
    ChildProcess.make("redis-server", args, { stdout: "ignore", stderr: "ignore", stdin: "ignore", forceKillAfter: "10 seconds" })
  ).pipe(
    Effect.mapError(() => new EmbeddedServerError({ server: "redis-server", message: REDIS_INSTALL_HINT }))
  )
  const url = `redis://127.0.0.1:${port}`
  yield* waitForPing(url).pipe(
    Effect.mapError((cause) =>
      new EmbeddedServerError({
        server: "redis-server",
        message: `redis-server (${options.name}) did not answer on ${url}: ${String(cause)} — see ${dir}/redis.log`
      })
    )
  )
  writeFileSync(resolve(dir, RUNTIME_FILE), JSON.stringify({ port, pid: handle.pid }) + "\n")
  yield* Effect.logInfo(`embedded redis-server '${options.name}' on ${url} (pid ${handle.pid}, data ${dir})`)
  return { url, port, pid: handle.pid } satisfies RunningRedis
})

/**
 * A Redis service's layer: on the URL the config gives (`urlOf`), or, when it gives none, on an
 * embedded redis-server `name` under the data dir (append-only, the config's `appendfsync`,
 * attaching to a running one when `embeddedAttach`), stopped with the layer.
 */
export const configuredOrEmbeddedRedis = <A, E, R>(
  name: string,
  urlOf: (config: AppConfigValues) => string | undefined,
  layerUrl: (url: string) => Layer.Layer<A, E, R>
) =>
  Layer.unwrap(
    Effect.gen(function*() {
      const config = yield* AppConfig
      const url = urlOf(config)
      if (url !== undefined) return layerUrl(url)
      return Layer.unwrap(
        Effect.map(
          startEmbeddedRedis({
            name,
            dataDir: config.dataDir,
            appendonly: true,
            appendfsync: config.appendfsync,
            attach: config.embeddedAttach,
            avoidPorts: [config.port]
          }),
          (running) => layerUrl(running.url)
        )
      ).pipe(Layer.provide(NodeServices.layer))
    })
  )
