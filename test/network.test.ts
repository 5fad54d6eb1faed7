/**
 * Network enrichment end to end below the writer: the real @ip-location-db/asn data through
 * `makeNetworkOf`, the derived flags, the Tor exit list, and the NetworkLookup layer (files,
 * Tor reload, cache, test layer).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer } from "effect"
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { findEntry } from "../src/domain/AsnTable.ts"
import { emptyNetwork, makeNetworkOf, networkInfo, type NetworkInfo, parseTorExitList, torExitCount } from "../src/domain/Network.ts"
import { ORG_TYPES } from "../src/domain/NetworkRules.ts"
import { ASN_FILES, loadAsnData, NetworkDataUnavailable, NetworkLookup, packageDirectory, versionDate } from "../src/layers/NetworkLookup.ts"

const data = await Effect.runPromise(loadAsnData())
const { table } = data
const networkOf = makeNetworkOf(table)

const expectNetwork = (ip: string, expected: Partial<NetworkInfo>) => {
  const info = networkOf(ip)
  for (const [key, value] of Object.entries(expected)) assert.deepStrictEqual(info[key as keyof NetworkInfo], value, `${ip}: ${key}`)
  return info
}

describe("known addresses (real data set)", () => {
  it("8.8.8.8 → AS15169 Google LLC, hosting, flagged", () => {
    assert.deepStrictEqual(networkOf("8.8.8.8"), {
      asn: 15169,
      org: "Google LLC",
      orgType: "hosting",
      isDatacenter: true,
      isVpn: false,
      isGovernment: false,
      isTor: null,
      proxyType: "hosting",
      responseTier: "flag"
    })
  })

  it("university ranges → education", () => {
    expectNetwork("128.32.0.1", { asn: 25, org: "University of California at Berkeley", orgType: "education", isDatacenter: false, responseTier: "allow" })
    expectNetwork("18.0.0.1", { asn: 3, org: "Massachusetts Institute of Technology", orgType: "education" })
  })

  it("ISP ranges → isp", () => {
    expectNetwork("23.24.0.1", { asn: 7922, orgType: "isp", isDatacenter: false, isVpn: false, proxyType: null, responseTier: "allow" })
    expectNetwork("2.58.100.1", { asn: 3320, org: "Deutsche Telekom AG", orgType: "isp" })
  })

  it("government, VPN and AWS", () => {
    expectNetwork("6.16.172.1", { asn: 721, orgType: "government", isGovernment: true, responseTier: "allow" })
    expectNetwork("45.83.220.1", { asn: 39351, orgType: "vpn", isVpn: true, isDatacenter: true, proxyType: "vpn", responseTier: "flag" })
    expectNetwork("1.44.96.1", { asn: 16509, orgType: "hosting", isDatacenter: true })
  })

  it("IPv6: Google's resolver, Facebook", () => {
    expectNetwork("2001:4860:4860::8888", { asn: 15169, orgType: "hosting" })
    expectNetwork("2a03:2880:f10c:83:face:b00c:0:25de", { asn: 32934, orgType: "business" })
  })

  it("IPv4-mapped IPv6 gives the IPv4 answer (same shared value)", () => {
    assert.strictEqual(networkOf("::ffff:8.8.8.8"), networkOf("8.8.8.8"))
    assert.strictEqual(networkOf("::ffff:808:808"), networkOf("8.8.8.8"))
  })

  it.each(["10.0.0.1", "192.168.1.1", "172.16.5.4", "127.0.0.1", "100.64.0.1", "169.254.1.1", "224.0.0.1", "::1", "::", "fe80::1%eth0", "fd00::1", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:192.168.0.1", "203.0.113.7"])(
    "private / reserved %s → all null",
    (ip) => assert.strictEqual(networkOf(ip), emptyNetwork)
  )

  it.each(["", "nope", "8.8.8", "8.8.8.8:53", "[::1]", "1.2.3.256"])("malformed %j → all null", (ip) => assert.strictEqual(networkOf(ip), emptyNetwork))

  it("undefined → all null", () => assert.strictEqual(networkOf(undefined), emptyNetwork))

  it("a public address in no range → all null", () => {
    assert.strictEqual(findEntry(table, "1.0.1.0"), -1)
    assert.strictEqual(networkOf("1.0.1.0"), emptyNetwork)
  })
})

describe("range boundaries (real data set)", () => {
  it("IPv4: first and last address of a range, the gap after it, the next range's first address", () => {
    expectNetwork("1.0.0.0", { asn: 13335, org: "Cloudflare, Inc." })
    expectNetwork("1.0.0.255", { asn: 13335 })
    assert.strictEqual(networkOf("1.0.1.0"), emptyNetwork)
    assert.strictEqual(networkOf("1.0.3.255"), emptyNetwork)
    expectNetwork("1.0.4.0", { asn: 38803, org: "Gtelecom Pty Ltd" })
  })

  it("IPv6: adjacent ranges of different ASes", () => {
    expectNetwork("2001:200::", { asn: 2500, org: "WIDE Project" })
    expectNetwork("2001:200:1b9:ffff:ffff:ffff:ffff:ffff", { asn: 2500 })
    expectNetwork("2001:200:1ba::", { asn: 24047 })
  })

  it("the one overlapping row of this release is clipped: the earlier (DoD) range keeps its addresses", () => {
    assert.strictEqual(table.clipped, 1)
    expectNetwork("215.0.0.1", { asn: 749 })
    expectNetwork("215.1.0.0", { asn: 721 })
  })

  it("the numeric files agree with the text files (every 101st row, both ends)", async () => {
    const directory = packageDirectory()
    for (const name of ["asn-ipv4.csv", "asn-ipv6.csv"]) {
      const lines = (await readFile(join(directory, name), "utf8")).split("\n").filter((line) => line.length > 0)
      let checked = 0
      const mismatches: Array<string> = []
      for (let i = 0; i < lines.length; i += 101) {
        const [start, end, asn] = lines[i]!.split(",", 3) as [string, string, string]
        for (const ip of [start, end]) {
          const entry = findEntry(table, ip)
          if (entry < 0 || table.asns[entry] !== Number(asn)) mismatches.push(`${ip} AS${asn}`)
          checked++
        }
      }
      assert.isAbove(checked, 1000)
      assert.deepStrictEqual(mismatches, [], name)
    }
  })

  it("data set description", () => {
    assert.strictEqual(data.info.source, "@ip-location-db/asn")
    assert.match(data.info.version ?? "", /^\d+\.\d+\.\d{10}$/)
    assert.isAbove(data.info.ipv4Ranges, 300_000)
    assert.isAbove(data.info.ipv6Ranges, 50_000)
    assert.strictEqual(data.info.autonomousSystems, table.asns.length)
    assert.strictEqual(data.info.skipped, 0)
  })
})

describe("derived fields", () => {
  const as = (orgType: (typeof ORG_TYPES)[number]) => ({ asn: 64500, org: "Example", orgType })

  it.each([
    ["hosting", { isDatacenter: true, isVpn: false, isGovernment: false, proxyType: "hosting", responseTier: "flag" }],
    ["vpn", { isDatacenter: true, isVpn: true, isGovernment: false, proxyType: "vpn", responseTier: "flag" }],
    ["government", { isDatacenter: false, isVpn: false, isGovernment: true, proxyType: null, responseTier: "allow" }],
    ["education", { isDatacenter: false, isVpn: false, isGovernment: false, proxyType: null, responseTier: "allow" }],
    ["business", { isDatacenter: false, isVpn: false, isGovernment: false, proxyType: null, responseTier: "allow" }],
    ["isp", { isDatacenter: false, isVpn: false, isGovernment: false, proxyType: null, responseTier: "allow" }],
    ["unknown", { isDatacenter: false, isVpn: false, isGovernment: false, proxyType: null, responseTier: "allow" }]
  ] as const)("%s", (orgType, expected) => {
    assert.deepStrictEqual(networkInfo(as(orgType), null), { asn: 64500, org: "Example", orgType, isTor: null, ...expected })
    assert.deepStrictEqual(networkInfo(as(orgType), false), { asn: 64500, org: "Example", orgType, isTor: false, ...expected })
  })

  it("a Tor exit is flagged with proxyType tor, whatever its network", () => {
    for (const orgType of ORG_TYPES) {
      const info = networkInfo(as(orgType), true)
      assert.strictEqual(info.proxyType, "tor")
      assert.strictEqual(info.responseTier, "flag")
      assert.strictEqual(info.orgType, orgType)
    }
    assert.deepStrictEqual(networkInfo(null, true), { ...emptyNetwork, isTor: true, proxyType: "tor", responseTier: "flag" })
  })

  it("no AS: everything null except a Tor answer", () => {
    assert.deepStrictEqual(networkInfo(null, null), emptyNetwork)
    assert.deepStrictEqual(networkInfo(null, false), { ...emptyNetwork, isTor: false })
  })
})

describe("Tor exit list", () => {
  const listText = [
    "# the Tor Project's bulk exit list",
    "185.220.101.1",
    "  8.8.4.4  ",
    "",
    "2001:67c:e60:c0c:192:42:116:16",
    "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E",
    "Published 2026-06-01 12:00:00",
    "ExitAddress 1.0.0.7 2026-06-01 12:30:00",
    "LastStatus 2026-06-01 13:00:00",
    "not an address",
    "10.0.0.1"
  ].join("\n")

  it("parses plain lines and exit-addresses records; counts the rest as invalid", () => {
    const tor = parseTorExitList(listText)
    assert.strictEqual(torExitCount(tor), 5)
    assert.strictEqual(tor.invalid, 1)
  })

  it("isTor is true on the list, false off it, null without a list; private addresses stay all null", () => {
    const withTor = makeNetworkOf(table, { tor: parseTorExitList(listText) })
    assert.deepStrictEqual(withTor("8.8.4.4"), { ...networkOf("8.8.4.4"), isTor: true, proxyType: "tor", responseTier: "flag" })
    assert.deepStrictEqual(withTor("1.0.0.7"), { ...networkOf("1.0.0.7"), isTor: true, proxyType: "tor" })
    assert.strictEqual(withTor("2001:67c:e60:c0c:192:42:116:16").isTor, true)
    assert.strictEqual(withTor("::ffff:185.220.101.1").isTor, true)
    assert.deepStrictEqual(withTor("8.8.8.8"), { ...networkOf("8.8.8.8"), isTor: false })
    assert.strictEqual(withTor("2001:67c:e60:c0c:192:42:116:17").isTor, false)
    assert.deepStrictEqual(withTor("1.0.1.0"), { ...emptyNetwork, isTor: false })
    assert.strictEqual(withTor("10.0.0.1"), emptyNetwork)
    assert.strictEqual(networkOf("8.8.4.4").isTor, null)
  })
})

describe("NetworkLookup layer", () => {
  /** a data directory in the package's format with three ranges */
  const fixture = async () => {
    const dir = await mkdtemp(join(tmpdir(), "spoolway-network-"))
    await writeFile(join(dir, ASN_FILES.ipv4), "134744064,134744319,15169,Google LLC\n16777216,16777471,13335,\"Cloudflare, Inc.\"\n")
    await writeFile(join(dir, ASN_FILES.ipv6), "42541956101370907050197289607612071936,42541956180599069564461627201156022271,15169,Google LLC\n")
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "@ip-location-db/asn", version: "2.3.2025010203" }))
    return dir
  }

  const run = <A, E>(layer: Layer.Layer<NetworkLookup, E>, f: (lookup: NetworkLookup["Service"]) => Effect.Effect<A, E> | A) =>
    Effect.runPromise(
      Effect.gen(function*() {
        const service = yield* NetworkLookup
        const result = f(service)
        return Effect.isEffect(result) ? yield* result : result
      }).pipe(Effect.provide(layer), Effect.scoped) as Effect.Effect<A, E>
    )

  it("reads a data directory; describes it; caches per IP", async () => {
    const dir = await fixture()
    try {
      await run(NetworkLookup.layerWith({ dataDir: dir }), (lookup) => {
        assert.strictEqual(lookup.lookup("8.8.8.8").asn, 15169)
        assert.strictEqual(lookup.lookup("2001:4860:4860::8888").asn, 15169)
        assert.strictEqual(lookup.lookup("1.0.0.1").org, "Cloudflare, Inc.")
        assert.strictEqual(lookup.lookup("9.9.9.9"), emptyNetwork)
        assert.strictEqual(lookup.lookup(undefined), emptyNetwork)
        assert.strictEqual(lookup.lookup("8.8.8.8"), lookup.lookup("8.8.8.8"))
        const info = lookup.info()
        assert.deepInclude(info, { source: dir, version: "2.3.2025010203", date: "2025-01-02T03:00:00Z", ipv4Ranges: 2, ipv6Ranges: 1, autonomousSystems: 2, torExitList: null })
        assert.isAbove(info.tableBytes, 0)
      })
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it("a missing data directory fails with NetworkDataUnavailable", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.gen(function*() {
        yield* NetworkLookup
      }).pipe(Effect.provide(NetworkLookup.layerWith({ dataDir: join(tmpdir(), "spoolway-no-such-dir") })), Effect.scoped)
    )
    assert.isTrue(Exit.isFailure(exit))
    assert.include(String(exit), "NetworkDataUnavailable")
    assert.isTrue(Exit.isFailure(exit) && exit.cause.toString().includes("asn-ipv4-num.csv"))
    assert.strictEqual(new NetworkDataUnavailable({ message: "m", cause: null })._tag, "NetworkDataUnavailable")
  })

  it("TOR_EXIT_LIST: read at start, re-read when it changes, kept while missing", async () => {
    const dir = await fixture()
    const list = join(dir, "tor-exits.txt")
    try {
      await writeFile(list, "8.8.8.8\n")
      await run(NetworkLookup.layerWith({ dataDir: dir, torExitList: list, torCheckEvery: Duration.hours(1) }), (lookup) =>
        Effect.gen(function*() {
          assert.strictEqual(lookup.lookup("8.8.8.8").isTor, true)
          assert.strictEqual(lookup.lookup("1.0.0.1").isTor, false)
          assert.deepInclude(lookup.info().torExitList, { path: list, addresses: 1, invalidLines: 0, error: null })

          yield* Effect.promise(() => writeFile(list, "1.0.0.1\n2001:4860:4860::8888\nbogus\n"))
          yield* lookup.checkTorList
          assert.strictEqual(lookup.lookup("8.8.8.8").isTor, false, "the cached answer was dropped with the old list")
          assert.strictEqual(lookup.lookup("1.0.0.1").isTor, true)
          assert.strictEqual(lookup.lookup("2001:4860:4860::8888").isTor, true)
          assert.deepInclude(lookup.info().torExitList, { addresses: 2, invalidLines: 1 })

          yield* Effect.promise(() => unlink(list))
          yield* lookup.checkTorList
          assert.strictEqual(lookup.lookup("1.0.0.1").isTor, true, "the last list stays in force")
          assert.include(lookup.info().torExitList?.error ?? "", "ENOENT")
        }))
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it("TOR_EXIT_LIST missing at start: isTor null until the file appears (found by the periodic check)", async () => {
    const dir = await fixture()
    const list = join(dir, "later.txt")
    try {
      await run(NetworkLookup.layerWith({ dataDir: dir, torExitList: list, torCheckEvery: Duration.millis(20) }), (lookup) =>
        Effect.gen(function*() {
          assert.strictEqual(lookup.lookup("8.8.8.8").isTor, null)
          assert.deepInclude(lookup.info().torExitList, { path: list, addresses: null })
          yield* Effect.promise(() => writeFile(list, "8.8.8.8\n"))
          yield* Effect.sleep(Duration.millis(100)).pipe(Effect.repeat({ until: () => lookup.info().torExitList?.addresses === 1, times: 100 }))
          assert.strictEqual(lookup.lookup("8.8.8.8").isTor, true)
          assert.strictEqual(lookup.lookup("1.0.0.1").isTor, false)
        }))
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it("NetworkLookup.layer reads NETWORK_DATA_DIR and TOR_EXIT_LIST", async () => {
    const dir = await fixture()
    try {
      await writeFile(join(dir, "tor.txt"), "1.0.0.1\n")
      const env = ConfigProvider.layer(ConfigProvider.fromEnvRecord({ NETWORK_DATA_DIR: dir, TOR_EXIT_LIST: join(dir, "tor.txt") }))
      await run(NetworkLookup.layer.pipe(Layer.provide(env)), (lookup) => {
        assert.strictEqual(lookup.info().source, dir)
        assert.strictEqual(lookup.lookup("1.0.0.1").isTor, true)
      })
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it("the installed package: the default layer's data", async () => {
    await run(NetworkLookup.layerWith(), (lookup) => {
      assert.strictEqual(lookup.lookup("8.8.8.8").org, "Google LLC")
      assert.strictEqual(lookup.info().version, data.info.version)
    })
  })

  it("layerTest: a fixed table and Tor list", async () => {
    const layer = NetworkLookup.layerTest(
      [
        { start: "203.0.113.0", end: "203.0.113.255", asn: 64500, org: "Example Hosting Ltd" },
        { start: "2001:db8::", end: "2001:db8::ffff", asn: 64501, org: "Example University" }
      ],
      { torExitList: "198.51.100.9\n" }
    )
    await run(layer, (lookup) => {
      // taken literally: documentation ranges are looked up too
      assert.deepInclude(lookup.lookup("203.0.113.7"), { asn: 64500, org: "Example Hosting Ltd", orgType: "hosting", isTor: false, responseTier: "flag" })
      assert.deepInclude(lookup.lookup("2001:db8::1"), { asn: 64501, orgType: "education", responseTier: "allow" })
      assert.deepInclude(lookup.lookup("198.51.100.9"), { asn: null, isTor: true, proxyType: "tor" })
      assert.deepStrictEqual(lookup.lookup("8.8.8.8"), { ...emptyNetwork, isTor: false })
      assert.strictEqual(lookup.lookup("bogus"), emptyNetwork)
      assert.deepInclude(lookup.info(), { ipv4Ranges: 1, ipv6Ranges: 1, autonomousSystems: 2 })
      assert.strictEqual(lookup.info().torExitList?.addresses, 1)
    })
  })

  it("versionDate reads the package's YYYYMMDDHH version", () => {
    assert.strictEqual(versionDate("2.3.2026061719"), "2026-06-17T19:00:00Z")
    assert.isNull(versionDate("1.0.0"))
  })
})
