/**
 * The embedded Redis servers' durability (docs/operations.md, "Durability settings"): append-only
 * with `appendfsync always` unless REDIS_APPENDFSYNC says otherwise, so that an entry Redis
 * acknowledged survives a SIGKILL of redis-server. (`everysec` does not promise that: while its
 * background fsync runs, redis-server replies before it has written the AOF — the spool-failover
 * test lost 16 accepted events that way on a busy machine.)
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { afterEach, describe, expect, it } from "vitest"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { configuredOrEmbeddedRedis, startEmbeddedRedis } from "../src/layers/EmbeddedRedis.ts"

class EmbeddedUrl extends Context.Service<EmbeddedUrl, string>()("test/EmbeddedUrl") {}

const dirs: Array<string> = []
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true })
})
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "spoolway-redis-durability-"))
  dirs.push(dir)
  return dir
}

/** The embedded server `serve` would start for this environment: its CONFIG GET answers. */
const embeddedConfig = (env: Record<string, string>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const url = yield* EmbeddedUrl
        const client = new Redis(url, { lazyConnect: true })
        yield* Effect.promise(() => client.connect())
        const [, appendonly] = (yield* Effect.promise(() => client.config("GET", "appendonly"))) as [string, string]
        const [, appendfsync] = (yield* Effect.promise(() => client.config("GET", "appendfsync"))) as [string, string]
        client.disconnect()
        return { appendonly, appendfsync }
      }).pipe(
        Effect.provide(
          configuredOrEmbeddedRedis("primary", () => undefined, (url) => Layer.succeed(EmbeddedUrl, url)).pipe(
            Layer.provide(AppConfig.layer),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
          )
        )
      )
    )
  )

/** Four writers at once, as the collector's connections are, XADD until `pid` is SIGKILLed 400 ms in; the ids Redis acknowledged. */
const writeUntilKilled = async (url: string, pid: number): Promise<Array<string>> => {
  const client = new Redis(url, { maxRetriesPerRequest: 0 })
  client.on("error", () => {})
  const acknowledged: Array<string> = []
  let running = true
  const writer = async (w: number) => {
    for (let i = 0; running; i++) {
      try {
        acknowledged.push(await client.xadd("events", "*", "w", String(w), "i", String(i)) as string)
      } catch {
        return
      }
    }
  }
  const writers = [0, 1, 2, 3].map(writer)
  await new Promise((r) => setTimeout(r, 400))
  process.kill(pid, "SIGKILL")
  running = false
  await Promise.all(writers)
  client.disconnect()
  return acknowledged
}

describe("embedded Redis durability", () => {
  it("append-only with appendfsync always by default; REDIS_APPENDFSYNC=everysec opts out", async () => {
    expect(await embeddedConfig({ SPOOLWAY_DATA_DIR: dataDir() })).toEqual({ appendonly: "yes", appendfsync: "always" })
    expect(await embeddedConfig({ SPOOLWAY_DATA_DIR: dataDir(), REDIS_APPENDFSYNC: "everysec" })).toEqual({
      appendonly: "yes",
      appendfsync: "everysec"
    })
  }, 30_000)

  it("every entry the default server acknowledged is there after a SIGKILL and a restart on the same data dir", async () => {
    const dir = dataDir()
    const start = startEmbeddedRedis({ name: "primary", dataDir: dir, appendonly: true })
    const { acknowledged, stored } = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const first = yield* start
          const acknowledged = yield* Effect.promise(() => writeUntilKilled(first.url, first.pid))
          // a new server on the same dir (the killed one's runtime file names a dead pid)
          const second = yield* start
          const reader = new Redis(second.url)
          const stored = yield* Effect.promise(() => reader.xrange("events", "-", "+"))
          reader.disconnect()
          return { acknowledged, stored: new Set(stored.map(([id]) => id)) }
        })
      ).pipe(Effect.provide(NodeServices.layer))
    )
    expect(acknowledged.length).toBeGreaterThan(100)
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([])
  }, 30_000)
})
