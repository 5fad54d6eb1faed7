/** redis-server processes owned by one test: free port, own dir, stopped by pid. */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"

export const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer()
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })

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
  options: { appendonly: boolean; port?: number; extraArgs?: ReadonlyArray<string> }
): Promise<RedisProcess> => {
  const port = options.port ?? (await freePort())
  const dir = mkdtempSync(join(tmpdir(), "spoolway-redis-"))
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
        "--appendonly", options.appendonly ? "yes" : "no", "--appendfsync", "everysec", "--daemonize", "no",
        ...(options.extraArgs ?? [])
      ], { stdio: "ignore" })
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
