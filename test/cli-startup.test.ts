/**
 * What a new user sees when `npm start` / `npm test` cannot start: one line that names the cause
 * and the fix, exit code 1, no stack trace, nothing left running (src/main/StartupErrors.ts,
 * test/support/globalSetup.ts). And one version everywhere: package.json's.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startCollector } from "./support/collector.ts"
import { runCli } from "./support/daemon.ts"
import { REDIS_URL } from "./support/services.ts"
import { freePort } from "./support/redisProcess.ts"

const ROOT = resolve(import.meta.dirname, "..")
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version
/** A PATH with Node and nothing else: no redis-server. */
const PATH_WITHOUT_REDIS = dirname(process.execPath)

const dirs: Array<string> = []
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "spoolway-startup-"))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** The output has exactly one `spoolway: …` line and no stack frame; returns that line. */
const oneLine = (out: string): string => {
  const lines = out.split("\n").filter((line) => line.startsWith("spoolway: "))
  expect(lines, out).toHaveLength(1)
  expect(out, "no stack trace").not.toMatch(/^\s+at /m)
  return lines[0]!
}

/** `serve` with embedded defaults (no URLs), logging at info so that any start-up shows. */
const serve = (env: Record<string, string>) =>
  runCli(["serve"], { LOG_LEVEL: "info", PRIMARY_REDIS_URL: "", SPOOL_REDIS_URL: "", DATABASE_URL: "", ...env })

describe("serve: expected start-up failures", () => {
  it("redis-server missing from PATH: one line naming the install command, exit 1", async () => {
    const { code, out } = await serve({ PATH: PATH_WITHOUT_REDIS, SPOOLWAY_DATA_DIR: dataDir(), PORT: String(await freePort()) })
    expect(code, out).toBe(1)
    expect(oneLine(out)).toContain("apt-get install redis-server")
  })

  it("PRIMARY_REDIS_CLUSTER with a STREAM_PREFIX holding a brace, or STREAM_PARTITIONS out of range: one line naming the setting, exit 1", async () => {
    const base = { PRIMARY_REDIS_URL: REDIS_URL, SPOOL_REDIS_URL: REDIS_URL, PRIMARY_REDIS_CLUSTER: "127.0.0.1:1", SPOOLWAY_DATA_DIR: dataDir() }
    const prefix = await runCli(["serve", "--role", "collector"], { ...base, PORT: String(await freePort()), STREAM_PREFIX: "a{b}" })
    expect(prefix.code, prefix.out).toBe(1)
    expect(oneLine(prefix.out)).toContain("STREAM_PREFIX=a{b}")
    const partitions = await runCli(["serve", "--role", "collector"], { ...base, PORT: String(await freePort()), STREAM_PARTITIONS: "0" })
    expect(partitions.code, partitions.out).toBe(1)
    expect(oneLine(partitions.out)).toContain("STREAM_PARTITIONS=0")
  })

  it("the HTTP port already in use: one line naming the port and PORT=, before anything is started", async () => {
    const taken: Server = createServer()
    const port = await new Promise<number>((r) =>
      taken.listen(0, "127.0.0.1", () => r((taken.address() as { port: number }).port))
    )
    try {
      const { code, out } = await serve({ SPOOLWAY_DATA_DIR: dataDir(), PORT: String(port), HOST: "127.0.0.1" })
      expect(code, out).toBe(1)
      const line = oneLine(out)
      expect(line).toContain(`port ${port} on 127.0.0.1 is already in use`)
      expect(line).toContain("PORT=")
      expect(out, "no embedded server was started").not.toMatch(/embedded (redis-server|PostgreSQL)/)
    } finally {
      await new Promise((r) => taken.close(r))
    }
  })

  it("the data dir owned by another running serve: one line naming its pid and SPOOLWAY_DATA_DIR, exit 1", async () => {
    const dir = dataDir()
    // a live node process (this test worker) holds the data dir's lock
    writeFileSync(join(dir, "spoolway.pid"), `${process.pid}\n`)
    const { code, out } = await serve({ SPOOLWAY_DATA_DIR: dir, PORT: String(await freePort()) })
    expect(code, out).toBe(1)
    const line = oneLine(out)
    expect(line).toContain(`another 'spoolway serve' (pid ${process.pid})`)
    expect(line).toContain("SPOOLWAY_DATA_DIR")
    expect(out, "no embedded server was started").not.toMatch(/embedded (redis-server|PostgreSQL)/)
  })
})

describe("npm test without redis-server", () => {
  it("stops at once with one line naming the install command, exit 1", async () => {
    const vitest = join(ROOT, "node_modules", "vitest", "vitest.mjs")
    const { code, out } = await new Promise<{ code: number | null; out: string }>((done) => {
      let out = ""
      const child = spawn(process.execPath, [vitest, "run", "test/device.test.ts"], {
        cwd: ROOT,
        env: { ...process.env, PATH: PATH_WITHOUT_REDIS, TEST_DATABASE_URL: "", TEST_REDIS_URL: "" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      child.stdout.on("data", (d) => (out += d))
      child.stderr.on("data", (d) => (out += d))
      child.once("exit", (code) => done({ code, out }))
    })
    expect(code, out).toBe(1)
    const lines = out.split("\n").filter((line) => line.includes("redis-server"))
    expect(lines, out).toHaveLength(1)
    expect(lines[0]).toContain("npm test: redis-server was not found on PATH")
    expect(lines[0]).toContain("apt-get install redis-server")
    expect(out, "no test ran").not.toMatch(/Tests\s+\d+ passed/)
  })
})

describe("one version", () => {
  it("spoolway --version and /openapi.json both report package.json's version", async () => {
    const cli = await runCli(["--version"], {})
    expect(cli.code, cli.out).toBe(0)
    expect(cli.out.trim()).toBe(`spoolway v${VERSION}`)
    const collector = await startCollector()
    try {
      const openapi = await (await fetch(`${collector.baseUrl}/openapi.json`)).json() as { info: { version: string } }
      expect(openapi.info.version).toBe(VERSION)
    } finally {
      await collector.close()
    }
  })
})
