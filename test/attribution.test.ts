import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import {
  resolveTrafficSource,
  TRAFFIC_SOURCES,
  type TrafficSource,
  type TrafficSourceInput,
  type TrafficSourceKind
} from "../src/domain/Attribution.ts"

interface Case {
  readonly name: string
  readonly input: TrafficSourceInput
  readonly source: TrafficSourceKind
}

/** Expected sources, written from the rules in docs/architecture.md, "Enrichment" → traffic source. */
const cases: ReadonlyArray<Case> = [
  // --- nothing
  { name: "no input at all", input: {}, source: "direct" },
  { name: "only whitespace everywhere", input: { utmSource: "  ", utmMedium: "\t", referrer: " \n " }, source: "direct" },
  { name: "empty strings count as absent", input: { utmSource: "", utmMedium: "", referrer: "" }, source: "direct" },

  // --- medium table
  { name: "medium cpc", input: { utmSource: "google", utmMedium: "cpc" }, source: "paid" },
  { name: "medium ppc", input: { utmSource: "bing", utmMedium: "ppc" }, source: "paid" },
  { name: "medium paid", input: { utmSource: "facebook", utmMedium: "paid" }, source: "paid" },
  { name: "medium paidsearch", input: { utmSource: "google", utmMedium: "paidsearch" }, source: "paid" },
  { name: "medium email", input: { utmSource: "mailchimp", utmMedium: "email" }, source: "email" },
  { name: "medium newsletter", input: { utmSource: "weekly", utmMedium: "newsletter" }, source: "email" },
  { name: "medium social", input: { utmSource: "acme", utmMedium: "social" }, source: "social" },
  { name: "medium social-media", input: { utmSource: "acme", utmMedium: "social-media" }, source: "social" },
  { name: "medium affiliate", input: { utmSource: "blog", utmMedium: "affiliate" }, source: "affiliate" },
  { name: "medium partner", input: { utmSource: "blog", utmMedium: "partner" }, source: "affiliate" },
  { name: "medium organic", input: { utmSource: "acme", utmMedium: "organic" }, source: "organic" },
  { name: "medium referral", input: { utmSource: "google", utmMedium: "referral" }, source: "referral" },
  { name: "medium is case-insensitive", input: { utmSource: "x", utmMedium: "CPC" }, source: "paid" },
  { name: "medium is trimmed", input: { utmSource: "x", utmMedium: "  Email  " }, source: "email" },
  { name: "medium alone (no source) is UTM", input: { utmMedium: "newsletter" }, source: "email" },
  { name: "medium beats a social referrer", input: { utmMedium: "cpc", referrer: "https://facebook.com/" }, source: "paid" },
  { name: "medium beats the source name", input: { utmSource: "facebook", utmMedium: "email" }, source: "email" },

  // --- source without a (recognised) medium
  { name: "source facebook", input: { utmSource: "facebook" }, source: "social" },
  { name: "source Twitter (case)", input: { utmSource: "Twitter" }, source: "social" },
  { name: "source x", input: { utmSource: "x" }, source: "social" },
  { name: "source instagram", input: { utmSource: "instagram" }, source: "social" },
  { name: "source LinkedIn", input: { utmSource: "LinkedIn" }, source: "social" },
  { name: "source reddit", input: { utmSource: "reddit" }, source: "social" },
  { name: "source youtube", input: { utmSource: "youtube" }, source: "social" },
  { name: "source tiktok", input: { utmSource: "tiktok" }, source: "social" },
  { name: "source pinterest", input: { utmSource: "pinterest" }, source: "social" },
  { name: "source google", input: { utmSource: "google" }, source: "organic" },
  { name: "source Bing (case)", input: { utmSource: "Bing" }, source: "organic" },
  { name: "source duckduckgo", input: { utmSource: "duckduckgo" }, source: "organic" },
  { name: "source yahoo", input: { utmSource: "yahoo" }, source: "organic" },
  { name: "source yandex", input: { utmSource: "yandex" }, source: "organic" },
  { name: "source baidu", input: { utmSource: "baidu" }, source: "organic" },
  { name: "source ecosia", input: { utmSource: "ecosia" }, source: "organic" },
  { name: "source unknown → referral", input: { utmSource: "partnerblog" }, source: "referral" },
  { name: "source trimmed", input: { utmSource: "  facebook " }, source: "social" },
  { name: "unrecognised medium display: source decides (social)", input: { utmSource: "facebook", utmMedium: "display" }, source: "social" },
  { name: "unrecognised medium banner: source decides (organic)", input: { utmSource: "google", utmMedium: "banner" }, source: "organic" },
  { name: "unrecognised medium: unknown source → referral", input: { utmSource: "acme", utmMedium: "cpm" }, source: "referral" },
  { name: "source beats the referrer", input: { utmSource: "newsletter-partner", referrer: "https://www.google.com/" }, source: "referral" },
  { name: "social source beats a search referrer", input: { utmSource: "facebook", referrer: "https://www.google.com/" }, source: "social" },
  { name: "host-like source facebook.com", input: { utmSource: "facebook.com" }, source: "social" },
  { name: "host-like source google.co.uk", input: { utmSource: "google.co.uk" }, source: "organic" },

  // --- campaign/content/term alone do not make an event UTM-attributed
  { name: "campaign alone: referrer decides", input: { utmCampaign: "spring", referrer: "https://www.google.de/" }, source: "organic" },
  { name: "term+content alone, no referrer → direct", input: { utmTerm: "shoes", utmContent: "hero" }, source: "direct" },
  { name: "unrecognised medium alone: referrer decides", input: { utmMedium: "display", referrer: "https://t.co/abc" }, source: "social" },
  { name: "unrecognised medium alone, nothing else → direct", input: { utmMedium: "display" }, source: "direct" },
  { name: "whitespace source with social referrer", input: { utmSource: "   ", referrer: "https://www.facebook.com/" }, source: "social" },

  // --- referrer only: social hosts (host or subdomain, www. dropped)
  { name: "ref facebook.com", input: { referrer: "https://facebook.com/" }, source: "social" },
  { name: "ref www.facebook.com", input: { referrer: "https://www.facebook.com/some/page" }, source: "social" },
  { name: "ref l.facebook.com", input: { referrer: "https://l.facebook.com/l.php?u=x" }, source: "social" },
  { name: "ref m.facebook.com", input: { referrer: "http://m.facebook.com" }, source: "social" },
  { name: "ref t.co", input: { referrer: "https://t.co/AbC123" }, source: "social" },
  { name: "ref x.com", input: { referrer: "https://x.com/someone/status/1" }, source: "social" },
  { name: "ref twitter.com", input: { referrer: "https://twitter.com/" }, source: "social" },
  { name: "ref instagram.com", input: { referrer: "https://www.instagram.com/" }, source: "social" },
  { name: "ref linkedin.com", input: { referrer: "https://www.linkedin.com/feed/" }, source: "social" },
  { name: "ref old.reddit.com", input: { referrer: "https://old.reddit.com/r/x" }, source: "social" },
  { name: "ref youtube.com", input: { referrer: "https://www.youtube.com/watch?v=1" }, source: "social" },
  { name: "ref m.youtube.com", input: { referrer: "https://m.youtube.com/" }, source: "social" },
  { name: "ref tiktok.com", input: { referrer: "https://www.tiktok.com/@a" }, source: "social" },
  { name: "ref upper-case host", input: { referrer: "HTTPS://WWW.FACEBOOK.COM/" }, source: "social" },
  { name: "ref with port", input: { referrer: "https://facebook.com:443/x" }, source: "social" },
  { name: "look-alike notfacebook.com", input: { referrer: "https://notfacebook.com/" }, source: "referral" },
  { name: "look-alike facebook.com.evil.example", input: { referrer: "https://facebook.com.evil.example/" }, source: "referral" },
  { name: "look-alike myx.com", input: { referrer: "https://myx.com/" }, source: "referral" },
  { name: "look-alike t.co.evil.example", input: { referrer: "https://t.co.evil.example/" }, source: "referral" },

  // --- referrer only: search engines with any public suffix
  { name: "ref google.com", input: { referrer: "https://www.google.com/" }, source: "organic" },
  { name: "ref google.co.uk", input: { referrer: "https://www.google.co.uk/" }, source: "organic" },
  { name: "ref google.de", input: { referrer: "https://google.de/" }, source: "organic" },
  { name: "ref google.com.au", input: { referrer: "https://www.google.com.au/search?q=a" }, source: "organic" },
  { name: "ref google.co.jp", input: { referrer: "https://www.google.co.jp/" }, source: "organic" },
  { name: "ref bing.com", input: { referrer: "https://www.bing.com/search?q=x" }, source: "organic" },
  { name: "ref duckduckgo.com", input: { referrer: "https://duckduckgo.com/" }, source: "organic" },
  { name: "ref search.yahoo.com", input: { referrer: "https://search.yahoo.com/search?p=x" }, source: "organic" },
  { name: "ref yahoo.co.jp", input: { referrer: "https://www.yahoo.co.jp/" }, source: "organic" },
  { name: "ref yandex.ru", input: { referrer: "https://yandex.ru/search/?text=x" }, source: "organic" },
  { name: "ref yandex.com.tr", input: { referrer: "https://yandex.com.tr/" }, source: "organic" },
  { name: "ref baidu.com", input: { referrer: "https://www.baidu.com/s?wd=x" }, source: "organic" },
  { name: "ref ecosia.org", input: { referrer: "https://www.ecosia.org/search?q=x" }, source: "organic" },
  { name: "ref trailing dot host", input: { referrer: "https://www.google.com./" }, source: "organic" },
  { name: "look-alike notgoogle.com", input: { referrer: "https://notgoogle.com/" }, source: "referral" },
  { name: "look-alike google.com.evil.example", input: { referrer: "https://google.com.evil.example/" }, source: "referral" },
  { name: "look-alike google.evil.com", input: { referrer: "https://google.evil.com/" }, source: "referral" },
  { name: "look-alike googleusercontent.com", input: { referrer: "https://lh3.googleusercontent.com/" }, source: "referral" },

  // --- referrer only: other / unparseable
  { name: "ref some blog", input: { referrer: "https://blog.example.org/post" }, source: "referral" },
  { name: "ref http IP host", input: { referrer: "http://93.184.216.34/page" }, source: "referral" },
  { name: "unparseable referrer", input: { referrer: "not a url" }, source: "direct" },
  { name: "scheme-less referrer is not a URL", input: { referrer: "www.google.com/search" }, source: "direct" },
  { name: "host-less referrer", input: { referrer: "about:blank" }, source: "direct" },
  { name: "garbage referrer", input: { referrer: "http://" }, source: "direct" }
]

const normalizeExpected = (input: TrafficSourceInput) => {
  const clean = (v: string | null | undefined) => (v === undefined || v === null || v.trim() === "" ? null : v.trim())
  return {
    rawSource: clean(input.utmSource),
    medium: clean(input.utmMedium),
    campaign: clean(input.utmCampaign),
    content: clean(input.utmContent),
    term: clean(input.utmTerm),
    referrer: clean(input.referrer)
  }
}

describe("resolveTrafficSource — source table", () => {
  it("has at least 40 cases", () => {
    assert.isAtLeast(cases.length, 40)
  })

  it.each(cases)("$name → $source", ({ input, source }) => {
    const result = resolveTrafficSource(input)
    assert.strictEqual(result.source, source)
  })
})

describe("resolveTrafficSource — reported fields", () => {
  it("reports every UTM value as given (trimmed, original case) and the referrer", () => {
    const result = resolveTrafficSource({
      utmSource: " Facebook ",
      utmMedium: "Paid",
      utmCampaign: " Spring Sale ",
      utmContent: "Hero-Banner",
      utmTerm: "Running Shoes",
      referrer: " https://www.google.com/ "
    })
    assert.deepStrictEqual(result, {
      source: "paid",
      rawSource: "Facebook",
      medium: "Paid",
      campaign: "Spring Sale",
      content: "Hero-Banner",
      term: "Running Shoes",
      referrer: "https://www.google.com/"
    } satisfies TrafficSource)
  })

  it("every absent field is null, never undefined", () => {
    const result = resolveTrafficSource({})
    assert.deepStrictEqual(result, {
      source: "direct",
      rawSource: null,
      medium: null,
      campaign: null,
      content: null,
      term: null,
      referrer: null
    })
    for (const value of Object.values(result)) assert.notStrictEqual(value, undefined)
  })

  it("an unrecognised medium is still reported", () => {
    const result = resolveTrafficSource({ utmSource: "facebook", utmMedium: "display" })
    assert.strictEqual(result.medium, "display")
    assert.strictEqual(result.source, "social")
  })

  it("campaign/content/term are reported even when the referrer decides", () => {
    const result = resolveTrafficSource({ utmCampaign: "c", utmContent: "ct", utmTerm: "t", referrer: "https://x.com/" })
    assert.strictEqual(result.source, "social")
    assert.strictEqual(result.rawSource, null)
    assert.strictEqual(result.campaign, "c")
    assert.strictEqual(result.content, "ct")
    assert.strictEqual(result.term, "t")
  })

  it("the referrer is reported when UTM decides", () => {
    const result = resolveTrafficSource({ utmSource: "newsletter", utmMedium: "email", referrer: "https://mail.example.com/" })
    assert.strictEqual(result.source, "email")
    assert.strictEqual(result.referrer, "https://mail.example.com/")
  })

  it("an unparseable referrer is still reported as given", () => {
    const result = resolveTrafficSource({ referrer: "not a url" })
    assert.strictEqual(result.source, "direct")
    assert.strictEqual(result.referrer, "not a url")
  })

  it.each(cases)("fields of '$name' are the trimmed inputs or null", ({ input }) => {
    const { source: _source, ...fields } = resolveTrafficSource(input)
    assert.deepStrictEqual(fields, normalizeExpected(input))
  })
})

const OptionalString = Schema.optionalKey(Schema.String)
const AnyInput = Schema.Struct({
  utmSource: OptionalString,
  utmMedium: OptionalString,
  utmCampaign: OptionalString,
  utmContent: OptionalString,
  utmTerm: OptionalString,
  referrer: OptionalString
})

/** Social hosts named in docs/architecture.md, "Enrichment". */
const SpecSocialHost = Schema.Literals([
  "facebook.com",
  "t.co",
  "x.com",
  "twitter.com",
  "instagram.com",
  "linkedin.com",
  "reddit.com",
  "youtube.com",
  "tiktok.com"
])
const Label = Schema.Literals(["google", "facebook", "www", "co", "uk", "com", "de", "t", "x", "yahoo", "search", "a1", "shop"])
const Labels = Schema.Array(Label).check(Schema.isMinLength(1), Schema.isMaxLength(5))

describe("resolveTrafficSource — properties", () => {
  it.prop(
    "always one of the 7 sources, never throws, no undefined",
    [AnyInput],
    ([input]) => {
      const result = resolveTrafficSource(input)
      assert.include(TRAFFIC_SOURCES, result.source)
      for (const value of Object.values(result)) assert.notStrictEqual(value, undefined)
    },
    { arbitrary: { runs: 1000 } }
  )

  it.prop("a spec social host and any of its subdomains is social", [SpecSocialHost, Labels], ([host, sub]) => {
    assert.strictEqual(resolveTrafficSource({ referrer: `https://${host}/p` }).source, "social")
    assert.strictEqual(resolveTrafficSource({ referrer: `https://${sub.join(".")}.${host}/p` }).source, "social")
  })

  it.prop("look-alikes of a spec social host are referrals", [SpecSocialHost], ([host]) => {
    assert.strictEqual(resolveTrafficSource({ referrer: `https://not${host}/` }).source, "referral")
    assert.strictEqual(resolveTrafficSource({ referrer: `https://${host}.evil.example/` }).source, "referral")
  })

  it.prop("any host under .evil.example is a referral", [Labels], ([labels]) => {
    assert.strictEqual(resolveTrafficSource({ referrer: `https://${labels.join(".")}.evil.example/` }).source, "referral")
  })

  it.prop("a leading www. never changes the classification", [Labels], ([labels]) => {
    const host = labels.join(".")
    const bare = resolveTrafficSource({ referrer: `https://${host}/` }).source
    assert.strictEqual(resolveTrafficSource({ referrer: `https://www.${host}/` }).source, bare)
  })

  it.prop(
    "URL-shaped referrers never throw and give a non-direct source unless unparseable",
    [Schema.String, Schema.String],
    ([host, path]) => {
      const referrer = `https://${host}/${path}`
      const result = resolveTrafficSource({ referrer })
      assert.include(TRAFFIC_SOURCES, result.source)
      let parseable = true
      try {
        // a host of only dots ("https://./") names no site: same as no referrer
        parseable = new URL(referrer.trim()).hostname.replace(/\.+$/, "").length > 0
      } catch {
        parseable = false
      }
      if (parseable) assert.notStrictEqual(result.source, "direct")
      else assert.strictEqual(result.source, "direct")
    }
  )

  it.prop("a recognised medium always wins over source and referrer", [Schema.String, Schema.String], ([source, referrer]) => {
    assert.strictEqual(resolveTrafficSource({ utmSource: source, utmMedium: "cpc", referrer }).source, "paid")
    assert.strictEqual(resolveTrafficSource({ utmSource: source, utmMedium: "Newsletter", referrer }).source, "email")
  })

  it.prop("whitespace around any value changes nothing", [AnyInput], ([input]) => {
    const padded: Record<string, string> = {}
    for (const [key, value] of Object.entries(input)) if (value !== undefined) padded[key] = `  ${value}\t`
    assert.deepStrictEqual(resolveTrafficSource(padded), resolveTrafficSource(input))
  })
})
