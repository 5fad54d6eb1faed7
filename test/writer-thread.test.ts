/**
 * The writer in a worker thread (src/main/WriterThread.ts, `serve --role all`): a thread
 * that crashes is restarted, and every entry — written before the crash, pending at the crash,
 * added after it — is stored exactly once. Real Redis, a fresh PostgreSQL database, the real
 * WriterWorker.ts (wrapped to throw once, test/support/crashingWriterWorker.ts).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, it } from "@effect/vitest"
import { type Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import * as Sql from "../src/layers/Sql.ts"
import { Writer } from "../src/programs/Writer.ts"
import * as WriterThread from "../src/main/WriterThread.ts"
import { testLogLevel } from "./support/collector.ts"
import { eventEnvelope, redis, REDIS_URL, testDatabase, xadd } from "./writerSupport.ts"

const waitUntil = (what: string, check: Effect.Effect<boolean>, timeoutMs = 20_000, every: Duration.Input = "50 millis") =>
  Effect.gen(function*() {
    const start = Date.now()
    while (!(yield* check)) {
      if (Date.now() - start > timeoutMs) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep(every)
    }
  })

it.live("a crashed writer thread is restarted; entries before, during and after the crash are stored exactly once", () =>
  Effect.gen(function*() {
    const db = yield* testDatabase("spoolway_wthread")
    const dataDir = mkdtempSync(join(tmpdir(), "spoolway-wthread-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
    const prefix = `wthread-${Math.random().toString(36).slice(2, 8)}`
    const streamKey = `${prefix}:events`
    const config = AppConfig.layerWith({
      databaseUrl: db.url,
      primaryRedisUrl: REDIS_URL,
      streamPrefix: prefix,
      dataDir,
      writerBlockMs: 50,
      writerBatchSize: 20,
      // far beyond the test's waits: entries the crashed thread held must be released to its
      // successor at the restart, not left to become idle
      writerClaimIdleMs: 120_000,
      writerClaimEveryMs: 200
    })
    const primary = PrimaryRedis.layerUrl(REDIS_URL).pipe(Layer.provide(config))
    const thread = WriterThread.layerWith({ entry: new URL("./support/crashingWriterWorker.ts", import.meta.url) }).pipe(
      Layer.provideMerge(primary),
      Layer.provide(config),
      Layer.provide(testLogLevel)
    )
    const sql = Sql.layerUrlNoMigrations(db.url, { maxConnections: 1 })
    const rowsOf = (ids: ReadonlyArray<string>) =>
      Effect.flatMap(SqlClient.SqlClient, (client) =>
        client.unsafe<{ id: string; n: number }>(
          "SELECT id::text AS id, count(*)::int AS n FROM raw_events WHERE id = ANY($1::uuid[]) GROUP BY id",
          [ids]
        )).pipe(Effect.provide(sql), Effect.orDie)

    yield* Effect.gen(function*() {
      const writer = yield* Writer
      const firstConsumer = (yield* writer.snapshot).consumer
      // a backlog, and more entries until the thread crashes — which it does while holding some
      // (a batch read ahead is not acknowledged for a while); the supervisor releases what the
      // dead one held and starts another one, which takes it over at once
      const crashed = () => existsSync(join(dataDir, "crashed-once"))
      const before = Array.from({ length: 1000 }, (_, i) => eventEnvelope({ payload: { eventType: `backlog-${i}` } }))
      yield* xadd(streamKey, before)
      while (!crashed()) {
        if (before.length > 50_000) return yield* Effect.die(new Error("the writer thread never crashed"))
        const more = Array.from({ length: 10 }, (_, i) => eventEnvelope({ payload: { eventType: `before-${before.length + i}` } }))
        before.push(...more)
        yield* xadd(streamKey, more)
        yield* Effect.sleep("5 millis")
      }
      // the dead thread held entries (read, not committed) — the case this test is about
      const held = yield* redis((c) => c.xpending(streamKey, `${prefix}:writers`) as Promise<Array<unknown>>)
      assert.isAbove(Number(held[0]), 0)
      // the restarted thread runs under the same consumer name: a new thread is told by its
      // counters starting again (it reports written 0 when ready)
      yield* waitUntil("a new writer thread", Effect.map(writer.snapshot, (s) => s.written === 0))
      assert.strictEqual((yield* writer.snapshot).consumer, firstConsumer)

      const after = Array.from({ length: 20 }, (_, i) => eventEnvelope({ payload: { eventType: `after-${i}` } }))
      yield* xadd(streamKey, after)
      const ids = [...before, ...after].map((e) => e.eventId)
      yield* waitUntil("every entry in raw_events", Effect.map(rowsOf(ids), (rows) => rows.length === ids.length))
      const rows = yield* rowsOf(ids)
      assert.deepStrictEqual(rows.filter((r) => r.n !== 1), [])
      assert.strictEqual(rows.length, ids.length)
      // one consumer in the group: the dead thread's name is the live one's
      const consumers = yield* redis((c) => c.xinfo("CONSUMERS", streamKey, `${prefix}:writers`) as Promise<Array<Array<unknown>>>)
      assert.deepStrictEqual(consumers.map((c) => c[1]), [firstConsumer])
    }).pipe(Effect.provide(thread))

    // the scope closed: the thread stopped and left the group; nothing is left pending, and no
    // dead consumer stays behind
    const pending = yield* redis((c) => c.xpending(streamKey, `${prefix}:writers`) as Promise<Array<unknown>>)
    assert.strictEqual(Number(pending[0]), 0)
    assert.deepStrictEqual(yield* redis((c) => c.xinfo("CONSUMERS", streamKey, `${prefix}:writers`)), [])
    yield* redis((c) => c.del(streamKey))
  }).pipe(Effect.provide(PrimaryRedis.layerUrl(REDIS_URL).pipe(Layer.provide(AppConfig.layerWith({})))), Effect.scoped), { timeout: 60_000 })
