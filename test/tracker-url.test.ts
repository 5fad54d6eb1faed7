/** The tracker's URL helpers (tracker/src/url.ts), run under Node as the browser would run them. */
import { describe, expect, it } from "vitest"
import { DOWNLOADS, endpoint, isDownload, isLocal, MAX_TEXT, MAX_URL, pageKey, pageUrl, utm } from "../tracker/src/url.ts"

const place = (href: string) => {
  const u = new URL(href)
  return { href: u.href, pathname: u.pathname, hash: u.hash }
}

describe("pageUrl", () => {
  it("keeps path and query, drops the fragment", () => {
    expect(pageUrl(place("https://shop.example/p/1?utm_source=x&q=a%20b#reviews"))).toBe("https://shop.example/p/1?utm_source=x&q=a%20b")
  })
  it("keeps the fragment in hash mode", () => {
    expect(pageUrl(place("https://app.example/#/settings?tab=2"), true)).toBe("https://app.example/#/settings?tab=2")
  })
  it("an address without a fragment is the same either way", () => {
    expect(pageUrl(place("https://a.example/x"), true)).toBe("https://a.example/x")
    expect(pageUrl(place("https://a.example/x"), false)).toBe("https://a.example/x")
  })
  it("is cut to the collector's URL cap, so a long address still makes a valid view", () => {
    const url = pageUrl(place(`https://a.example/?q=${"x".repeat(10_000)}`))
    expect(url.length).toBe(MAX_URL)
    expect(url.startsWith("https://a.example/?q=xxx")).toBe(true)
  })
})

describe("pageKey", () => {
  it("is the path: a query change alone is not a new page", () => {
    expect(pageKey(place("https://a.example/list?page=2"))).toBe(pageKey(place("https://a.example/list?page=3")))
    expect(pageKey(place("https://a.example/a"))).not.toBe(pageKey(place("https://a.example/b")))
  })
  it("ignores the fragment unless in hash mode", () => {
    expect(pageKey(place("https://a.example/#/a"))).toBe(pageKey(place("https://a.example/#/b")))
    expect(pageKey(place("https://a.example/#/a"), true)).not.toBe(pageKey(place("https://a.example/#/b"), true))
  })
})

describe("utm", () => {
  it("maps the five utm_ parameters onto the view's attribution", () => {
    expect(utm("?utm_source=newsletter&utm_medium=email&utm_campaign=bf&utm_content=hero&utm_term=shoes")).toEqual({
      utmSource: "newsletter",
      utmMedium: "email",
      utmCampaign: "bf",
      utmContent: "hero",
      utmTerm: "shoes"
    })
  })
  it("is undefined without UTM parameters (no empty attribution object)", () => {
    expect(utm("")).toBeUndefined()
    expect(utm("?q=1&utm=2&utm_sourcex=3")).toBeUndefined()
  })
  it("decodes values as the query string encodes them (%20 and +)", () => {
    expect(utm("?utm_campaign=black%20friday&utm_term=red+shoes&utm_source=caf%C3%A9")).toEqual({
      utmCampaign: "black friday",
      utmTerm: "red shoes",
      utmSource: "café"
    })
  })
  it("skips empty values and takes the first of repeated ones", () => {
    expect(utm("?utm_source=&utm_medium=cpc&utm_medium=email")).toEqual({ utmMedium: "cpc" })
  })
  it("parameter names are case-sensitive, as every analytics tool reads them", () => {
    expect(utm("?UTM_SOURCE=x")).toBeUndefined()
  })
  it("cuts values to the collector's text cap", () => {
    expect(utm(`?utm_source=${"s".repeat(2000)}`)!.utmSource!.length).toBe(MAX_TEXT)
  })
})

describe("isDownload", () => {
  it("matches the extension of the path against the list, any case", () => {
    expect(isDownload("/files/Report.PDF", DOWNLOADS)).toBe(true)
    expect(isDownload("/a/b.tar.gz", DOWNLOADS)).toBe(true)
    expect(isDownload("/setup.exe", "PDF,EXE")).toBe(true)
  })
  it("does not match pages, directories or partial extensions", () => {
    expect(isDownload("/docs/pdf", DOWNLOADS)).toBe(false)
    expect(isDownload("/blog/", DOWNLOADS)).toBe(false)
    expect(isDownload("/index.html", DOWNLOADS)).toBe(false)
    expect(isDownload("/x.pdfx", DOWNLOADS)).toBe(false)
    // "z" is not "7z" nor "gz"
    expect(isDownload("/a.z", DOWNLOADS)).toBe(false)
  })
  it("a custom list replaces the default one", () => {
    expect(isDownload("/a.pdf", "zip")).toBe(false)
    expect(isDownload("/a.zip", "zip")).toBe(true)
  })
})

describe("isLocal", () => {
  it("localhost, 127.x.x.x, [::1] and file: pages are local", () => {
    for (const host of ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"]) expect(isLocal(host, "http:")).toBe(true)
    expect(isLocal("", "file:")).toBe(true)
  })
  it("other hosts are not, even when they start like one", () => {
    for (const host of ["example.com", "localhost.example.com", "127.example.com", "10.0.0.1", "mylocalhost"]) {
      expect(isLocal(host, "https:")).toBe(false)
    }
  })
})

describe("endpoint", () => {
  it("defaults to track/ next to the script", () => {
    expect(endpoint("https://stats.example.com/sw.js")("view")).toBe("https://stats.example.com/track/view")
    expect(endpoint("https://site.example/stats/sw.js")("event")).toBe("https://site.example/stats/track/event")
  })
  it("data-api is resolved against the script's URL, with or without a trailing slash", () => {
    expect(endpoint("https://site.example/js/sw.js", "/api/e")("view")).toBe("https://site.example/api/e/view")
    expect(endpoint("https://site.example/js/sw.js", "/api/e/")("view")).toBe("https://site.example/api/e/view")
    expect(endpoint("https://site.example/sw.js", "https://collector.example/track")("funnel")).toBe("https://collector.example/track/funnel")
  })
  it("adds the write key as ?writeKey=, encoded", () => {
    expect(endpoint("https://s.example/sw.js", undefined, "pk_123")("view")).toBe("https://s.example/track/view?writeKey=pk_123")
    expect(endpoint("https://s.example/sw.js", undefined, "a+b&c")("view")).toBe("https://s.example/track/view?writeKey=a%2Bb%26c")
  })
})
