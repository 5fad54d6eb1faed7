/**
 * A pipeline for tests that run the real `spoolway` processes with sites: a fresh database
 * (migrated by `spoolway migrate`), a SqlClient on it for the test's own queries, the env of the
 * processes (the suite's Redis under the test's prefix, no rate limit, quick writer and site
 * registry refreshes), and `sites add` through the CLI.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { testDatabase } from "../writerSupport.ts"
import { SHARED_REDIS } from "./collector.ts"
import { runCli } from "./daemon.ts"

export interface SitesPipeline {
  readonly env: Record<string, string>
  readonly sql: SqlClient.SqlClient
  /** drops the database */
  readonly close: () => Promise<void>
}

export const sitesPipeline = async (
  database: string,
  prefix: string,
  extraEnv: Record<string, string> = {}
): Promise<SitesPipeline> => {
  const scope = await Effect.runPromise(Scope.make())
  const db = await Effect.runPromise(Scope.provide(testDatabase(database), scope))
  const ctx = await Effect.runPromise(
    Scope.provide(Layer.build(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 2 })), scope)
  )
  const env = {
    DATABASE_URL: db.url,
    PRIMARY_REDIS_URL: SHARED_REDIS,
    SPOOL_REDIS_URL: SHARED_REDIS,
    STREAM_PREFIX: prefix,
    RATE_LIMIT_PER_MINUTE: "0",
    WRITER_BLOCK_MS: "100",
    SITES_REFRESH_MS: "200",
    ...extraEnv
  }
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  const migrated = await runCli(["migrate"], env)
  if (migrated.code !== 0) {
    await close()
    throw new Error(`spoolway migrate failed (${migrated.code}):\n${migrated.out}`)
  }
  return { env, sql: Context.get(ctx, SqlClient.SqlClient), close }
}

/** What `spoolway sites add --json` prints (the fields the tests use). */
export interface AddedSite {
  readonly id: number
  readonly hostname: string
  readonly writeKey: string
  readonly serverKey: string
}

/** `spoolway sites add <hostname> --json` */
export const addSite = async (env: Record<string, string>, hostname: string): Promise<AddedSite> => {
  const { code, out } = await runCli(["sites", "add", hostname, "--json"], env)
  if (code !== 0) throw new Error(`spoolway sites add ${hostname} failed (${code}):\n${out}`)
  return JSON.parse(out.slice(out.indexOf("{"))) as AddedSite
}
