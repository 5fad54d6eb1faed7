/**
 * The stats query API for tests: the api role's routes on a free port over a fresh migrated
 * database, sites added through SiteStore, and hand-made `visits` / `raw_events` rows.
 */
import { randomBytes, randomUUID } from "node:crypto"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { SqlClient } from "effect/sql"
import { formatKey, hashKey, KEY_BYTES } from "../../src/domain/Site.ts"
import { HealthSource } from "../../src/http/Health.ts"
import { serveHttp, StatsRoutes } from "../../src/http/Server.ts"
import { AppConfig } from "../../src/layers/AppConfig.ts"
import { SiteAuth } from "../../src/layers/SiteAuth.ts"
import { SiteStore } from "../../src/layers/SiteStore.ts"
import * as Sql from "../../src/layers/Sql.ts"
import { testDatabase } from "../writerSupport.ts"
import { testLogLevel } from "./collector.ts"
import {
  BACKFILL_DAILY_ROLLUPS_SQL,
  BACKFILL_LAST_SEEN_SQL,
  BACKFILL_ROLLUPS_SQL,
  BACKFILL_VISITORS_SQL
} from "../../src/domain/VisitRollups.ts"
import { BACKFILL_ITEMS_SQL } from "../../src/domain/VisitItems.ts"

export interface StatsApi {
  readonly baseUrl: string
  readonly sql: SqlClient.SqlClient
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  readonly close: () => Promise<void>
}

/** The api role (routes, SiteAuth, health) on port 0 over a new database. */
export const startStatsApi = async (): Promise<StatsApi> => {
  const scope = await Effect.runPromise(Scope.make())
  const db = await Effect.runPromise(Scope.provide(testDatabase("spoolway_stats"), scope))
  const sqlLayer = Sql.layerUrl(db.url, { maxConnections: 4 })
  const app = serveHttp(StatsRoutes).pipe(
    Layer.provide(HealthSource.api),
    Layer.provideMerge(SiteAuth.layer),
    Layer.provideMerge(sqlLayer),
    Layer.provide(AppConfig.layerWith({ port: 0, host: "127.0.0.1", shutdownGraceMs: 0 })),
    Layer.provide(testLogLevel)
  )
  const context = await Effect.runPromise(Layer.buildWithScope(app, scope))
  const server = Context.get(context, HttpServer.HttpServer)
  const sql = Context.get(context, SqlClient.SqlClient)
  const address = server.address
  if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    sql,
    run: (effect) => Effect.runPromise(Effect.provideService(effect, SqlClient.SqlClient, sql)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export interface TestSite {
  readonly id: number
  readonly hostname: string
  readonly serverKey: string
  readonly writeKey: string
}

export const addTestSite = (hostname: string, timezone = "UTC", aliases: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const store = yield* SiteStore
    const serverKey = formatKey("server", randomBytes(KEY_BYTES))
    const writeKey = formatKey("write", randomBytes(KEY_BYTES))
    const record = yield* store.add({
      hostname,
      aliases,
      corp: undefined,
      timezone,
      origins: null,
      writeKeyHash: hashKey(writeKey),
      serverKeyHash: hashKey(serverKey)
    })
    return { id: record.id, hostname, serverKey, writeKey } satisfies TestSite
  }).pipe(Effect.provide(SiteStore.layer))

export interface VisitRow {
  readonly session: string
  readonly visitor: string | null
  readonly start: string
  readonly durationS?: number
  readonly pageviews: number
  readonly events: number
  readonly engaged?: boolean
  readonly bot?: boolean
  readonly entry?: string
  readonly exit?: string
  readonly hostname?: string
  readonly source?: string | null
  readonly referrer?: string | null
  readonly utm_source?: string | null
  readonly utm_campaign?: string | null
  readonly device?: string | null
  readonly browser?: string | null
  readonly os?: string | null
  readonly country?: string | null
  readonly region?: string | null
  readonly city?: string | null
  readonly language?: string | null
}

/** A visitor id as the writer stores it (bytea); the same name gives the same id. */
export const vid = (name: string) => Buffer.from(`visitor:${name}`)

/** Empties `tables` and runs `statements`, in one transaction. */
const rebuild = (tables: ReadonlyArray<string>, statements: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      for (const table of tables) yield* sql.unsafe(`DELETE FROM ${table}`)
      for (const statement of statements) yield* sql.unsafe(statement)
    }))
  })

/**
 * The visit rollups recomputed from `visits` (migrations 0008, 0009 and 0020's backfill): after hand-made or
 * hand-edited visits rows, which the writer's statement did not write.
 */
export const rebuildVisitRollups = rebuild(
  ["visit_rollups", "visit_rollups_daily", "visitor_visits"],
  [BACKFILL_ROLLUPS_SQL, BACKFILL_LAST_SEEN_SQL, BACKFILL_DAILY_ROLLUPS_SQL, BACKFILL_VISITORS_SQL]
)

/** Hand-made visits rows (until the writer fills them; then tests also go through the writer); rollups rebuilt. */
export const insertVisits = (siteId: number, rows: ReadonlyArray<VisitRow>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const r of rows) {
      const start = new Date(r.start)
      const last = new Date(start.getTime() + (r.durationS ?? 0) * 1000)
      yield* sql`
        INSERT INTO visits (site_id, session_id, visitor_id_daily, started_at, last_seen_at, pageviews, events, engaged, is_bot,
                            entry_page, entry_at, exit_page, exit_at, hostname, source, referrer, utm_source, utm_campaign,
                            device, browser, os, country, region, city, language)
        VALUES (${siteId}, ${r.session}, ${r.visitor === null ? null : vid(r.visitor)}, ${start}, ${last}, ${r.pageviews},
                ${r.events}, ${r.engaged ?? false}, ${r.bot ?? false}, ${r.entry ?? null}, ${start}, ${r.exit ?? null}, ${last},
                ${r.hostname ?? null}, ${r.source ?? null}, ${r.referrer ?? null}, ${r.utm_source ?? null},
                ${r.utm_campaign ?? null}, ${r.device ?? null}, ${r.browser ?? null}, ${r.os ?? null}, ${r.country ?? null},
                ${r.region ?? null}, ${r.city ?? null}, ${r.language ?? null})`
    }
    yield* rebuildVisitRollups
  })

/**
 * The visits' contents recomputed from the stored events (migration 0010's backfill): after
 * hand-made events, which the writer's statement did not write.
 */
export const rebuildVisitItems = rebuild(
  ["visit_items", "item_rollups", "item_rollups_daily"],
  ["UPDATE visits SET conversions = 0, revenue = 0", ...BACKFILL_ITEMS_SQL]
)

export interface EventRow {
  readonly session: string
  readonly at: string
  readonly type?: string
  readonly page?: string | null
  readonly visitor?: string | null
  readonly bot?: boolean
  readonly metadata?: Record<string, unknown> | null
}

/** Hand-made raw_events rows: a `page` makes a view (kind 'view', type 'pageview', with visitor id); the visits' contents rebuilt. */
export const insertEvents = (siteId: number, rows: ReadonlyArray<EventRow>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const r of rows) {
      const isView = r.type === undefined
      const at = new Date(r.at)
      yield* sql`
        INSERT INTO raw_events (id, kind, event_type, session_id, page_url, is_bot, metadata, "timestamp", received_at,
                                visitor_id_daily, domain_id)
        VALUES (${randomUUID()}, ${isView ? "view" : "event"}, ${r.type ?? "pageview"}, ${r.session}, ${r.page ?? null},
                ${r.bot ?? false}, ${r.metadata === undefined || r.metadata === null ? null : JSON.stringify(r.metadata)}::jsonb,
                ${at}, ${at}, ${isView && r.visitor ? vid(r.visitor) : null}, ${siteId})`
    }
    yield* rebuildVisitItems
  })

/** POST a JSON body to the API. */
export const post = async (baseUrl: string, path: string, body: unknown, key?: string) => {
  const response = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })
  const text = await response.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: response.status, body: json }
}
