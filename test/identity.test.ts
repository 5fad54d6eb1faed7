import { assert, describe, it } from "@effect/vitest"
import { createHash, createHmac } from "node:crypto"
import { Schema } from "effect"
import { hashIp, makeVisitorIdentityCache, saltDay, visitorIdDaily } from "../src/domain/Identity.ts"

const salt = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
const otherSalt = Uint8Array.from({ length: 32 }, (_, i) => 32 - i)
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** The daily visitor id (docs/architecture.md, "Enrichment"): sha256(salt, ip, ua, lang), fields NUL-separated, missing → "". */
const referenceVisitorId = (s: Uint8Array, ip?: string, ua?: string, lang?: string): string =>
  createHash("sha256")
    .update(Buffer.concat([Buffer.from(s), Buffer.from(`\0${ip ?? ""}\0${ua ?? ""}\0${lang ?? ""}`, "utf8")]))
    .digest("hex")

describe("hashIp", () => {
  it("is HMAC-SHA256 keyed by the salt (RFC 4231 test case 2)", () => {
    const key = new TextEncoder().encode("Jefe")
    assert.strictEqual(
      hashIp(key, "what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
  })

  it("is lower-case hex of 32 bytes and equals HMAC(salt, ip)", () => {
    const value = hashIp(salt, "203.0.113.7")
    assert.match(value!, /^[0-9a-f]{64}$/)
    assert.strictEqual(value, createHmac("sha256", salt).update("203.0.113.7").digest("hex"))
  })

  it("same IP, same salt → same hash (deterministic)", () => {
    assert.strictEqual(hashIp(salt, "2001:db8::1"), hashIp(Uint8Array.from(salt), "2001:db8::1"))
  })

  it("depends on the salt (another day → another hash)", () => {
    assert.notStrictEqual(hashIp(salt, "203.0.113.7"), hashIp(otherSalt, "203.0.113.7"))
  })

  it("depends on the IP", () => {
    assert.notStrictEqual(hashIp(salt, "203.0.113.7"), hashIp(salt, "203.0.113.8"))
  })

  it("matches HMAC for long (> 64 byte, hashed) and empty keys", () => {
    const longSalt = Uint8Array.from({ length: 100 }, (_, i) => (i * 31) % 256)
    assert.strictEqual(hashIp(longSalt, "203.0.113.7"), createHmac("sha256", longSalt).update("203.0.113.7").digest("hex"))
    const empty = new Uint8Array(0)
    assert.strictEqual(hashIp(empty, "203.0.113.7"), createHmac("sha256", empty).update("203.0.113.7").digest("hex"))
  })

  it("follows the salt's content, even when the same array is mutated between calls", () => {
    const mutable = Uint8Array.from(salt)
    const before = hashIp(mutable, "203.0.113.7")
    mutable[0] = mutable[0]! ^ 0xff
    const after = hashIp(mutable, "203.0.113.7")
    assert.notStrictEqual(after, before)
    assert.strictEqual(after, createHmac("sha256", mutable).update("203.0.113.7").digest("hex"))
    // alternating salts (two days in one batch) stay correct
    for (let i = 0; i < 3; i++) {
      assert.strictEqual(hashIp(salt, "1.2.3.4"), createHmac("sha256", salt).update("1.2.3.4").digest("hex"))
      assert.strictEqual(hashIp(otherSalt, "1.2.3.4"), createHmac("sha256", otherSalt).update("1.2.3.4").digest("hex"))
    }
  })

  it("no IP → null (absent, empty, whitespace)", () => {
    assert.isNull(hashIp(salt, undefined))
    assert.isNull(hashIp(salt, ""))
    assert.isNull(hashIp(salt, "   "))
  })

  it("is not the raw IP and not a plain sha256 of it", () => {
    const value = hashIp(salt, "198.51.100.1")!
    assert.notInclude(value, "198.51.100.1")
    assert.notStrictEqual(value, createHash("sha256").update("198.51.100.1").digest("hex"))
  })
})

describe("visitorIdDaily", () => {
  const ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
  const lang = "en-GB,en;q=0.9"

  it("returns 32 bytes as a Uint8Array", () => {
    const id = visitorIdDaily(salt, "203.0.113.7", ua, lang)
    assert.instanceOf(id, Uint8Array)
    assert.strictEqual(id.length, 32)
  })

  it("matches sha256(salt ‖ NUL ‖ ip ‖ NUL ‖ ua ‖ NUL ‖ lang)", () => {
    assert.strictEqual(hex(visitorIdDaily(salt, "203.0.113.7", ua, lang)), referenceVisitorId(salt, "203.0.113.7", ua, lang))
  })

  it("missing fields hash as empty strings", () => {
    assert.strictEqual(hex(visitorIdDaily(salt, undefined, undefined, undefined)), referenceVisitorId(salt, "", "", ""))
    assert.deepStrictEqual(visitorIdDaily(salt, undefined, ua, undefined), visitorIdDaily(salt, "", ua, ""))
    // sha256 of an empty salt and three empty fields = sha256 of three NUL bytes
    assert.strictEqual(
      hex(visitorIdDaily(new Uint8Array(0), undefined, undefined, undefined)),
      createHash("sha256").update(Buffer.of(0, 0, 0)).digest("hex")
    )
  })

  it("is deterministic", () => {
    assert.deepStrictEqual(visitorIdDaily(salt, "203.0.113.7", ua, lang), visitorIdDaily(Uint8Array.from(salt), "203.0.113.7", ua, lang))
  })

  it.each([
    { name: "salt", other: () => visitorIdDaily(otherSalt, "203.0.113.7", ua, lang) },
    { name: "ip", other: () => visitorIdDaily(salt, "203.0.113.8", ua, lang) },
    { name: "ua", other: () => visitorIdDaily(salt, "203.0.113.7", `${ua} x`, lang) },
    { name: "lang", other: () => visitorIdDaily(salt, "203.0.113.7", ua, "de-DE") },
    { name: "absent lang", other: () => visitorIdDaily(salt, "203.0.113.7", ua, undefined) },
    { name: "absent ip", other: () => visitorIdDaily(salt, undefined, ua, lang) }
  ])("changes when the $name changes", ({ other }) => {
    assert.notDeepEqual(hex(other()), hex(visitorIdDaily(salt, "203.0.113.7", ua, lang)))
  })

  it("field boundaries are unambiguous: (\"a\",\"bc\") ≠ (\"ab\",\"c\")", () => {
    assert.notStrictEqual(hex(visitorIdDaily(salt, "a", "bc", "")), hex(visitorIdDaily(salt, "ab", "c", "")))
    assert.notStrictEqual(hex(visitorIdDaily(salt, "", "a", "bc")), hex(visitorIdDaily(salt, "", "ab", "c")))
    assert.notStrictEqual(hex(visitorIdDaily(salt, "a", "", "b")), hex(visitorIdDaily(salt, "a", "b", "")))
  })

  it("returns a fresh array each time (callers may keep it)", () => {
    const a = visitorIdDaily(salt, "1.2.3.4", ua, lang)
    const b = visitorIdDaily(salt, "1.2.3.4", ua, lang)
    assert.notStrictEqual(a, b)
    a[0] = (a[0]! + 1) % 256
    assert.notDeepEqual(hex(a), hex(b))
  })

  it.prop("deterministic and 32 bytes for arbitrary fields", [Schema.String, Schema.String, Schema.String], ([ip, u, l]) => {
    const id = visitorIdDaily(salt, ip, u, l)
    assert.strictEqual(id.length, 32)
    assert.strictEqual(hex(id), referenceVisitorId(salt, ip, u, l))
  })

  it.prop("moving a character across a field boundary changes the id", [Schema.String, Schema.String, Schema.String], ([a, b, c]) => {
    // (a, "x"+b) vs (a+"x", b): same concatenation, different fields
    assert.notStrictEqual(hex(visitorIdDaily(salt, a, `x${b}`, c)), hex(visitorIdDaily(salt, `${a}x`, b, c)))
  })
})

describe("makeVisitorIdentityCache", () => {
  const Field = Schema.optionalKey(Schema.String)
  const Fields = Schema.Struct({ ip: Field, ua: Field, lang: Field })

  it.prop(
    "always what hashIp and visitorIdDaily give, through hits, misses, field shifts and salt changes",
    [Schema.Array(Schema.Struct({ fields: Fields, shift: Schema.Boolean, other: Schema.Boolean }))],
    ([calls]) => {
      const identity = makeVisitorIdentityCache(4) // tiny: evictions happen
      for (const { fields, other, shift } of calls) {
        const s = other ? otherSalt : salt
        // (ip + "x", ua) vs (ip, "x" + ua): the same concatenation, different fields
        const ip = shift && fields.ip !== undefined ? `${fields.ip}x` : fields.ip
        const ua = shift && fields.ip !== undefined ? fields.ua?.slice(1) : fields.ua
        for (let i = 0; i < 2; i++) {
          const got = identity(s, ip, ua, fields.lang)
          assert.strictEqual(got.ipHash, hashIp(s, ip))
          assert.strictEqual(hex(got.visitorIdDaily), hex(visitorIdDaily(s, ip, ua, fields.lang)))
        }
      }
    }
  )

  it("follows the salt's content when the same array is mutated, and across several salts", () => {
    const identity = makeVisitorIdentityCache()
    const mutable = Uint8Array.from(salt)
    const before = identity(mutable, "203.0.113.7", "ua", "de")
    mutable[0] = mutable[0]! ^ 0xff
    const after = identity(mutable, "203.0.113.7", "ua", "de")
    assert.notStrictEqual(after.ipHash, before.ipHash)
    assert.strictEqual(after.ipHash, hashIp(mutable, "203.0.113.7"))
    for (const s of [salt, otherSalt, Uint8Array.from(salt), mutable, salt]) {
      assert.strictEqual(hex(identity(s, "1.2.3.4", "ua", undefined).visitorIdDaily), hex(visitorIdDaily(s, "1.2.3.4", "ua", undefined)))
    }
  })

  it("missing and empty fields hash alike; no IP → no IP hash; a long UA is not cached but right", () => {
    const identity = makeVisitorIdentityCache()
    assert.deepStrictEqual(identity(salt, undefined, undefined, undefined), identity(salt, "", "", ""))
    assert.isNull(identity(salt, "  ", "ua", "de").ipHash)
    const long = "x".repeat(5000)
    assert.strictEqual(hex(identity(salt, "1.2.3.4", long, "de").visitorIdDaily), hex(visitorIdDaily(salt, "1.2.3.4", long, "de")))
  })
})

describe("saltDay", () => {
  it.each([
    { receivedAt: "2024-03-01T23:59:59.999Z", expected: "2024-03-01" },
    { receivedAt: "2024-03-02T00:00:00.000Z", expected: "2024-03-02" },
    { receivedAt: "2024-03-01T23:30:00-02:00", expected: "2024-03-02" },
    { receivedAt: "2024-12-31T22:00:00+05:00", expected: "2024-12-31" }
  ])("$receivedAt → $expected (UTC day)", ({ expected, receivedAt }) => {
    assert.strictEqual(saltDay(receivedAt), expected)
    assert.strictEqual(saltDay(new Date(receivedAt)), expected)
  })

  it("unparseable → null", () => {
    assert.isNull(saltDay("not a date"))
  })
})
