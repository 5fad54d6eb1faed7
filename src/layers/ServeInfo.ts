/**
 * `<dataDir>/serve.json`: where a running `spoolway serve` of this data dir listens, so that
 * `spoolway status` (and an operator) finds it without being told PORT again. Written once the
 * HTTP server listens, removed when it stops; a file left by a killed run is recognised by its
 * pid no longer being a running node process. It holds no secret (the embedded PostgreSQL's URL
 * is derived from the data dir by whoever may read `pg.password`).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { AppConfig } from "./AppConfig.ts"
import { isRunning } from "./Pids.ts"
import { PrimaryRedis } from "./PrimaryRedis.ts"

export interface ServeInfo {
  readonly pid: number
  readonly role: string
  /** the address to reach its HTTP API (a wildcard listener is reached on loopback) */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly startedAt: string
  /** the primary Redis it uses, password removed */
  readonly primaryRedisUrl: string
}

const FILE = "serve.json"

/** `redis://user:secret@host` → `redis://user@host` */
export const withoutPassword = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password === "") return url
    parsed.password = ""
    return parsed.toString()
  } catch {
    return url
  }
}

const reachableHost = (host: string) =>
  host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host

const readFile = (dataDir: string): ServeInfo | undefined => {
  try {
    return JSON.parse(readFileSync(resolve(dataDir, FILE), "utf8")) as ServeInfo
  } catch {
    return undefined
  }
}

/** The `serve` running on `dataDir`, if any. */
export const readServeInfo = (dataDir: string): ServeInfo | undefined => {
  const info = readFile(dataDir)
  return info !== undefined && isRunning(info.pid, "node") ? info : undefined
}

/** Records this process as the `serve` of its data dir while the layer lives (needs the HTTP server). */
export const layer = (role: string) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const config = yield* AppConfig
    const server = yield* HttpServer.HttpServer
    const primary = yield* PrimaryRedis
    const address = server.address
    const host = config.host
    // the port actually bound (PORT=0 picks one)
    const port = address._tag === "UnixPathAddress" ? config.port : address.port
    const info: ServeInfo = {
      pid: process.pid,
      role,
      url: `http://${reachableHost(host)}:${port}`,
      host,
      port,
      startedAt: new Date().toISOString(),
      primaryRedisUrl: withoutPassword(primary.url)
    }
    const file = resolve(config.dataDir, FILE)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        mkdirSync(config.dataDir, { recursive: true })
        writeFileSync(file, JSON.stringify(info, null, 2) + "\n")
      }),
      () =>
        Effect.sync(() => {
          // only our own: another serve may have taken the data dir since (one without embedded servers)
          if (readFile(config.dataDir)?.pid === process.pid) rmSync(file, { force: true })
        })
    )
  }))
