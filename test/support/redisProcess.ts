/**
 * redis-server processes owned by one test (or one chaos run, chaos/cluster scenario): free
 * port, own dir, stopped by pid. `onSpawn` lets an owner that must stop everything it started on
 * any exit (chaos/procs.ts) track each child; `parentDir` puts the node's dir (and log) in the
 * owner's run directory.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"

const anyFreePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer()
    srv.once("error", () => resolve(false))
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)))
  })

let nextInRange = 0

/**
 * A free loopback port. With `SPOOLWAY_PORT_RANGE=<from>-<to>` (sessions sharing a machine each
 * use their own range) one from that range whose `port + 10000` (a cluster node's bus port) is
 * free too; otherwise any port the OS hands out.
 */
export const freePort = async (): Promise<number> => {
  const range = /^(\d+)-(\d+)$/.exec(process.env["SPOOLWAY_PORT_RANGE"] ?? "")
  if (range === null) return anyFreePort()
  const from = Number(range[1])
  const size = Number(range[2]) - from + 1
  for (let i = 0; i < size; i++) {
    const port = from + (nextInRange++ % size)
    if ((await canListen(port)) && (await canListen(port + 10_000))) return port
  }
  throw new Error(`no free port in SPOOLWAY_PORT_RANGE=${process.env["SPOOLWAY_PORT_RANGE"]}`)
}

export interface RedisProcess {
  readonly port: number
  readonly dir: string
  readonly url: string
  pid(): number | undefined
  start(): Promise<void>
  kill(signal?: NodeJS.Signals): Promise<void>
  cleanup(): Promise<void>
}

const ping = async (url: string) => {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export const redisProcess = async (
  options: {
    appendonly: boolean
    /** the AOF's fsync policy; default `always`, the embedded servers' (src/layers/EmbeddedRedis.ts) */
    appendfsync?: "always" | "everysec"
    port?: number
    extraArgs?: ReadonlyArray<string>
    parentDir?: string
    onSpawn?: (child: ChildProcess) => void
  }
): Promise<RedisProcess> => {
  const port = options.port ?? (await freePort())
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "spoolway-redis-"))
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const self: RedisProcess = {
    port,
    dir,
    url,
    pid: () => child?.pid,
    start: async () => {
      child = spawn("redis-server", [
        "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
        "--appendonly", options.appendonly ? "yes" : "no", "--appendfsync", options.appendfsync ?? "always", "--daemonize", "no",
        ...(options.extraArgs ?? [])
      ], { stdio: "ignore" })
      options.onSpawn?.(child)
      for (let i = 0; i < 200; i++) {
        if (await ping(url)) return
        await new Promise((r) => setTimeout(r, 25))
      }
      throw new Error(`redis-server on ${port} did not start`)
    },
    kill: async (signal = "SIGKILL") => {
      const c = child
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve())
        c.kill(signal)
      })
      child = undefined
    },
    cleanup: async () => {
      await self.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }
  await self.start()
  return self
}
