/**
 * Migrations and partition maintenance (issue 5): a fresh database and an already-migrated one
 * both start cleanly; partitions are created ahead and rows that fell into DEFAULT are moved;
 * retention drops old partitions; poison rows can be replayed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import * as Sql from "../src/layers/Sql.ts"
import { applyRetention, ensurePartitions } from "../src/layers/Partitions.ts"
import { replayFailures } from "../src/programs/ReplayFailures.ts"
import { cleanupKeys, query, REDIS_URL, testDatabase, viewEnvelope } from "./writerSupport.ts"

const tables = [
  "aggregated_metrics",
  "corps",
  "daily_metrics",
  "domains",
  "ingest_failures",
  "raw_events",
  "raw_events_default",
  "session_fingerprints",
  "site_registry",
  "sites",
  "spoolway_migrations",
  "visitor_salts",
  "visitor_seen"
]

describe("migrations", () => {
  it.live("a migration numbered below the newest applied one but never applied is applied (the migrator alone skips it)", () =>
    Effect.gen(function*() {
      const db = yield* testDatabase()
      const tablesNow = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return (yield* sql<{ name: string }>`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`).map((r) => r.name)
      })
      // a database migrated while 0007 had landed and 0006 had not: its table and row are missing
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DROP TABLE site_shares`
        yield* sql`DELETE FROM spoolway_migrations WHERE migration_id = 6`
      }).pipe(Effect.provide(Sql.layerUrl(db.url)))
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [[6, "site_shares"]])
      const after = yield* tablesNow.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.include(after, "site_shares")
      // and once is enough
      const again = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(again, [])
    }), { timeout: 60_000 })

  it.live("a fresh database and an already-migrated one both start cleanly", () =>
    Effect.gen(function*() {
      const db = yield* testDatabase()
      const first = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ name: string }>`
          SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`
        return rows.map((r) => r.name)
      }).pipe(Effect.provide(Sql.layerUrl(db.url)))
      for (const table of tables) assert.include(first, table)

      // second start: nothing to apply, no error
      const applied = yield* Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db.url)))
      assert.deepStrictEqual(applied, [])
      const again = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM spoolway_migrations`
      }).pipe(Effect.provide(Sql.layerUrl(db.url)))
      assert.strictEqual(again[0]!.n, Object.keys(Sql.migrations).length)

      // concurrent starts (several processes) are serialised by the migrator's lock
      const db2 = yield* testDatabase()
      const results = yield* Effect.all(
        [1, 2, 3].map(() => Sql.runMigrations.pipe(Effect.provide(Sql.layerUrlNoMigrations(db2.url)))),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(results.filter((r) => r.length === Object.keys(Sql.migrations).length).length, 1)
    }), { timeout: 60_000 })

  it.live("partitions are created ahead, DEFAULT rows are moved, retention drops old partitions and prunes visitor_sessions", () =>
    Effect.gen(function*() {
      const db = yield* testDatabase()
      yield* Effect.gen(function*() {
        // a row for a day without a partition lands in DEFAULT (inserts never fail)
        yield* query(
          `INSERT INTO raw_events (id, kind, event_type, session_id, "timestamp", received_at)
           VALUES (gen_random_uuid(), 'view', 'pageview', 's', now(), '2030-01-02T10:00:00Z')`
        )
        const where = `SELECT tableoid::regclass::text AS t FROM raw_events`
        assert.strictEqual((yield* query<{ t: string }>(where))[0]!.t, "raw_events_default")
        assert.strictEqual(yield* ensurePartitions("2030-01-01", 3), 3)
        assert.strictEqual(yield* ensurePartitions("2030-01-01", 3), 0)
        assert.strictEqual((yield* query<{ t: string }>(where))[0]!.t, "raw_events_p20300102")
        // ON CONFLICT still dedups the moved row (same id and received_at → same partition)
        const [row] = yield* query<{ id: string }>(`SELECT id::text AS id FROM raw_events`)
        const inserted = yield* query(
          `INSERT INTO raw_events (id, kind, event_type, session_id, "timestamp", received_at)
           VALUES ($1::uuid, 'view', 'pageview', 's', now(), '2030-01-02T10:00:00Z') ON CONFLICT DO NOTHING RETURNING id`,
          [row!.id]
        )
        assert.strictEqual(inserted.length, 0)

        // visitors' latest sessions older than the 7-day horizon go; newer ones stay
        yield* query(
          `INSERT INTO visitor_sessions (site_id, visitor_id_daily, session_id, started_at, last_seen_at)
           VALUES (1, '\\x01', '~a', '2029-12-28T09:00:00Z', '2029-12-28T10:00:00Z'),
                  (1, '\\x02', '~b', '2030-01-02T09:00:00Z', '2030-01-02T10:00:00Z')`
        )
        const result = yield* applyRetention({ nowMs: Date.parse("2030-01-05T12:00:00Z"), retentionDays: 3 })
        assert.deepStrictEqual(result.droppedPartitions, ["raw_events_p20300101"])
        assert.strictEqual(result.deletedVisitorSessions, 1)
        assert.deepStrictEqual(
          (yield* query<{ session_id: string }>(`SELECT session_id FROM visitor_sessions`)).map((r) => r.session_id),
          ["~b"]
        )
        const left = yield* query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'raw_events'::regclass ORDER BY 1`
        )
        assert.deepStrictEqual(left.map((r) => r.name), ["raw_events_default", "raw_events_p20300102", "raw_events_p20300103"])
      }).pipe(Effect.provide(Sql.layerUrl(db.url)))
    }), { timeout: 60_000 })

  it.live("replayFailures puts decodable poison envelopes back on the primary stream", () =>
    Effect.gen(function*() {
      const db = yield* testDatabase()
      const prefix = `wreplay-${Math.random().toString(36).slice(2, 8)}`
      const layer = Layer.mergeAll(
        Sql.layerUrl(db.url),
        PrimaryRedis.layerUrl(REDIS_URL),
        AppConfig.layerWith({ streamPrefix: prefix })
      )
      yield* Effect.gen(function*() {
        yield* cleanupKeys(`${prefix}:events`)
        const envelope = JSON.stringify(viewEnvelope())
        yield* query(
          `INSERT INTO ingest_failures (stream_key, entry_id, payload, error, attempts)
           VALUES ('k', '1-0', $1, 'boom', 6), ('k', '2-0', 'garbage', 'undecodable', 1)`,
          [envelope]
        )
        const result = yield* replayFailures()
        assert.deepStrictEqual(result, { replayed: 1, skippedUndecodable: 1, streamKey: `${prefix}:events` })
        const { client } = yield* PrimaryRedis
        const entries = yield* Effect.promise(() => client.xrange(`${prefix}:events`, "-", "+"))
        assert.strictEqual(entries.length, 1)
        assert.deepStrictEqual(entries[0]![1], ["e", envelope])
        const again = yield* replayFailures()
        assert.strictEqual(again.replayed, 0)
      }).pipe(Effect.scoped, Effect.provide(layer))
    }), { timeout: 60_000 })
})
