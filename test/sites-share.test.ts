/**
 * View-only share links of the dashboard (issue 17): `spoolway sites share` prints a link whose
 * token only reads (SiteAuth.authenticateReaderHeader), `sites share list` shows the links
 * without their tokens, `sites share revoke` stops one (by id, link or token) or all at once;
 * only the token's digest is stored. Bad input is a one-line error and changes nothing.
 */
import { Effect, Exit } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { hashKey } from "../src/domain/Site.ts"
import { sitesCliTest } from "./support/sites.ts"

const sites = sitesCliTest("spoolway_share", "sites-share", { PORT: "8787", HOST: "0.0.0.0" })
// most calls run the CLI's program in this process (`cli`); a few spawn the real binary (`cliBinary`)
const { cli, cliBinary, cliJson, query } = sites

interface Share {
  readonly id: number
  readonly link: string
  readonly token: string
  readonly label: string | null
}

const reader = (token: string | undefined) => Effect.runPromiseExit(sites.auth.authenticateReaderHeader(token === undefined ? undefined : `Bearer ${token}`))

describe("spoolway sites share", () => {
  let site: { id: number; serverKey: string; writeKey: string }
  let other: { id: number; serverKey: string }

  beforeAll(async () => {
    site = await cliJson("add", "shop.example", "--alias", "www.shop.example")
    other = await cliJson("add", "other.example")
  }, 60_000)

  it("prints a view-only link (token in the fragment) and stores only the token's digest", async () => {
    const text = await cliBinary("share", "www.shop.example", "--label", "for the agency", "--base-url", "https://stats.example.com/")
    expect(text.code, text.out).toBe(0)
    const link = /https:\/\/stats\.example\.com\/sites\/shop\.example#share=(sw_shr_[A-Za-z0-9_-]{43})/.exec(text.out)
    expect(link, text.out).not.toBeNull()
    const rows = await query<{ token_hash: string; label: string; site_id: number }>("SELECT token_hash, label, site_id FROM site_shares")
    expect(rows).toEqual([{ token_hash: hashKey(link![1]!), label: "for the agency", site_id: site.id }])
    expect(JSON.stringify(rows)).not.toContain(link![1])

    // the default base URL: this machine's HOST:PORT (0.0.0.0 → localhost)
    const json = await cliJson<Share>("share", "shop.example")
    expect(json.link).toBe(`http://localhost:8787/sites/shop.example#share=${json.token}`)
  }, 30_000)

  it("a share token reads its site only; a server key still reads; write keys and made-up tokens do not", async () => {
    const share = await cliJson<Share>("share", "shop.example")
    const byShare = await reader(share.token)
    expect(Exit.isSuccess(byShare) && byShare.value).toMatchObject({ id: site.id, hostname: "shop.example", access: "share" })
    const byKey = await reader(site.serverKey)
    expect(Exit.isSuccess(byKey) && byKey.value).toMatchObject({ id: site.id, access: "server_key" })
    const otherKey = await reader(other.serverKey)
    expect(Exit.isSuccess(otherKey) && otherKey.value).toMatchObject({ id: other.id })
    for (const bad of [site.writeKey, "sw_shr_made-up", share.token.slice(0, -1), "", undefined]) {
      const exit = await reader(bad)
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause), String(bad)).toContain("InvalidServerKey")
    }
    // the server-key-only check (server-side events) does not take a share token
    expect(Exit.isFailure(await Effect.runPromiseExit(sites.auth.authenticateHeader(`Bearer ${share.token}`)))).toBe(true)
  }, 30_000)

  it("revoke by id, by link or by token stops that link at once; the others keep working", async () => {
    const a = await cliJson<Share>("share", "shop.example")
    const b = await cliJson<Share>("share", "shop.example")
    const c = await cliJson<Share>("share", "shop.example")
    expect((await cli("share", "revoke", "shop.example", String(a.id))).code).toBe(0)
    expect(Exit.isFailure(await reader(a.token))).toBe(true)
    expect(Exit.isSuccess(await reader(b.token))).toBe(true)
    expect((await cli("share", "revoke", "shop.example", b.link)).code).toBe(0)
    expect(Exit.isFailure(await reader(b.token))).toBe(true)
    expect(Exit.isSuccess(await reader(c.token))).toBe(true)
    const revoked = await cliJson<{ revoked: Array<number> }>("share", "revoke", "shop.example", c.token)
    expect(revoked.revoked).toEqual([c.id])
    expect(Exit.isFailure(await reader(c.token))).toBe(true)

    const list = await cliJson<Array<{ id: number; revokedAt: string | null; label: string | null }>>("share", "list", "shop.example")
    expect(list.filter((s) => [a.id, b.id, c.id].includes(s.id)).every((s) => s.revokedAt !== null)).toBe(true)
    const text = await cli("share", "list", "shop.example")
    expect(text.out).toContain("for the agency")
    expect(text.out).not.toContain("sw_shr_")
  }, 60_000)

  it("revoke all stops every link of the site, not another site's", async () => {
    const mine = await cliJson<Share>("share", "shop.example")
    const theirs = await cliJson<Share>("share", "other.example")
    const all = await cliJson<{ revoked: Array<number> }>("share", "revoke", "shop.example", "all")
    expect(all.revoked).toContain(mine.id)
    expect(Exit.isFailure(await reader(mine.token))).toBe(true)
    expect(Exit.isSuccess(await reader(theirs.token))).toBe(true)
    // another site's link is not this site's to revoke
    const wrong = await cliBinary("share", "revoke", "shop.example", String(theirs.id))
    expect(wrong.code).toBe(1)
    expect(Exit.isSuccess(await reader(theirs.token))).toBe(true)
  }, 60_000)

  it("a removed site's links stop working; bad input is a clear error and changes nothing", async () => {
    const share = await cliJson<Share>("share", "other.example")
    const before = await query<{ n: string }>("SELECT count(*)::text AS n FROM site_shares")
    for (
      const [args, message] of [
        [["share", "nowhere.example"], "no site has the hostname 'nowhere.example'"],
        [["share", "shop.example", "--label", "  "], "invalid label"],
        [["share", "shop.example", "--base-url", "javascript:alert(1)"], "--base-url must be an http(s) URL"],
        [["share", "revoke", "shop.example", "not-a-link"], "not a share link"],
        [["share", "revoke", "shop.example", "999999"], "is no active share link"]
      ] as const
    ) {
      const result = await cli(...args)
      expect(result.code, result.out).toBe(1)
      expect(result.out).toContain(message)
    }
    expect(await query<{ n: string }>("SELECT count(*)::text AS n FROM site_shares")).toEqual(before)

    expect((await cli("remove", "other.example")).code).toBe(0)
    expect(Exit.isFailure(await reader(share.token))).toBe(true)
    const refused = await cli("share", "other.example")
    expect(refused.code).toBe(1)
    expect(refused.out).toContain("removed site")
  }, 60_000)
})
