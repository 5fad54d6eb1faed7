/**
 * `spoolway status` finds the `serve` running on the same data dir — its real port, not PORT —
 * and prints the URL of its embedded PostgreSQL, one a user can connect with (issue 13).
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, expect, it } from "vitest"
import { SHARED_REDIS } from "./support/collector.ts"
import { runCliInProcess } from "./support/cliInProcess.ts"
import { runCli, startDaemon } from "./support/daemon.ts"

const redis = new Redis(SHARED_REDIS)
const dataDir = mkdtempSync(join(tmpdir(), "spoolway-status-"))
const prefix = `test:status:${randomUUID().slice(0, 8)}`
afterAll(async () => {
  await redis.del(`${prefix}:events`, `${prefix}:spool`)
  redis.disconnect()
  rmSync(dataDir, { recursive: true, force: true })
})

const env = { SPOOLWAY_DATA_DIR: dataDir, PRIMARY_REDIS_URL: SHARED_REDIS, SPOOL_REDIS_URL: SHARED_REDIS, STREAM_PREFIX: prefix }

it("finds the running serve of the data dir and prints a DATABASE_URL that connects", async () => {
  // no serve yet: the embedded database is not running, and status says so without starting it
  const before = await runCli(["status", "--database-url"], env)
  expect(before.code).toBe(1)
  expect(before.out).toContain("no database to reach")

  const daemon = await startDaemon(["serve"], env)
  try {
    // PORT is not given again (another value, even): the serve's own port is found
    // the status calls run the CLI's program in this process, except the first and the last
    const { code, out } = await runCliInProcess(["status", "--json"], { ...env, PORT: "1" })
    expect(code, out).toBe(0)
    const report = JSON.parse(out.slice(out.indexOf("{")))
    expect(report.daemon).toMatchObject({
      url: `http://127.0.0.1:${daemon.port}/health`,
      reachable: true,
      found: "serve.json",
      pid: daemon.child.pid,
      role: "all"
    })
    expect(report.database.source).toBe("embedded")
    expect(report.database.url).toMatch(/^postgres:\/\/spoolway:[^@]+@127\.0\.0\.1:\d+\/spoolway$/)

    const text = await runCliInProcess(["status"], { ...env, PORT: "1" })
    expect(text.out).toMatch(new RegExp(`daemon\\s+up \\(http://127.0.0.1:${daemon.port}/health\\), pid ${daemon.child.pid}, role all`))
    expect(text.out).toContain(report.database.url)

    const only = await runCliInProcess(["status", "--database-url"], { ...env, PORT: "1" })
    expect(only.code).toBe(0)
    expect(only.out.trim()).toBe(report.database.url)
    // what a user does with it: connect and look at their data
    const tables = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_tables WHERE tablename IN ('raw_events', 'sites')`
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(only.out.trim()), maxConnections: 1 }))))
    expect(tables[0]!.n).toBe(2)
  } finally {
    expect(await daemon.stop("SIGTERM")).toBe(0)
  }
  // the serve is gone: status falls back to HOST:PORT
  const after = await runCli(["status", "--json"], { ...env, PORT: "1" })
  expect(JSON.parse(after.out.slice(after.out.indexOf("{"))).daemon).toMatchObject({ reachable: false, found: "HOST:PORT" })
}, 180_000)
