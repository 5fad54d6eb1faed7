import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { tenantHost, type TenantHeaders } from "../src/domain/Tenant.ts"

const cases: ReadonlyArray<{ name: string; headers: TenantHeaders; expected: string | null }> = [
  { name: "Origin wins", headers: { origin: "https://shop.example.com", referer: "https://blog.example.com/p", host: "api.example.com" }, expected: "shop.example.com" },
  { name: "Referer when no Origin", headers: { referer: "https://blog.example.com/post?id=1#x", host: "api.example.com" }, expected: "blog.example.com" },
  { name: "Host when neither", headers: { host: "api.example.com" }, expected: "api.example.com" },
  { name: "nothing → null", headers: {}, expected: null },
  { name: "lower-cased", headers: { origin: "https://Shop.EXAMPLE.com" }, expected: "shop.example.com" },
  { name: "port stripped (Origin)", headers: { origin: "http://localhost:3000" }, expected: "localhost" },
  { name: "port stripped (Host)", headers: { host: "Example.com:8443" }, expected: "example.com" },
  { name: "trailing dot removed (Origin)", headers: { origin: "https://example.com." }, expected: "example.com" },
  { name: "trailing dot removed (Host)", headers: { host: "example.com.:8080" }, expected: "example.com" },
  { name: "www. is kept", headers: { origin: "https://www.example.com" }, expected: "www.example.com" },
  { name: "IPv6 Host with port → bare address", headers: { host: "[::1]:8080" }, expected: "::1" },
  { name: "IPv6 Origin → bare address", headers: { origin: "http://[2001:db8::1]:8080" }, expected: "2001:db8::1" },
  { name: "IPv4 Host with port", headers: { host: "127.0.0.1:8787" }, expected: "127.0.0.1" },
  { name: "IDN is punycoded", headers: { origin: "https://bücher.example" }, expected: "xn--bcher-kva.example" },
  { name: "Origin 'null' falls through to Referer", headers: { origin: "null", referer: "https://a.example/x" }, expected: "a.example" },
  { name: "unparseable Origin falls through to Host", headers: { origin: "::::", host: "b.example" }, expected: "b.example" },
  { name: "non-http Origin falls through", headers: { origin: "chrome-extension://abcdef", host: "c.example" }, expected: "c.example" },
  { name: "file: Referer falls through", headers: { referer: "file:///tmp/x.html", host: "d.example" }, expected: "d.example" },
  { name: "blank Origin falls through", headers: { origin: "   ", referer: "https://e.example/" }, expected: "e.example" },
  { name: "unparseable Referer falls through to Host", headers: { referer: "not a url", host: "f.example" }, expected: "f.example" },
  { name: "Host with a path is invalid", headers: { host: "evil.example/foo" }, expected: null },
  { name: "Host with userinfo is invalid", headers: { host: "user@evil.example" }, expected: null },
  { name: "Host with spaces is invalid", headers: { host: "a b.example" }, expected: null },
  { name: "Host with bad port is invalid", headers: { host: "g.example:notaport" }, expected: null },
  { name: "everything unusable → null", headers: { origin: "null", referer: "garbage", host: "" }, expected: null }
]

describe("tenantHost", () => {
  it.each(cases)("$name", ({ expected, headers }) => {
    assert.strictEqual(tenantHost(headers), expected)
  })

  it.prop(
    "never throws; result is lower-case without port, brackets or trailing dot",
    [Schema.Struct({
      origin: Schema.optionalKey(Schema.String),
      referer: Schema.optionalKey(Schema.String),
      host: Schema.optionalKey(Schema.String)
    })],
    ([headers]) => {
      const host = tenantHost(headers)
      if (host === null) return
      assert.isAbove(host.length, 0)
      assert.strictEqual(host, host.toLowerCase())
      assert.isFalse(host.endsWith("."))
      assert.isFalse(host.startsWith("["))
    },
    { arbitrary: { runs: 500 } }
  )
})
