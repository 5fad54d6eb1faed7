/**
 * `spoolway sites` as an operator runs it (issue 13): a CLI round trip against a real database
 * and Redis — add, list, keys rotate, remove, purge — with the clear errors, what lands in
 * PostgreSQL (hashes only) and on the primary Redis (the registry collectors enforce), and the
 * server-key authentication other code uses (SiteAuth).
 */
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { hashKey, type SiteSnapshot } from "../src/domain/Site.ts"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { sitesCliTest } from "./support/sites.ts"

const sites = sitesCliTest("spoolway_sites", "sites-cli")
// most calls run the CLI's program in this process (`cli`); a few spawn the real binary (`cliBinary`)
const { cli, cliBinary, cliJson, prefix, query, redis } = sites

const published = async (): Promise<SiteSnapshot> => JSON.parse((await redis.get(sitesKey(prefix)))!)

interface Added {
  readonly id: number
  readonly hostname: string
  readonly aliases: ReadonlyArray<string>
  readonly corp: string | null
  readonly timezone: string
  readonly origins: ReadonlyArray<string>
  readonly writeKey: string
  readonly serverKey: string
  readonly published: boolean
}

describe("spoolway sites", () => {
  let site: Added

  it("--help on every command", async () => {
    for (const args of [["--help"], ["add", "--help"], ["list", "--help"], ["keys", "rotate", "--help"], ["remove", "--help"]]) {
      const { code, out } = await cli(...args)
      expect(code, out).toBe(0)
      expect(out).toContain("USAGE")
    }
    expect((await cli("add", "--help")).out).toMatch(/--alias[\s\S]*--corp[\s\S]*--timezone[\s\S]*--origin[\s\S]*--json/)
    expect((await cliBinary("remove", "--help")).out).toMatch(/--purge[\s\S]*--yes/)
  }, 60_000)

  it("add prints both keys once; PostgreSQL and the published registry hold their hashes only", async () => {
    site = await cliJson<Added>("add", "Example.com", "--alias", "www.example.com", "--corp", "Acme", "--timezone", "europe/berlin")
    expect(site).toMatchObject({
      hostname: "example.com",
      aliases: ["www.example.com"],
      corp: "Acme",
      timezone: "Europe/Berlin",
      origins: ["http://example.com", "https://example.com", "http://www.example.com", "https://www.example.com"],
      published: true
    })
    expect(site.writeKey).toMatch(/^sw_pub_[A-Za-z0-9_-]{43}$/)
    expect(site.serverKey).toMatch(/^sw_sec_[A-Za-z0-9_-]{43}$/)
    const [row] = await query<{ write_key_hash: string; server_key_hash: string; hostnames: Array<string> }>(
      `SELECT s.write_key_hash, s.server_key_hash,
              array(SELECT hostname FROM domains WHERE site_id = s.id ORDER BY hostname) AS hostnames
       FROM sites s WHERE s.id = $1`,
      [site.id]
    )
    expect(row).toEqual({ write_key_hash: hashKey(site.writeKey), server_key_hash: hashKey(site.serverKey), hostnames: ["example.com", "www.example.com"] })
    const registry = await published()
    expect(registry.sites).toEqual([{
      id: site.id,
      hostnames: ["example.com", "www.example.com"],
      origins: null,
      keys: [{ kind: "write", hash: hashKey(site.writeKey) }, { kind: "server", hash: hashKey(site.serverKey) }]
    }])
    const raw = await redis.get(sitesKey(prefix))
    expect(raw).not.toContain(site.writeKey)
    expect(raw).not.toContain(site.serverKey)
    // the text form names both keys and what each one is for
    const text = await cliBinary("add", "shop.test", "--origin", "https://shop.test", "--origin", "http://localhost:3000/")
    expect(text.code, text.out).toBe(0)
    expect(text.out).toMatch(/write key\s+sw_pub_\S+\s+public/)
    expect(text.out).toMatch(/server key\s+sw_sec_\S+\s+SECRET/)
    expect(text.out).toContain("https://shop.test, http://localhost:3000")
  }, 60_000)

  it.each([
    [["add", "example.com"], "hostname 'example.com' already belongs to the site 'example.com'"],
    [["add", "other.test", "--alias", "www.example.com"], "hostname 'www.example.com' already belongs to the site 'example.com'"],
    [["add", "other.test", "--timezone", "Mars/Olympus"], "invalid timezone 'Mars/Olympus'"],
    [["add", "other.test", "--origin", "https://other.test/path"], "invalid origin 'https://other.test/path'"],
    [["add", "https://other.test"], "invalid hostname 'https://other.test'"],
    [["add", "other.test", "--alias", "other.test"], "is the site's own hostname"],
    [["keys", "rotate", "nope.test"], "no site has the hostname 'nope.test'"],
    [["remove", "nope.test"], "no site has the hostname 'nope.test'"]
  ])("%j fails with a clear error and changes nothing", async (args, message) => {
    const version = await redis.get(sitesVersionKey(prefix))
    const { code, out } = await cli(...args)
    expect(code).toBe(1)
    expect(out).toContain(message)
    expect(out).not.toMatch(/at .*\.ts:\d+/) // no stack trace
    expect(await query(`SELECT 1 FROM domains WHERE hostname = 'other.test'`)).toEqual([])
    expect(await redis.get(sitesVersionKey(prefix))).toBe(version)
  }, 30_000)

  it("list: every site, text and JSON, never a key", async () => {
    const sites = await cliJson<Array<{ hostname: string; aliases: Array<string>; corp: string | null; defaultOrigins: boolean; status: string }>>(
      "list"
    )
    expect(sites.map((s) => [s.hostname, s.aliases, s.corp, s.defaultOrigins, s.status])).toEqual([
      ["example.com", ["www.example.com"], "Acme", true, "active"],
      ["shop.test", [], null, false, "active"]
    ])
    const text = await cliBinary("list")
    expect(text.out).toContain("example.com (id")
    expect(text.out).toContain("Europe/Berlin")
    expect(text.out).not.toContain("sw_pub_")
    expect(text.out).not.toContain("sw_sec_")
  }, 30_000)

  it("the server key authenticates its site (SiteAuth); a write key or a made-up key does not", async () => {
    const ok = await Effect.runPromise(sites.auth.authenticateHeader(`Bearer ${site.serverKey}`))
    expect(ok).toEqual({
      id: site.id,
      hostname: "example.com",
      hostnames: ["example.com", "www.example.com"],
      corpId: expect.any(Number),
      timezone: "Europe/Berlin"
    })
    for (const bad of [site.writeKey, "sw_sec_made-up", "", undefined]) {
      const exit = await Effect.runPromiseExit(sites.auth.authenticate(bad))
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("InvalidServerKey")
    }
    expect(Exit.isFailure(await Effect.runPromiseExit(sites.auth.authenticateHeader(site.serverKey)))).toBe(true)
  })

  it("keys rotate: new key now, the previous one until the grace ends; --grace-hours 0 ends it at once", async () => {
    const before = Date.now()
    const rotated = await cliJson<{ writeKey?: string; serverKey?: string; previousKeysValidUntil: string }>(
      "keys",
      "rotate",
      "www.example.com",
      "--write",
      "--grace-hours",
      "1"
    )
    expect(rotated.serverKey).toBeUndefined()
    expect(rotated.writeKey).toMatch(/^sw_pub_/)
    const until = Date.parse(rotated.previousKeysValidUntil)
    expect(until).toBeGreaterThanOrEqual(before + 3_600_000 - 5000)
    expect(until).toBeLessThanOrEqual(Date.now() + 3_600_000 + 5000)
    const keys = (await published()).sites.find((s) => s.id === site.id)!.keys
    expect(keys).toEqual([
      { kind: "write", hash: hashKey(rotated.writeKey!) },
      { kind: "server", hash: hashKey(site.serverKey) },
      { kind: "write", hash: hashKey(site.writeKey), expiresAt: until }
    ])

    // the server key with a grace: the old one still reads; without: it stops at once
    const graceful = await cliJson<{ serverKey: string }>("keys", "rotate", "example.com", "--server")
    expect((await Effect.runPromise(sites.auth.authenticate(site.serverKey))).id).toBe(site.id)
    expect((await Effect.runPromise(sites.auth.authenticate(graceful.serverKey))).id).toBe(site.id)
    const abrupt = await cliJson<{ serverKey: string }>("keys", "rotate", "example.com", "--server", "--grace-hours", "0")
    expect(Exit.isFailure(await Effect.runPromiseExit(sites.auth.authenticate(graceful.serverKey)))).toBe(true)
    expect((await Effect.runPromise(sites.auth.authenticate(abrupt.serverKey))).id).toBe(site.id)
    const serverKeys = (await published()).sites.find((s) => s.id === site.id)!.keys.filter((k) => k.kind === "server")
    expect(serverKeys).toEqual([{ kind: "server", hash: hashKey(abrupt.serverKey) }])
    // no flag: both
    const both = await cliJson<{ writeKey?: string; serverKey?: string }>("keys", "rotate", "example.com")
    expect(both.writeKey).toMatch(/^sw_pub_/)
    expect(both.serverKey).toMatch(/^sw_sec_/)
  }, 60_000)

  it("add adopts a domain registered before sites existed, with its data", async () => {
    const [domain] = await query<{ id: number }>(`INSERT INTO domains (hostname) VALUES ('legacy.test') RETURNING id`)
    const added = await cliJson<Added>("add", "legacy.test")
    expect(added.id).toBe(domain!.id)
  }, 30_000)

  it("remove keeps the data and stops the keys; the hostname stays taken until a purge", async () => {
    const [event] = await query<{ id: string }>(
      `INSERT INTO raw_events (id, kind, event_type, session_id, "timestamp", received_at, domain_id)
       VALUES (gen_random_uuid(), 'event', 'e', 's', now(), now(), $1) RETURNING id::text AS id`,
      [site.id]
    )
    await query(
      `INSERT INTO aggregated_metrics (bucket_start, granularity, metric, domain_id, dimension, value)
       VALUES (date_trunc('day', now()), 'day', 'events', $1, 'total', 1)`,
      [site.id]
    )
    await query(
      `INSERT INTO visits (site_id, session_id, started_at, last_seen_at) VALUES ($1, 's', now(), now())`,
      [site.id]
    )
    await query(
      `INSERT INTO visit_items (site_id, session_id, dim, value, pageviews, events, conversions, revenue, hour)
       VALUES ($1, 's', 'event_type', 'e', 0, 1, 0, 0, date_trunc('hour', now()))`,
      [site.id]
    )
    const removed = await cli("remove", "example.com")
    expect(removed.code, removed.out).toBe(0)
    expect(removed.out).toContain("Its data is kept")
    expect((await published()).sites.map((s) => s.id)).not.toContain(site.id)
    expect((await query(`SELECT 1 FROM raw_events WHERE id = $1::uuid`, [event!.id])).length).toBe(1)
    const again = await cliBinary("add", "example.com")
    expect(again.code).toBe(1)
    expect(again.out).toContain("purge it first: spoolway sites remove example.com --purge")
    const listed = await cliJson<Array<{ hostname: string; status: string }>>("list")
    expect(listed.find((s) => s.hostname === "example.com")!.status).toBe("removed")

    // a purge needs a confirmation; without a terminal to ask on it refuses and changes nothing
    const refused = await cliBinary("remove", "example.com", "--purge")
    expect(refused.code).toBe(1)
    expect(refused.out).toContain("add --yes")
    expect((await query(`SELECT 1 FROM raw_events WHERE domain_id = $1`, [site.id])).length).toBe(1)

    const purged = await cliJson<{ purged: boolean; deleted: Record<string, number> }>("remove", "www.example.com", "--purge", "--yes")
    expect(purged.purged).toBe(true)
    expect(purged.deleted).toMatchObject({ raw_events: 1, aggregated_metrics: 1, visits: 1, visit_items: 1 })
    expect(await query(`SELECT 1 FROM raw_events WHERE domain_id = $1`, [site.id])).toEqual([])
    expect(await query(`SELECT 1 FROM visits WHERE site_id = $1 UNION ALL SELECT 1 FROM visit_items WHERE site_id = $1`, [site.id])).toEqual([])
    expect(await query(`SELECT 1 FROM domains WHERE hostname IN ('example.com', 'www.example.com')`)).toEqual([])
    // the hostname is free again
    expect((await cliJson<Added>("add", "example.com")).hostname).toBe("example.com")
  }, 60_000)

  it("removing the last site warns that the API is open again", async () => {
    for (const hostname of ["shop.test", "legacy.test"]) expect((await cli("remove", hostname)).code).toBe(0)
    const last = await cli("remove", "example.com")
    expect(last.code).toBe(0)
    expect(last.out).toContain("no site is left, so the tracking API is OPEN again")
    expect((await published()).sites).toEqual([])
  }, 60_000)
})
