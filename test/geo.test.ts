import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { emptyGeo, type GeoInfo, publicIp } from "../src/domain/Geo.ts"
import { fromGeoipRecord, GeoLookup, makeGeoipLookup } from "../src/layers/GeoLookup.ts"

/** IPs in ranges that never have a location (private or unknown IPs give nulls). */
const nonPublic = [
  "10.0.0.1",
  "10.255.255.254",
  "192.168.1.1",
  "172.16.0.1",
  "172.31.255.1",
  "127.0.0.1",
  "169.254.10.20",
  "100.64.0.1",
  "0.0.0.0",
  "224.0.0.1",
  "255.255.255.255",
  "::1",
  "::",
  "fc00::1",
  "fd12:3456:789a::1",
  "fe80::1",
  "fe80::1%eth0",
  "ff02::1",
  "::ffff:10.0.0.1",
  "::ffff:192.168.0.1",
  "2001:db8::1",
  "192.0.2.1",
  "198.51.100.1",
  "203.0.113.1"
]

const malformed = ["", "  ", "not-an-ip", "999.1.1.1", "1.2.3", "8.8.8.8:53", "[::1]"]

describe("publicIp", () => {
  it.each(nonPublic)("%s is not public", (ip) => {
    assert.isNull(publicIp(ip))
  })

  it.each(malformed)("%j is not an IP", (ip) => {
    assert.isNull(publicIp(ip))
  })

  it("undefined → null", () => {
    assert.isNull(publicIp(undefined))
  })

  it.each([
    { ip: "8.8.8.8", address: "8.8.8.8", family: 4 },
    { ip: " 1.1.1.1 ", address: "1.1.1.1", family: 4 },
    { ip: "::ffff:8.8.8.8", address: "8.8.8.8", family: 4 },
    { ip: "2001:4860:4860::8888", address: "2001:4860:4860::8888", family: 6 }
  ])("$ip is public", ({ address, family, ip }) => {
    assert.deepStrictEqual(publicIp(ip), { address, family })
  })
})

describe("fromGeoipRecord", () => {
  it("maps a full record; DE is in the EU", () => {
    assert.deepStrictEqual(
      fromGeoipRecord({
        range: [0, 0],
        country: "DE",
        region: "BY",
        eu: "1",
        timezone: "Europe/Berlin",
        city: "Nuremberg",
        ll: [49.4, 11.0],
        metro: 0,
        area: 200
      }),
      { country: "DE", region: "BY", city: "Nuremberg", isEu: true, timezone: "Europe/Berlin" }
    )
  })

  it("empty strings become null; US is not in the EU", () => {
    assert.deepStrictEqual(
      fromGeoipRecord({
        range: [0, 0],
        country: "US",
        region: "",
        eu: "0",
        timezone: "America/Chicago",
        city: "",
        ll: [0, 0],
        metro: 0,
        area: 1000
      }),
      { country: "US", region: null, city: null, isEu: false, timezone: "America/Chicago" }
    )
  })

  it("EU membership comes from the country, not the data's stale flag", () => {
    const record = { range: [0, 0] as [number, number], region: "", timezone: "", city: "", ll: [0, 0] as [number, number], metro: 0, area: 0 }
    assert.isFalse(fromGeoipRecord({ ...record, country: "GB", eu: "1" }).isEu)
    assert.isTrue(fromGeoipRecord({ ...record, country: "FR", eu: "0" }).isEu)
    assert.isFalse(fromGeoipRecord({ ...record, country: "CH", eu: "0" }).isEu)
  })

  it("null record → all nulls", () => {
    assert.deepStrictEqual(fromGeoipRecord(null), emptyGeo)
  })
})

describe("makeGeoipLookup", () => {
  it("never asks the database about private IPs and survives a throwing database", () => {
    const asked: Array<string> = []
    const lookup = makeGeoipLookup({
      lookup: (ip) => {
        asked.push(String(ip))
        throw new Error("boom")
      }
    })
    assert.deepStrictEqual(lookup("10.1.2.3"), emptyGeo)
    assert.deepStrictEqual(asked, [])
    assert.deepStrictEqual(lookup("8.8.8.8"), emptyGeo)
    assert.deepStrictEqual(asked, ["8.8.8.8"])
  })
})

const allNull: GeoInfo = { country: null, region: null, city: null, isEu: null, timezone: null }

// Expected values are what geoip-lite 2.0.3's bundled (GeoLite2-derived) data holds for these
// well-known addresses, looked up with geoip-lite directly.
layer(GeoLookup.layer, { timeout: "60 seconds" })("GeoLookup.layer (geoip-lite data)", (it) => {
  it.effect("8.8.8.8 (Google DNS) → US, not EU", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      const info = geo.lookup("8.8.8.8")
      assert.strictEqual(info.country, "US")
      assert.strictEqual(info.isEu, false)
      assert.strictEqual(info.timezone, "America/Chicago")
      assert.isNull(info.region)
      assert.isNull(info.city)
    }))

  it.effect("81.2.69.142 (MaxMind test block) → GB/ENG/Newmarket, not EU", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      assert.deepStrictEqual(geo.lookup("81.2.69.142"), {
        country: "GB",
        region: "ENG",
        city: "Newmarket",
        // the bundled data still flags GB as EU ("1"); the UK left on 2020-02-01
        isEu: false,
        timezone: "Europe/London"
      })
    }))

  it.effect("1.1.1.1 → AU", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      assert.strictEqual(geo.lookup("1.1.1.1").country, "AU")
    }))

  it.effect("IPv4-mapped IPv6 ::ffff:8.8.8.8 → US", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      assert.strictEqual(geo.lookup("::ffff:8.8.8.8").country, "US")
    }))

  it.effect("IPv6 2001:4860:4860::8888 (Google DNS) → US", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      const info = geo.lookup("2001:4860:4860::8888")
      assert.strictEqual(info.country, "US")
      assert.strictEqual(info.isEu, false)
    }))

  it.effect("IPv6 2a00:1450:4001:80b::200e (Google Frankfurt) → DE, EU", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      assert.deepStrictEqual(geo.lookup("2a00:1450:4001:80b::200e"), {
        country: "DE",
        region: "HE",
        city: "Frankfurt am Main",
        isEu: true,
        timezone: "Europe/Berlin"
      })
    }))

  it.effect("private, reserved, loopback and malformed IPs → all nulls", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      for (const ip of [...nonPublic, ...malformed, undefined]) {
        assert.deepStrictEqual(geo.lookup(ip), allNull, String(ip))
      }
    }))
})

describe("GeoLookup.layerTest", () => {
  const berlin: GeoInfo = { country: "DE", region: "BE", city: "Berlin", isEu: true, timezone: "Europe/Berlin" }

  it.effect("answers from the fixed table, nulls otherwise", () =>
    Effect.gen(function*() {
      const geo = yield* GeoLookup
      assert.deepStrictEqual(geo.lookup("203.0.113.9"), berlin)
      assert.deepStrictEqual(geo.lookup("8.8.8.8"), allNull)
      assert.deepStrictEqual(geo.lookup(undefined), allNull)
      assert.deepStrictEqual(geo.lookup("toString"), allNull)
    }).pipe(Effect.provide(GeoLookup.layerTest({ "203.0.113.9": berlin }))))
})
