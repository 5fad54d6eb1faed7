/**
 * A site's `datacenterTraffic` setting from the command line (issue 15, docs/network.md):
 * `sites add --datacenter-traffic`, `sites set`, shown by `sites list`; an invalid value or a
 * `set` with nothing to change fails with a clear error and changes nothing. What the writer
 * does with each value is test/writer-network.test.ts.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { sitesCliTest } from "./support/sites.ts"

const sites = sitesCliTest("spoolway_sites_settings", "sites-settings")
// most calls run the CLI's program in this process (`cli`); a few spawn the real binary (`cliBinary`)
const { cli, cliBinary, cliJson } = sites

const stored = async () =>
  Object.fromEntries(
    (await Effect.runPromise(
      sites.sql<{ hostname: string; datacenter_traffic: string }>`
        SELECT d.hostname, s.datacenter_traffic FROM sites s JOIN domains d ON d.id = s.id ORDER BY 1`
    )).map((r) => [r.hostname, r.datacenter_traffic])
  )
const registryVersion = async () =>
  (await Effect.runPromise(sites.sql<{ version: string }>`SELECT version::text AS version FROM site_registry`))[0]!.version

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

    const text = await cliBinary("set", "strict.test", "--datacenter-traffic", "FLAG")
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
