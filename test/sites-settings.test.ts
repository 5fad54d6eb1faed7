/**
 * A site's `datacenterTraffic` setting from the command line (issue 15, docs/network.md):
 * `sites add --datacenter-traffic`, `sites set`, shown by `sites list`; an invalid value or a
 * `set` with nothing to change fails with a clear error and changes nothing. What the writer
 * does with each value is test/writer-network.test.ts.
 */
import { randomUUID } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import * as Sql from "../src/layers/Sql.ts"
import { SHARED_REDIS } from "./support/collector.ts"
import { runCli } from "./support/daemon.ts"
import { testDatabase } from "./writerSupport.ts"

const redis = new Redis(SHARED_REDIS)
const prefix = `test:sites-settings:${randomUUID().slice(0, 8)}`
let scope: Scope.Closeable
let sql: SqlClient.SqlClient
let env: Record<string, string>

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  const db = await Effect.runPromise(Scope.provide(testDatabase("spoolway_sites_settings"), scope))
  const ctx = await Effect.runPromise(Scope.provide(Layer.build(Sql.layerUrl(db.url)), scope))
  sql = Context.get(ctx, PgClient.PgClient)
  env = { DATABASE_URL: db.url, PRIMARY_REDIS_URL: SHARED_REDIS, SPOOL_REDIS_URL: SHARED_REDIS, STREAM_PREFIX: prefix }
}, 60_000)
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await redis.del(sitesKey(prefix), sitesVersionKey(prefix))
  redis.disconnect()
})

const cli = async (...args: Array<string>) => {
  const result = await runCli(["sites", ...args], env)
  return { ...result, out: result.out.trim() }
}
const cliJson = async <A>(...args: Array<string>): Promise<A> => {
  const { code, out } = await cli(...args, "--json")
  expect(code, out).toBe(0)
  return JSON.parse(out.slice(out.search(/[[{]/))) as A
}
const stored = async () =>
  Object.fromEntries(
    (await Effect.runPromise(
      sql<{ hostname: string; datacenter_traffic: string }>`
        SELECT d.hostname, s.datacenter_traffic FROM sites s JOIN domains d ON d.id = s.id ORDER BY 1`
    )).map((r) => [r.hostname, r.datacenter_traffic])
  )
const registryVersion = async () =>
  (await Effect.runPromise(sql<{ version: string }>`SELECT version::text AS version FROM site_registry`))[0]!.version

interface SiteJson {
  readonly hostname: string
  readonly datacenterTraffic: string
}

describe("spoolway sites: datacenterTraffic", () => {
  it("add: default flag, or as given; set changes it; list shows it", async () => {
    expect((await cliJson<SiteJson>("add", "plain.test")).datacenterTraffic).toBe("flag")
    expect((await cliJson<SiteJson>("add", "strict.test", "--datacenter-traffic", "exclude")).datacenterTraffic).toBe("exclude")
    expect(await stored()).toEqual({ "plain.test": "flag", "strict.test": "exclude" })

    const before = await registryVersion()
    expect(await cliJson<SiteJson>("set", "plain.test", "--datacenter-traffic", "count")).toMatchObject({
      hostname: "plain.test",
      datacenterTraffic: "count"
    })
    expect(await stored()).toEqual({ "plain.test": "count", "strict.test": "exclude" })
    // the writers' tenant tables reload on a new registry version
    expect(Number(await registryVersion())).toBeGreaterThan(Number(before))

    const text = await cli("set", "strict.test", "--datacenter-traffic", "FLAG")
    expect(text.code, text.out).toBe(0)
    expect(text.out).toMatch(/site strict\.test updated\s+datacenter traffic\s+flag/)
    const list = await cli("list")
    expect(list.out).toMatch(/plain\.test[\s\S]*datacenter traffic\s+count/)
    expect(list.out).toMatch(/strict\.test[\s\S]*datacenter traffic\s+flag/)
    expect((await cliJson<ReadonlyArray<SiteJson>>("list")).map((s) => [s.hostname, s.datacenterTraffic])).toEqual([
      ["plain.test", "count"],
      ["strict.test", "flag"]
    ])
    expect((await cli("set", "--help")).out).toMatch(/--datacenter-traffic[\s\S]*count \| flag \| exclude/)
  }, 60_000)

  it.each([
    [["add", "bad.test", "--datacenter-traffic", "drop"], "invalid datacenter traffic 'drop': must be one of count, flag, exclude"],
    [["set", "plain.test", "--datacenter-traffic", "drop"], "invalid datacenter traffic 'drop': must be one of count, flag, exclude"],
    [["set", "plain.test"], "nothing to change"],
    [["set", "nope.test", "--datacenter-traffic", "exclude"], "no site has the hostname 'nope.test'"]
  ])("%j fails with a clear error and changes nothing", async (args, message) => {
    const before = { sites: await stored(), version: await registryVersion() }
    const { code, out } = await cli(...args)
    expect(code, out).toBe(1)
    expect(out).toContain(message)
    expect({ sites: await stored(), version: await registryVersion() }).toEqual(before)
  }, 60_000)
})
