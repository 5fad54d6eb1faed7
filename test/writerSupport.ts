/**
 * Shared fixtures of the writer tests: a fresh PostgreSQL database per test file (created
 * through the suite's PostgreSQL, dropped afterwards), the suite's Redis with a unique stream
 * prefix, envelope builders, small SQL / Redis probes, and writers whose PostgreSQL sink has
 * test hooks around its transaction.
 */
import { randomUUID } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { type EdgeInfo, encodeEnvelopeJson, type NormalizedEvent, type RawEventEnvelope } from "../src/domain/Envelope.ts"
import { ENVELOPE_FIELD } from "../src/domain/Envelope.ts"
import type { Tenant } from "../src/domain/Tenant.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { Domains } from "../src/layers/Domains.ts"
import { GeoLookup } from "../src/layers/GeoLookup.ts"
import * as MemorySink from "../src/layers/MemorySink.ts"
import { NetworkLookup } from "../src/layers/NetworkLookup.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import * as PgSink from "../src/layers/PgSink.ts"
import type { PgSinkTestHooks } from "../src/layers/PgSink.ts"
import { Salts } from "../src/layers/Salts.ts"
import * as Sql from "../src/layers/Sql.ts"
import { StreamConsumer } from "../src/layers/StreamConsumer.ts"
import { makeWriter as makeWriterOnSink, Writer, WriterDependencies } from "../src/programs/Writer.ts"
import type { WriterOptions } from "../src/programs/WriterOptions.ts"
import { PG_ADMIN_URL, REDIS_URL } from "./support/services.ts"

export { PG_ADMIN_URL, REDIS_URL } from "./support/services.ts"

const randomName = () => Math.random().toString(36).slice(2, 10)

const adminQuery = (statement: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(statement)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(PG_ADMIN_URL), maxConnections: 1 })), Effect.orDie)

/** The URL of a database that exists for the life of the scope. */
export const testDatabase = (prefix = "spoolway_test") =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `${prefix}_${randomName()}`
      yield* adminQuery(`CREATE DATABASE ${name}`)
      const url = new URL(PG_ADMIN_URL)
      url.pathname = `/${name}`
      return { name, url: url.toString() }
    }),
    ({ name }) => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  )

export class TestDb extends Context.Service<TestDb, { readonly name: string; readonly url: string }>()("test/TestDb") {
  static readonly layer = Layer.effect(TestDb, testDatabase())
}

export const GEO_TABLE = {
  "81.2.69.160": { country: "GB", region: "ENG", city: "London", isEu: false, timezone: "Europe/London" },
  "89.160.20.112": { country: "SE", region: "E", city: "Linköping", isEu: true, timezone: "Europe/Stockholm" }
} as const

/**
 * The writer tests' network table (NetworkLookup.layerTest: taken literally, the org names go
 * through the real rules): the views' default address 81.2.69.160 is an ISP's, 203.0.113.0/24 a
 * hosting network's. test/writer-network.test.ts runs the writer on the real data set.
 */
export const NETWORK_TEST_RANGES = [
  { start: "81.2.69.0", end: "81.2.69.255", asn: 64496, org: "Example Broadband Telecom" },
  { start: "203.0.113.0", end: "203.0.113.255", asn: 64500, org: "Example Hosting Ltd" }
] as const

/**
 * AppConfig (unique stream prefix), PrimaryRedis (the shared Redis), a fresh migrated
 * database, GeoLookup and NetworkLookup (fixed tables; `options.network` replaces the latter),
 * Salts + Domains.
 */
export const writerTestLayer = (
  prefix = `wtest-${randomName()}`,
  options: { readonly network?: Layer.Layer<NetworkLookup> } = {}
) => {
  const sql = Layer.unwrap(Effect.map(TestDb, (db) => Sql.layerUrl(db.url))).pipe(Layer.provideMerge(TestDb.layer))
  const base = Layer.mergeAll(
    sql,
    PrimaryRedis.layerUrl(REDIS_URL),
    AppConfig.layerWith({ streamPrefix: prefix, writerBlockMs: 50, writerBatchSize: 100 }),
    GeoLookup.layerTest(GEO_TABLE),
    options.network ?? NetworkLookup.layerTest(NETWORK_TEST_RANGES)
  )
  return WriterDependencies.pipe(Layer.provideMerge(base))
}

export const CHROME_MAC =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
export const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
export const GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

export interface EnvelopeInput {
  readonly eventId?: string
  readonly kind?: RawEventEnvelope["kind"]
  readonly receivedAt?: string
  readonly edge?: Partial<EdgeInfo>
  readonly payload?: Partial<NormalizedEvent>
}

/** A view envelope (override anything). */
export const viewEnvelope = (input: EnvelopeInput = {}): RawEventEnvelope => ({
  v: 1,
  eventId: input.eventId ?? randomUUID(),
  kind: input.kind ?? "view",
  receivedAt: input.receivedAt ?? new Date().toISOString(),
  edge: {
    ip: "81.2.69.160",
    ua: CHROME_MAC,
    lang: "en-GB,en;q=0.9",
    headers: { origin: "https://shop.example.com" },
    ...input.edge
  },
  payload: {
    eventType: "pageview",
    sessionId: `s-${randomName()}`,
    pageUrl: "https://shop.example.com/pricing?plan=pro",
    isView: true,
    ...input.payload
  }
})

/** A non-view event envelope. */
export const eventEnvelope = (input: EnvelopeInput = {}): RawEventEnvelope =>
  viewEnvelope({
    kind: "event",
    ...input,
    payload: { eventType: "click", isView: false, pageUrl: "https://shop.example.com/", ...input.payload }
  })

/** XADD each payload (an envelope or a raw string) to `key`; returns the entry ids. */
export const xadd = (key: string, payloads: ReadonlyArray<RawEventEnvelope | string>) =>
  Effect.gen(function*() {
    const { client } = yield* PrimaryRedis
    const ids: Array<string> = []
    for (const payload of payloads) {
      const value = typeof payload === "string" ? payload : encodeEnvelopeJson(payload)
      const id = yield* Effect.promise(() => client.xadd(key, "*", ENVELOPE_FIELD, value))
      if (id !== null) ids.push(id)
    }
    return ids
  })

export const redis = <A>(f: (client: PrimaryRedis["Service"]["client"]) => Promise<A>) =>
  Effect.flatMap(PrimaryRedis, ({ client }) => Effect.promise(() => f(client)))

/** Deletes the test's stream keys at the end of the scope. */
export const cleanupKeys = (...keys: ReadonlyArray<string>) =>
  Effect.addFinalizer(() => redis((client) => client.del(...keys)).pipe(Effect.ignore))

export const query = <A extends object = Record<string, unknown>>(statement: string, params: ReadonlyArray<unknown> = []) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(statement, params)).pipe(Effect.orDie)

/** Registers a corp and a domain; returns their ids. */
export const registerDomain = (hostname: string) =>
  Effect.gen(function*() {
    const [corp] = yield* query<{ id: number }>(`INSERT INTO corps (name) VALUES ($1) RETURNING id`, [`corp of ${hostname}`])
    const [domain] = yield* query<{ id: number }>(
      `INSERT INTO domains (hostname, corp_id) VALUES ($1, $2) RETURNING id`,
      [hostname, corp!.id]
    )
    return { corpId: corp!.id, domainId: domain!.id }
  })

/** A registered domain (and corp) for one test, the tenant table (Domains) reloaded. */
export const domainFor = (name: string) =>
  Effect.gen(function*() {
    const hostname = `${name}-${randomName()}.example.com`
    const ids = yield* registerDomain(hostname)
    yield* Effect.flatMap(Domains, (d) => d.refresh).pipe(Effect.orDie)
    return { hostname, origin: `https://${hostname}`, ...ids }
  })

/** `aggregated_metrics` value of one key (0 when absent). */
export const metricValue = (options: {
  readonly domainId: number | null
  readonly metric: string
  readonly granularity?: "hour" | "day"
  readonly dimension?: string
  readonly dimensionValue?: string | null
}) =>
  Effect.map(
    query<{ value: string }>(
      `SELECT value::text AS value FROM aggregated_metrics
       WHERE domain_id IS NOT DISTINCT FROM $1::int4 AND metric = $2 AND granularity = $3 AND dimension = $4
         AND dimension_value IS NOT DISTINCT FROM $5::text`,
      [
        options.domainId,
        options.metric,
        options.granularity ?? "day",
        options.dimension ?? "total",
        options.dimensionValue ?? null
      ]
    ),
    (rows) => rows.reduce((sum, row) => sum + Number(row.value), 0)
  )

/**
 * All aggregated_metrics rows of a domain, as `metric|granularity|dimension|value → n`, summed
 * over buckets (events that straddle an hour boundary fill two hour buckets).
 */
export const metricsOf = (domainId: number) =>
  Effect.map(
    query<{ k: string; v: string }>(
      `SELECT metric || '|' || granularity || '|' || dimension || '|' || coalesce(dimension_value, '∅') AS k, sum(value)::text AS v
       FROM aggregated_metrics WHERE domain_id = $1::int4 GROUP BY 1 ORDER BY 1`,
      [domainId]
    ),
    (rows) => Object.fromEntries(rows.map((row) => [row.k, Number(row.v)]))
  )

export const streamKeys = (name: string) => ({ streamKey: `wt-${name}-${randomName()}:events`, group: `wt-${name}:writers` })

/** Writer options plus, optionally, the test hooks of its PostgreSQL sink (PgSink.layerTest). */
export type TestWriterOptions = Partial<WriterOptions> & { readonly hooks?: PgSinkTestHooks }

/**
 * The in-memory sink's layer stack, built: no database behind the prepare stage or the sink —
 * fixed salts, and one tenant, `host` (domain 1, corp 1, datacenter traffic flagged). Provide it
 * to `makeWriter` for a writer that stores into `store`.
 */
export const onMemory = (store: MemorySink.MemoryStore, host: string) =>
  Layer.build(Layer.mergeAll(
    MemorySink.layer(store),
    StreamConsumer.layer,
    Layer.succeed(Salts, Salts.of({
      saltFor: () => Effect.succeed(new Uint8Array(32).fill(3)),
      saltsFor: (days) => Effect.succeed(new Map([...days].map((day) => [day, new Uint8Array(32).fill(3)]))),
      purge: () => Effect.succeed(0)
    })),
    Layer.succeed(Domains, Domains.of({
      resolve: (name) => (name === host ? ({ domainId: 1, corpId: 1 } satisfies Tenant) : null),
      byId: (id) => (id === 1 ? ({ domainId: 1, corpId: 1 } satisfies Tenant) : null),
      datacenterTraffic: () => "flag",
      refresh: Effect.void,
      refreshForUnknown: () => Effect.void,
      size: () => 1
    }))
  ))

/**
 * `makeWriter` (src/programs/Writer.ts); with `hooks`, on a PostgreSQL sink of its own that
 * runs them around its transaction (failures, pauses and crashes before or after COMMIT).
 */
export const makeWriter = (overrides: TestWriterOptions = {}) => {
  const { hooks, ...options } = overrides
  if (hooks === undefined) return makeWriterOnSink(options)
  return Effect.flatMap(Layer.build(PgSink.layerTest(hooks)), (sink) => makeWriterOnSink(options).pipe(Effect.provide(sink)))
}

/** `Writer.layerWith`; with `hooks`, on a PostgreSQL sink that runs them (see {@link makeWriter}). */
export const writerLayerWith = (overrides: TestWriterOptions = {}) => {
  const { hooks, ...options } = overrides
  return hooks === undefined ? Writer.layerWith(options) : Writer.layerWith(options).pipe(Layer.provide(PgSink.layerTest(hooks)))
}

/**
 * A `beforeCommit` hook that holds the first transaction only (before its COMMIT) until another
 * transaction of this database is open — up to 20 s — then `afterMs` more; `overlapped()` tells
 * whether one was.
 */
export const holdFirstUntilAnotherOpens = Effect.fnUntraced(function*(afterMs: number = 0) {
  const sql = yield* SqlClient.SqlClient
  let held = false
  let overlapped = false
  const hook = Effect.gen(function*() {
    if (held) return
    held = true
    // up to 20 s: on a loaded machine preparing the next batch can take seconds; a writer that
    // never opens a second transaction still fails the test's `overlapped()` check
    for (let i = 0; i < 1000 && !overlapped; i++) {
      // this runs inside the held transaction, which caches pg_stat_activity until it ends:
      // without clearing it, a transaction that began after the first look is never seen
      yield* sql`SELECT pg_stat_clear_snapshot()`
      const [row] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
          AND query NOT LIKE '%pg_stat_activity%'`
      if ((row?.n ?? 0) > 0) overlapped = true
      else yield* Effect.sleep("20 millis")
    }
    if (afterMs > 0) yield* Effect.sleep(afterMs)
  })
  return { hook, overlapped: () => overlapped }
})

/** Every envelope twice, the copy 1–9 entries later (a redelivery while the first is in flight). */
export const withLateCopies = <A>(list: ReadonlyArray<A>): Array<A> => {
  const stream: Array<A> = []
  list.forEach((envelope, i) => {
    stream.push(envelope)
    stream.splice(Math.max(0, stream.length - 1 - (i % 9)), 0, envelope)
  })
  return stream
}

/**
 * Drains `overlapped` with a writer of three transactions in flight (without session lanes, so
 * that they share sessions, as several writers' transactions do) whose first transaction waits
 * (before its COMMIT) until another one is open, then `serial` with a one-transaction writer (4
 * entries a batch each); dies unless two transactions were open together. Returns both writers.
 */
export const drainOverlappedThenSerial = (
  name: string,
  overlapped: ReturnType<typeof streamKeys>,
  serial: ReturnType<typeof streamKeys>
) =>
  Effect.gen(function*() {
    const hold = yield* holdFirstUntilAnotherOpens()
    const writerA = yield* makeWriter({
      ...overlapped,
      consumer: `${name}overlap-a`,
      batchSize: 4,
      transactions: 3,
      // no session lanes: the transactions in flight share visits, as several writers' do
      sessionLanes: false,
      hooks: { beforeCommit: () => hold.hook }
    })
    yield* writerA.drain
    const writerB = yield* makeWriter({ ...serial, consumer: `${name}serial-b`, batchSize: 4, transactions: 1 })
    yield* writerB.drain
    if (!hold.overlapped()) return yield* Effect.die(new Error("no two transactions were ever open together"))
    return [writerA, writerB] as const
  })
