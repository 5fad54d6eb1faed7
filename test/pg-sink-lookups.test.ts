/**
 * The PostgreSQL sink's lookups by key (server-side session assignment, PgSinkSessions.ts)
 * probe their table's index once per key of the batch, whatever the table's size: planned for
 * the actual keys (an unprepared statement, or a prepared one's first five executions), a plain
 * join made PostgreSQL hash the whole `visitor_sessions` table, `visits` or the day's
 * `raw_events` partition once per batch (a cost that grows with the data, not the batch).
 * Checked on the plans PostgreSQL makes for a batch-sized key list against filled tables.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { PgTypes } from "@effect/sql-pg"
import { byteaArray, int4Array, tsArray, uuidArray } from "../src/layers/PgSinkParams.ts"
import * as Statements from "../src/layers/PgSinkStatements.ts"
import { ensurePartitions } from "../src/layers/Partitions.ts"
import * as Sql from "../src/layers/Sql.ts"
import { testDatabase } from "./writerSupport.ts"

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly Plans?: ReadonlyArray<PlanNode>
}

/** Every (node type, relation) of a plan. */
const nodesOf = (node: PlanNode): Array<readonly [string, string | undefined]> => [
  [node["Node Type"], node["Relation Name"]],
  ...(node.Plans ?? []).flatMap(nodesOf)
]

const DAY = "2026-05-01"
const DAY_MS = Date.parse(`${DAY}T00:00:00.000Z`)
const VISITORS = 20_000
const EVENTS = 100_000
const BATCH = 500

describe("PostgreSQL sink lookups", () => {
  it.live("visitor sessions, earlier sessions and stored events: one index probe per key, no scan of the table", () =>
    Effect.gen(function*() {
      const db = yield* testDatabase()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* ensurePartitions(DAY, 1)
        // a day of events, and the visitors of the last days with one server-assigned visit each
        yield* sql.unsafe(`
          INSERT INTO raw_events (id, kind, event_type, session_id, received_at, "timestamp")
          SELECT gen_random_uuid(), 'view', 'pageview', 's' || g, t, t
          FROM generate_series(1, ${EVENTS}) g, LATERAL (SELECT '${DAY}'::timestamptz + g * interval '800 ms' AS t) x`)
        yield* sql.unsafe(`
          INSERT INTO visitor_sessions (site_id, visitor_id_daily, session_id, started_at, last_seen_at)
          SELECT 1 + g % 5, decode(md5(g::text), 'hex'), '~' || g, '${DAY}'::timestamptz, '${DAY}'::timestamptz
          FROM generate_series(1, ${VISITORS}) g`)
        yield* sql.unsafe(`
          INSERT INTO visits (site_id, session_id, visitor_id_daily, started_at, last_seen_at)
          SELECT 1 + g % 5, '~' || g, decode(md5(g::text), 'hex'), '${DAY}'::timestamptz, '${DAY}'::timestamptz
          FROM generate_series(1, ${VISITORS}) g`)
        yield* sql.unsafe(`ANALYZE raw_events, visitor_sessions, visits`)

        // a batch's keys: visitors known and new, events stored and new (as the sink sends them)
        const keys = yield* sql<{ site_id: number; vid: Uint8Array }>`
          SELECT 1 + g % 5 AS site_id, decode(md5(g::text), 'hex') AS vid FROM generate_series(1, ${VISITORS * 2}, ${(VISITORS * 2) / BATCH}) g`
        const stored = yield* sql<{ id: string; received_at: Date }>`
          SELECT id::text AS id, received_at FROM raw_events ORDER BY received_at DESC LIMIT ${BATCH / 2}`
        const ids = [...stored.map((r) => r.id), ...stored.map(() => crypto.randomUUID())]
        const times = [...stored, ...stored].map((r) => r.received_at.getTime())
        const keyParams = [int4Array(keys.map((k) => k.site_id)), byteaArray(keys.map((k) => k.vid))]
        const lookups: ReadonlyArray<readonly [string, string, ReadonlyArray<PgTypes.Parameter>]> = [
          ["visitor_sessions", Statements.SELECT_VISITOR_SESSIONS, keyParams],
          ["visits", Statements.SELECT_EARLIER_SESSIONS, keyParams],
          ["raw_events", Statements.SELECT_STORED_EVENTS, [
            uuidArray(ids),
            tsArray(times),
            PgTypes.timestamptz(Math.min(...times)),
            PgTypes.timestamptz(Math.max(...times))
          ]]
        ]
        for (const [table, statement, params] of lookups) {
          const [row] = yield* sql.unsafe<{ "QUERY PLAN": ReadonlyArray<{ Plan: PlanNode }> }>(`EXPLAIN (FORMAT JSON) ${statement}`, params)
          const nodes = nodesOf(row!["QUERY PLAN"][0]!.Plan)
          const onTable = nodes.filter(([, relation]) => relation !== undefined && relation.startsWith(table))
          const described = nodes.map(([type, relation]) => `${type}${relation === undefined ? "" : ` on ${relation}`}`).join(", ")
          assert.isAbove(onTable.length, 0, `${table}: ${described}`)
          for (const [type] of onTable) assert.include(["Index Scan", "Index Only Scan"], type, `${table}: ${described}`)
          assert.notInclude(nodes.map(([type]) => type), "Hash Join", `${table}: ${described}`)
        }
        // and they answer the same as the join did: the known visitors, the stored events
        const found = yield* sql.unsafe<{ session_id: string }>(Statements.SELECT_VISITOR_SESSIONS, keyParams)
        assert.strictEqual(found.length, keys.filter((_, i) => i * ((VISITORS * 2) / BATCH) + 1 <= VISITORS).length)
        const earlier = yield* sql.unsafe<{ session_id: string }>(Statements.SELECT_EARLIER_SESSIONS, keyParams)
        assert.strictEqual(earlier.length, found.length)
        const storedFound = yield* sql.unsafe<{ id: string }>(Statements.SELECT_STORED_EVENTS, lookups[2]![2])
        assert.deepStrictEqual(storedFound.map((r) => r.id).sort(), stored.map((r) => r.id).sort())
      }).pipe(Effect.provide(Sql.layerUrl(db.url)))
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
