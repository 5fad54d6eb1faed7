/**
 * IP parsing and the ASN range table (src/domain/IpAddress.ts, src/domain/AsnTable.ts): exact
 * boundaries, CSV parsing, and the binary search held to a linear scan by property tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { isIP } from "node:net"
import { type AsnRange, asnTableFromRanges, buildAsnTable, findEntry, findV4, findV6, rangeCounts, tableBytes } from "../src/domain/AsnTable.ts"
import { publicIp } from "../src/domain/Geo.ts"
import { isPublicV4, isPublicV6, parseIp, parseIpv4 } from "../src/domain/IpAddress.ts"

const words = new Uint32Array(4)

/** dotted quad of an unsigned 32-bit number */
const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".")

/** eight 16-bit groups → IPv6 text, the longest run of ≥ 2 zero groups written as `::` */
const ipv6Text = (groups: ReadonlyArray<number>, compress = true): string => {
  const hex = groups.map((g) => g.toString(16))
  if (!compress) return hex.join(":")
  let best = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      best = i
      bestLength = j - i
    }
    i = j
  }
  if (best < 0) return hex.join(":")
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`
}

const groupsOf = (w: ReadonlyArray<number>) => w.flatMap((word) => [word >>> 16, word & 0xffff])
const bigOf = (w: ArrayLike<number>) => (BigInt(w[0]!) << 96n) | (BigInt(w[1]!) << 64n) | (BigInt(w[2]!) << 32n) | BigInt(w[3]!)

const Uint32 = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 4294967295 }))
/** words that sit on and around the word boundaries, so carries and comparisons across words are exercised */
const EdgeWord = Schema.Literals([0, 1, 2, 0x7fffffff, 0xfffffffe, 0xffffffff])
const Word = Schema.Union([Uint32, EdgeWord])
const Words = Schema.Tuple([Word, Word, Word, Word])

describe("parseIp", () => {
  it.each([
    ["8.8.8.8", 4, [0x08080808]],
    [" 1.2.3.4 ", 4, [0x01020304]],
    ["0.0.0.0", 4, [0]],
    ["255.255.255.255", 4, [0xffffffff]],
    ["::ffff:8.8.8.8", 4, [0x08080808]],
    ["::FFFF:8.8.8.8", 4, [0x08080808]],
    ["::ffff:808:808", 4, [0x08080808]],
    ["0:0:0:0:0:ffff:102:304", 4, [0x01020304]],
    ["::", 6, [0, 0, 0, 0]],
    ["::1", 6, [0, 0, 0, 1]],
    ["2001:db8::", 6, [0x20010db8, 0, 0, 0]],
    ["2001:4860:4860::8888", 6, [0x20014860, 0x48600000, 0, 0x8888]],
    ["1:2:3:4:5:6:7:8", 6, [0x10002, 0x30004, 0x50006, 0x70008]],
    ["1:2:3:4:5:6:7::", 6, [0x10002, 0x30004, 0x50006, 0x70000]],
    ["::2:3:4:5:6:7:8", 6, [0x2, 0x30004, 0x50006, 0x70008]],
    ["::1.2.3.4", 6, [0, 0, 0, 0x01020304]],
    ["64:ff9b::192.0.2.33", 6, [0x0064ff9b, 0, 0, 0xc0000221]],
    ["fe80::1%eth0", 6, [0xfe800000, 0, 0, 1]],
    ["FFFF:ffff:FFFF:ffff:ffff:ffff:ffff:ffff", 6, [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]]
  ] as const)("%s → IPv%i %j", (ip, family, expected) => {
    assert.strictEqual(parseIp(ip, words), family)
    assert.deepStrictEqual(Array.from(words.subarray(0, expected.length)), [...expected])
  })

  it.each([
    "", " ", "not-an-ip", "1.2.3", "1.2.3.4.5", "256.1.1.1", "999.1.1.1", "01.2.3.4", "1.2.3.04", "1..2.3", "1.2.3.", ".1.2.3",
    "1.2.3.4:80", "[::1]", ":", ":::", "1:::2", "::1::", "1::2::3", ":1::", "1::2:", "12345::", "g::", "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "::1.2.3.4:5", "1.2.3.4::", "-1.2.3.4"
  ])("%j is not an IP", (ip) => {
    assert.strictEqual(parseIp(ip, words), 0)
    assert.strictEqual(isIP(ip.trim()), 0)
  })

  it("a zone id is dropped before parsing, as Geo.publicIp does (even after an IPv4 address)", () => {
    assert.strictEqual(parseIp("1.2.3.4%x", words), 4)
    assert.strictEqual(words[0], 0x01020304)
    assert.deepStrictEqual(publicIp("1.2.3.4%x"), { address: "1.2.3.4", family: 4 })
  })

  it.prop("IPv4: dotted text of any number parses back to it", [Uint32], ([n]) => {
    assert.strictEqual(parseIp(dotted(n), words), 4)
    assert.strictEqual(words[0], n)
    assert.strictEqual(parseIpv4(dotted(n)), n)
  })

  it.prop("IPv6: full and compressed text of any address parse to its words; node agrees it is an IP", [Words], ([w]) => {
    const mapped = w[0] === 0 && w[1] === 0 && w[2] === 0xffff
    for (const text of [ipv6Text(groupsOf(w), false), ipv6Text(groupsOf(w))]) {
      assert.strictEqual(isIP(text), 6, text)
      assert.strictEqual(parseIp(text, words), mapped ? 4 : 6, text)
      if (mapped) assert.strictEqual(words[0], w[3])
      else assert.deepStrictEqual(Array.from(words), [...w], text)
    }
  })

  it.prop("accepts exactly what node's isIP accepts (IP-like strings)", [Schema.Array(Schema.Literals(["1", "0", "a", "f", "ff", "255", "256", "01", ".", ":", "::", "1.2.3.4", " "])).check(Schema.isMaxLength(12))], ([parts]) => {
    const text = parts.join("")
    assert.strictEqual(parseIp(text, words) !== 0, isIP(text.trim()) !== 0, JSON.stringify(text))
  })

  it.prop("isPublicV4 / isPublicV6 agree with Geo.publicIp", [Uint32, Words], ([n, w]) => {
    assert.strictEqual(isPublicV4(n), publicIp(dotted(n)) !== null, dotted(n))
    const text = ipv6Text(groupsOf(w))
    if (parseIp(text, words) === 6) assert.strictEqual(isPublicV6(words), publicIp(text) !== null, text)
  })
})

/** The CSV rows for `ranges` in the package's numeric format. */
const numericCsv = (rows: ReadonlyArray<readonly [bigint | number, bigint | number, number, string]>, eol = "\n") =>
  new TextEncoder().encode(rows.map(([s, e, asn, org]) => `${s},${e},${asn},${org}`).join(eol) + eol)

describe("buildAsnTable (numeric CSV)", () => {
  const v6 = (text: string) => {
    assert.strictEqual(parseIp(text, words), 6)
    return bigOf(words)
  }
  const table = buildAsnTable({
    ipv4: numericCsv([
      [16777216, 16777471, 13335, "\"Cloudflare, Inc.\""],
      [16778240, 16779263, 38803, "Gtelecom Pty Ltd"],
      [16779400, 16779400, 201907, "\"LLC \"\"SPUTNIK\"\"\""],
      [4294967040, 4294967295, 64512, "Top of the range"],
      [16777300, 16777400, 1, "inside the Cloudflare row: dropped"],
      [16779000, 16779300, 2, "overlapping the end of Gtelecom: clipped"]
    ], "\r\n"),
    ipv6: numericCsv([
      [v6("2001::"), v6("2001::ffff:ffff:ffff:ffff:ffff:ffff"), 6939, "Hurricane Electric LLC"],
      [v6("2001:4860::"), v6("2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"), 15169, "Google LLC"],
      [v6("2a00::1"), v6("2a00::1"), 38803, "a different name for AS38803 (ignored)"],
      [v6("ffff:ffff:ffff:ffff::"), v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 64513, "Last"]
    ])
  })
  const at = (ip: string) => {
    const entry = findEntry(table, ip)
    return entry < 0 ? null : [table.asns[entry], table.orgs[entry]]
  }

  it("counts ranges; one row dropped and one clipped", () => {
    assert.deepStrictEqual(rangeCounts(table), { ipv4: 5, ipv6: 4 })
    assert.strictEqual(table.skipped, 1)
    assert.strictEqual(table.clipped, 1)
    assert.isAbove(tableBytes(table), 0)
  })

  it("first and last address of a range, the gaps around it", () => {
    assert.deepStrictEqual(at("1.0.0.0"), [13335, "Cloudflare, Inc."])
    assert.deepStrictEqual(at("1.0.0.255"), [13335, "Cloudflare, Inc."])
    assert.deepStrictEqual(at("1.0.0.100"), [13335, "Cloudflare, Inc."], "the contained row lost to the earlier one")
    assert.isNull(at("0.255.255.255"))
    assert.isNull(at("1.0.1.0"))
    assert.isNull(at("1.0.3.255"))
    assert.deepStrictEqual(at("1.0.4.0"), [38803, "Gtelecom Pty Ltd"])
    assert.deepStrictEqual(at("1.0.7.255"), [38803, "Gtelecom Pty Ltd"])
    assert.deepStrictEqual(at("1.0.8.0"), [2, "overlapping the end of Gtelecom: clipped"], "clipped to start after Gtelecom")
    assert.deepStrictEqual(at("1.0.8.36"), [2, "overlapping the end of Gtelecom: clipped"])
    assert.isNull(at("1.0.8.37"))
    assert.isNull(at("1.0.8.135"))
    assert.deepStrictEqual(at("1.0.8.136"), [201907, "LLC \"SPUTNIK\""], "a one-address range; quotes unescaped")
    assert.isNull(at("1.0.8.137"))
    assert.deepStrictEqual(at("255.255.255.0"), [64512, "Top of the range"])
    assert.deepStrictEqual(at("255.255.255.255"), [64512, "Top of the range"])
    assert.isNull(at("255.255.254.255"))
  })

  it("IPv6 boundaries, 128-bit values, one name per AS across families", () => {
    assert.deepStrictEqual(at("2001::"), [6939, "Hurricane Electric LLC"])
    assert.deepStrictEqual(at("2001::ffff:ffff:ffff:ffff:ffff:ffff"), [6939, "Hurricane Electric LLC"])
    assert.deepStrictEqual(at("2001:0:1::"), [6939, "Hurricane Electric LLC"])
    assert.isNull(at("2001:1::"))
    assert.isNull(at("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
    assert.deepStrictEqual(at("2001:4860:4860::8888"), [15169, "Google LLC"])
    assert.isNull(at("2001:4861::"))
    assert.isNull(at("2a00::"))
    assert.deepStrictEqual(at("2a00::1"), [38803, "Gtelecom Pty Ltd"])
    assert.isNull(at("2a00::2"))
    assert.deepStrictEqual(at("ffff:ffff:ffff:ffff::"), [64513, "Last"])
    assert.deepStrictEqual(at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), [64513, "Last"])
    assert.isNull(at("ffff:ffff:ffff:fffe:ffff:ffff:ffff:ffff"))
  })

  it("IPv4-mapped IPv6 looks up the IPv4 table", () => {
    assert.deepStrictEqual(at("::ffff:1.0.0.1"), [13335, "Cloudflare, Inc."])
    assert.deepStrictEqual(at("::ffff:100:1"), [13335, "Cloudflare, Inc."])
    assert.isNull(at("::ffff:1.0.1.0"))
  })

  it("malformed rows are skipped, the rest kept; an empty file gives an empty family", () => {
    const broken = buildAsnTable({
      ipv4: new TextEncoder().encode(
        "16777216,16777471,13335,Cloudflare\nnot,a,row\n,,,\n16777472,16777471,5,end before start\n99999999999,99999999999,6,too big\n16777472\n16778240,16779263,38803,Gtelecom\n\n"
      ),
      ipv6: new Uint8Array(0)
    })
    assert.deepStrictEqual(rangeCounts(broken), { ipv4: 2, ipv6: 0 })
    assert.strictEqual(broken.skipped, 5)
    assert.strictEqual(findEntry(broken, "2001::1"), -1)
    assert.strictEqual(broken.asns[findEntry(broken, "1.0.4.1")], 38803)
  })

  it("non-IP input finds nothing", () => {
    for (const ip of ["", "x", "1.0.0", "::ffff:1.0.0"]) assert.strictEqual(findEntry(table, ip), -1)
  })
})

/** Reference: ranges in (start, file order), the first that contains the address wins. */
const linearScan = (ranges: ReadonlyArray<{ readonly start: bigint; readonly end: bigint; readonly asn: number }>, address: bigint): number | null => {
  const ordered = ranges
    .map((range, index) => ({ ...range, index }))
    .filter((range) => range.start <= range.end)
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.index - b.index))
  return ordered.find((range) => range.start <= address && address <= range.end)?.asn ?? null
}

const asnOf = (table: ReturnType<typeof asnTableFromRanges>, entry: number) => (entry < 0 ? null : table.asns[entry]!)

describe("binary search = linear scan", () => {
  const Small = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 300 }))
  const Asn = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 50 }))

  const checkV4 = (raw: ReadonlyArray<readonly [number, number, number]>, queries: ReadonlyArray<number>) => {
    const ranges = raw.map(([a, b, asn]) => ({ start: BigInt(a), end: BigInt(b), asn }))
    const table = asnTableFromRanges(raw.map(([a, b, asn]): AsnRange => ({ start: dotted(a), end: dotted(b), asn, org: `AS${asn}` })))
    const probes = new Set(queries)
    for (const [a, b] of raw) for (const p of [a - 1, a, a + 1, b - 1, b, b + 1]) if (p >= 0 && p <= 0xffffffff) probes.add(p)
    for (const q of probes) assert.strictEqual(asnOf(table, findV4(table, q)), linearScan(ranges, BigInt(q)), dotted(q))
  }

  it.prop(
    "IPv4, dense overlapping ranges in any order",
    [Schema.Array(Schema.Tuple([Small, Small, Asn])).check(Schema.isMaxLength(40)), Schema.Array(Small)],
    ([raw, queries]) => checkV4(raw, queries),
    { arbitrary: { runs: 300 } }
  )

  it.prop(
    "IPv4, ranges anywhere in the address space",
    [Schema.Array(Schema.Tuple([Uint32, Uint32, Asn])).check(Schema.isMaxLength(40)), Schema.Array(Uint32)],
    ([raw, queries]) => checkV4(raw.map(([a, b, asn]) => [Math.min(a, b), Math.max(a, b), asn] as const), queries),
    { arbitrary: { runs: 300 } }
  )

  it.prop(
    "IPv6, ranges with words on the word boundaries (several sample blocks)",
    [Schema.Array(Schema.Tuple([Words, Words, Asn])).check(Schema.isMaxLength(80)), Schema.Array(Words).check(Schema.isMaxLength(20))],
    ([raw, queries]) => {
      const ranges = raw.map(([a, b, asn]) => ({ start: bigOf(a), end: bigOf(b), asn }))
      const text = (big: bigint) => ipv6Text(Array.from({ length: 8 }, (_, i) => Number((big >> BigInt(112 - 16 * i)) & 0xffffn)))
      const table = asnTableFromRanges(raw.map(([a, b, asn]): AsnRange => ({ start: ipv6Text(groupsOf(a)), end: ipv6Text(groupsOf(b)), asn, org: "" })))
      // IPv4-mapped bounds are looked up as IPv4 by parseIp; the property is about the IPv6 table, so query words directly
      const v4Mapped = (big: bigint) => big >> 32n === 0xffffn
      const usable = ranges.filter((r) => !v4Mapped(r.start) && !v4Mapped(r.end))
      const probes = new Set<bigint>(queries.map(bigOf))
      const max = (1n << 128n) - 1n
      for (const r of usable) for (const p of [r.start - 1n, r.start, r.start + 1n, r.end - 1n, r.end, r.end + 1n]) if (p >= 0n && p <= max) probes.add(p)
      const q = new Uint32Array(4)
      for (const p of probes) {
        for (let w = 0; w < 4; w++) q[w] = Number((p >> BigInt(96 - 32 * w)) & 0xffffffffn)
        assert.strictEqual(asnOf(table, findV6(table, q)), linearScan(usable, p), text(p))
      }
    },
    { arbitrary: { runs: 300 } }
  )
})
