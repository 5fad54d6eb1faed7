/**
 * A pipeline for tests that run the real `spoolway` processes with sites: a fresh database
 * (migrated by `spoolway migrate`), a SqlClient on it for the test's own queries, the env of the
 * processes (the suite's Redis under the test's prefix, no rate limit, quick writer and site
 * registry refreshes), and `sites add` through the CLI — `migrate` and `add` run the CLI's program
 * in this process (test/support/cliInProcess.ts). And `sitesCliTest`, the setup of the tests of
 * the `sites` commands themselves.
 */
import { randomUUID } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, beforeAll, expect } from "vitest"
import { sitesKey, sitesVersionKey } from "../../src/domain/Streams.ts"
import { SiteAuth } from "../../src/layers/SiteAuth.ts"
import * as Sql from "../../src/layers/Sql.ts"
import { testDatabase } from "../writerSupport.ts"
import { SHARED_REDIS } from "./collector.ts"
import { runCliInProcess } from "./cliInProcess.ts"
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
  const migrated = await runCliInProcess(["migrate"], env)
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

/** `spoolway sites add <hostname> --json` (run in this process: test/support/cliInProcess.ts) */
export const addSite = async (env: Record<string, string>, hostname: string): Promise<AddedSite> => {
  const { code, out } = await runCliInProcess(["sites", "add", hostname, "--json"], env)
  if (code !== 0) throw new Error(`spoolway sites add ${hostname} failed (${code}):\n${out}`)
  return JSON.parse(out.slice(out.indexOf("{"))) as AddedSite
}

/**
 * For a test file of `spoolway sites …` run as an operator runs it; call it at the top level. Its
 * beforeAll makes a fresh database (named after `database`, migrated) with the test's own SqlClient
 * and SiteAuth on it, and the CLI's env (the suite's Redis under `test:<name>:<random>`, plus
 * `extraEnv`); its afterAll drops the database and removes the site registry keys. `sql`, `auth` and
 * `env` exist once the beforeAll has run.
 */
export const sitesCliTest = (database: string, name: string, extraEnv: Record<string, string> = {}) => {
  const redis = new Redis(SHARED_REDIS)
  const prefix = `test:${name}:${randomUUID().slice(0, 8)}`
  let scope: Scope.Closeable
  let sql: SqlClient.SqlClient
  let auth: SiteAuth["Service"]
  let env: Record<string, string>

  beforeAll(async () => {
    scope = await Effect.runPromise(Scope.make())
    const db = await Effect.runPromise(Scope.provide(testDatabase(database), scope))
    const ctx = await Effect.runPromise(
      Scope.provide(Layer.build(SiteAuth.layer.pipe(Layer.provideMerge(Sql.layerUrl(db.url)))), scope)
    )
    sql = Context.get(ctx, PgClient.PgClient)
    auth = Context.get(ctx, SiteAuth)
    env = { DATABASE_URL: db.url, PRIMARY_REDIS_URL: SHARED_REDIS, SPOOL_REDIS_URL: SHARED_REDIS, STREAM_PREFIX: prefix, ...extraEnv }
  }, 60_000)
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await redis.del(sitesKey(prefix), sitesVersionKey(prefix))
    redis.disconnect()
  })

  /**
   * `spoolway sites <args>`: exit code and output (stdout and stderr), trimmed. Run inside the test
   * process (the binary's own program: test/support/cliInProcess.ts), which saves a Node start per
   * call; `cliBinary` spawns the real binary, for the few calls each file keeps on that path.
   */
  const cli = async (...args: Array<string>) => {
    const result = await runCliInProcess(["sites", ...args], env)
    return { ...result, out: result.out.trim() }
  }
  /** `spoolway sites <args>` as a child process (the real binary), like `cli` otherwise */
  const cliBinary = async (...args: Array<string>) => {
    const result = await runCli(["sites", ...args], env)
    return { ...result, out: result.out.trim() }
  }
  return {
    /** the suite's Redis (where the CLI publishes the site registry) */
    redis,
    /** the CLI's STREAM_PREFIX */
    prefix,
    cli,
    cliBinary,
    /** the command's JSON output (`--json`; stdout holds nothing else); it must succeed */
    cliJson: async <A>(...args: Array<string>): Promise<A> => {
      const { code, out } = await cli(...args, "--json")
      expect(code, out).toBe(0)
      return JSON.parse(out.slice(out.search(/[[{]/))) as A
    },
    /** a statement with parameters on the test's database */
    query: <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
      Effect.runPromise(sql.unsafe<A>(text, params as Array<unknown>)),
    get sql() {
      return sql
    },
    get auth() {
      return auth
    },
    get env() {
      return env
    }
  }
}
