/**
 * A failed start of the embedded PostgreSQL is reported (src/layers/EmbeddedPostgres.ts,
 * `stopAfterFailedStart`): a server that exits on its own — here a bad setting in its
 * postgresql.conf — used to leave the start waiting forever on the package's `stop`, so the
 * error never reached the user. Real PostgreSQL binaries, a fresh data directory.
 */
import { appendFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { startEmbeddedPostgres } from "../src/layers/EmbeddedPostgres.ts"

const dataDir = mkdtempSync(join(tmpdir(), "spoolway-pg-start-"))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

/** Starts the server on `dataDir` and stops it again (closing the scope); the start's exit. */
const startAndStop = async () => {
  const scope = await Effect.runPromise(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.provide(startEmbeddedPostgres({ dataDir }), scope))
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return exit
}

describe("embedded PostgreSQL start", () => {
  it("a server that exits at start (a bad setting) fails the start with PostgreSQL's own message", async () => {
    expect((await startAndStop())._tag).toBe("Success")
    appendFileSync(join(dataDir, "pg", "postgresql.conf"), "\nshared_buffers = nonsense\n")
    const exit = await startAndStop()
    expect(exit._tag).toBe("Failure")
    const message = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
    expect(message).toContain("PostgreSQL did not start")
    expect(message).toContain(`invalid value for parameter "shared_buffers": "nonsense"`)
  }, 60_000)
})
