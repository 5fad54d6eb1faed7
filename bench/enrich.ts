/**
 * Enrichment throughput (issue 4): views/s through `enrichView` on one core.
 *
 *   npx node bench/enrich.ts        # from the repo root: the project's pinned Node 24
 *                                   # (strips types natively; the `.ts` imports resolve as-is)
 *   node --experimental-strip-types bench/enrich.ts   # any Node ≥ 22.6 on PATH
 * (A system Node 20 cannot run it: no type stripping.)
 *
 * Options (env): BENCH_VIEWS (views per round, default 200000), BENCH_ROUNDS (default 5),
 * BENCH_DISTINCT (distinct UAs in the repeat-heavy mix, default 400), BENCH_GEO=0 to skip the
 * scenario that includes the geoip-lite lookup (loads ~110 MB of data).
 *
 * Scenarios (same envelopes in each pair, same run):
 *  - repeat-heavy: BENCH_DISTINCT realistic UAs drawn with a Zipf(s = 1.1) distribution
 *  - all-unique:   every view has a UA never seen before (cache misses + LRU evictions)
 *  - each with the cached parser (production `enrichView`) and with the uncached parser
 *    (`makeEnrichView(parseDeviceUncached)`) as the same-run baseline.
 * Geo is an input of `enrichView`; the "+ geoip" line adds the real per-view lookup the writer
 * does through the GeoLookup service.
 */
import { cpus } from "node:os"
import { performance } from "node:perf_hooks"
import { enrichView, makeEnrichView } from "../src/domain/Enrich.ts"
import { parseDeviceUncached, userAgentCache } from "../src/domain/Device.ts"
import type { RawEventEnvelope } from "../src/domain/Envelope.ts"
import { emptyGeo, type GeoInfo } from "../src/domain/Geo.ts"

const VIEWS = Number(process.env["BENCH_VIEWS"] ?? 200_000)
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5)
const DISTINCT = Number(process.env["BENCH_DISTINCT"] ?? 400)
const WITH_GEO = process.env["BENCH_GEO"] !== "0"

// deterministic PRNG (mulberry32) so every run uses the same mix
const rng = (() => {
  let a = 0x9e3779b9
  return () => {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()
const pickFrom = <A>(items: ReadonlyArray<A>): A => items[Math.floor(rng() * items.length)]!
const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1))

// ---------------------------------------------------------------------------------------------
// Realistic UA generator: desktop/mobile/tablet browsers, in-app webviews and some bots
// ---------------------------------------------------------------------------------------------
const ANDROID_PHONES = ["Pixel 8", "Pixel 7a", "SM-S918B", "SM-A546B", "SM-G991B", "2201116SG", "CPH2451", "K", "moto g(60)"]
const ANDROID_TABLETS = ["SM-X700", "SM-T870", "Lenovo TB-X606F", "SM-X200"]
const BOTS = [
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  "Twitterbot/1.0",
  "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
]

/** One random realistic UA; `build` makes it unique when given. */
const makeUa = (build?: number): string => {
  const b = build === undefined ? `${int(0, 6)}.${int(0, 200)}` : `${Math.floor(build / 1000)}.${build % 1000}`
  const chrome = `${int(100, 126)}.0.${int(4000, 6500)}.${b}`
  const safari = `${int(14, 18)}.${int(0, 6)}`
  const ios = `${int(14, 18)}_${int(0, 7)}${rng() < 0.5 ? `_${int(1, 3)}` : ""}`
  switch (int(0, 11)) {
    case 0:
    case 1:
      return `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Safari/537.36`
    case 2:
      return `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Safari/537.36 Edg/${chrome}`
    case 3:
      return `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${safari}${build === undefined ? "" : `.${b}`} Safari/605.1.15`
    case 4:
      return `Mozilla/5.0 (Windows NT ${pickFrom(["10.0", "6.1", "6.3"])}; Win64; x64; rv:${int(100, 125)}.0) Gecko/20100101 Firefox/${int(100, 125)}.${build === undefined ? "0" : b}`
    case 5:
    case 6:
      return `Mozilla/5.0 (iPhone; CPU iPhone OS ${ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/${safari} Mobile/15E${build ?? int(100, 300)} Safari/604.1`
    case 7:
    case 8:
      return `Mozilla/5.0 (Linux; Android ${int(10, 14)}; ${pickFrom(ANDROID_PHONES)}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Mobile Safari/537.36`
    case 9:
      return `Mozilla/5.0 (Linux; Android ${int(11, 14)}; ${pickFrom(ANDROID_TABLETS)}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chrome} Safari/537.36`
    case 10:
      return rng() < 0.5
        ? `Mozilla/5.0 (iPhone; CPU iPhone OS ${ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram ${int(280, 320)}.0.${b} (iPhone14,5; iOS ${ios}; en_US; en; scale=3.00; 1170x2532; 537288532)`
        : `Mozilla/5.0 (Linux; Android ${int(11, 14)}; ${pickFrom(ANDROID_PHONES)} Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/${chrome} Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/${int(400, 450)}.0.0.${b};]`
    default:
      return build === undefined ? pickFrom(BOTS) : `${pickFrom(BOTS)} r${b}`
  }
}

const REFERRERS = [
  undefined,
  undefined,
  "https://www.google.com/",
  "https://www.google.co.uk/",
  "https://l.facebook.com/l.php?u=x",
  "https://t.co/abc",
  "https://news.ycombinator.com/item?id=1",
  "https://blog.example.org/post/1",
  "https://duckduckgo.com/"
]
const ATTRIBUTIONS: ReadonlyArray<RawEventEnvelope["payload"]["attribution"]> = [
  undefined,
  undefined,
  undefined,
  { utmSource: "newsletter", utmMedium: "email", utmCampaign: "may" },
  { utmSource: "google", utmMedium: "cpc", utmTerm: "shoes" },
  { utmSource: "facebook" }
]
const ORIGINS = ["https://shop.example.com", "https://www.example.org", "https://blog.example.net"]
const LANGS = ["en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9", "en-GB,en;q=0.9"]

const makeEnvelope = (i: number, ua: string): RawEventEnvelope => {
  const referrer = pickFrom(REFERRERS)
  const attribution = pickFrom(ATTRIBUTIONS)
  const origin = pickFrom(ORIGINS)
  const mobile = /Mobile|iPhone/.test(ua)
  return {
    v: 1,
    eventId: `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
    kind: "view",
    receivedAt: "2024-05-01T12:00:00.000Z",
    edge: {
      ip: rng() < 0.7 ? `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}` : `2a01:4f8:${int(0, 0xffff).toString(16)}::${int(1, 0xffff).toString(16)}`,
      ua,
      lang: pickFrom(LANGS),
      headers: { origin, referer: `${origin}/page/${i % 50}`, host: "collector.example:8787" }
    },
    payload: {
      eventType: "pageview",
      sessionId: `s-${i}`,
      pageUrl: `${origin}/page/${i % 50}`,
      isView: true,
      timestamp: 1_714_564_800_000 + i,
      ...(referrer === undefined ? {} : { referrer }),
      ...(attribution === undefined ? {} : { attribution }),
      clientDevice: mobile
        ? { screenWidth: 390, screenHeight: 844, viewportWidth: 390, viewportHeight: 664, pixelRatio: 3, touchPoints: 5, language: "en-US", timezone: "Europe/Berlin" }
        : { screenWidth: 1920, screenHeight: 1080, viewportWidth: 1440, viewportHeight: 900, pixelRatio: 1, touchPoints: 0, language: "en-US", timezone: "Europe/Berlin" }
    }
  }
}

// Zipf(s) sampler over ranks 1..n
const zipf = (n: number, s: number) => {
  const weights = Array.from({ length: n }, (_, k) => 1 / Math.pow(k + 1, s))
  const total = weights.reduce((a, b) => a + b, 0)
  const cdf: Array<number> = []
  let acc = 0
  for (const w of weights) cdf.push((acc += w / total))
  return () => {
    const u = rng()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

const pool = new Set<string>()
while (pool.size < DISTINCT) pool.add(makeUa())
const distinctUas = [...pool]
const rank = zipf(distinctUas.length, 1.1)

const repeatHeavy: Array<RawEventEnvelope> = Array.from({ length: VIEWS }, (_, i) => makeEnvelope(i, distinctUas[rank()]!))
// fresh unique UAs for every round, so the cache never sees one twice
let uniqueSeq = 0
const allUnique = (): Array<RawEventEnvelope> =>
  Array.from({ length: VIEWS }, (_, i) => makeEnvelope(i, makeUa(++uniqueSeq)))

const salt = Uint8Array.from({ length: 32 }, (_, i) => i * 13)
const geo: GeoInfo = { country: "DE", region: "BE", city: "Berlin", isEu: true, timezone: "Europe/Berlin" }
const enrichUncached = makeEnrichView(parseDeviceUncached)

type Enrich = (envelope: RawEventEnvelope, salt: Uint8Array, geo: GeoInfo) => unknown
let sink = 0

const runRound = (envelopes: ReadonlyArray<RawEventEnvelope>, enrich: Enrich, lookup?: (ip: string | undefined) => GeoInfo) => {
  const start = performance.now()
  for (const envelope of envelopes) {
    const result = enrich(envelope, salt, lookup === undefined ? geo : lookup(envelope.edge.ip)) as { deviceType: string }
    sink += result.deviceType.length
  }
  return envelopes.length / ((performance.now() - start) / 1000)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const scenario = (
  name: string,
  envelopes: () => ReadonlyArray<RawEventEnvelope>,
  enrich: Enrich,
  options: { readonly rounds?: number; readonly lookup?: (ip: string | undefined) => GeoInfo } = {}
) => {
  userAgentCache.clear()
  const rounds = options.rounds ?? ROUNDS
  runRound(envelopes().slice(0, Math.min(20_000, VIEWS)), enrich, options.lookup) // warm-up (JIT)
  userAgentCache.clear()
  const rates: Array<number> = []
  for (let r = 0; r < rounds; r++) rates.push(runRound(envelopes(), enrich, options.lookup))
  const line = `${name.padEnd(44)} ${Math.round(median(rates)).toLocaleString("en-US").padStart(10)} views/s  (median of ${rounds}; min ${Math.round(Math.min(...rates)).toLocaleString("en-US")}, max ${Math.round(Math.max(...rates)).toLocaleString("en-US")})`
  console.log(line)
  return median(rates)
}

console.log(`node ${process.version} on ${cpus()[0]?.model ?? "?"} — ${VIEWS.toLocaleString("en-US")} views/round, ${DISTINCT} distinct UAs (Zipf 1.1) in the repeat-heavy mix`)
console.log(`distinct UAs actually drawn in the repeat-heavy mix: ${new Set(repeatHeavy.map((e) => e.edge.ua)).size}`)

scenario("repeat-heavy, cached (enrichView)", () => repeatHeavy, enrichView)
console.log(`  UA cache entries after the run: ${userAgentCache.size()}`)
scenario("repeat-heavy, uncached baseline", () => repeatHeavy, enrichUncached, { rounds: Math.min(ROUNDS, 3) })
scenario("all-unique UAs, cached (enrichView)", allUnique, enrichView, { rounds: Math.min(ROUNDS, 3) })
console.log(`  UA cache entries after the run: ${userAgentCache.size()} (bounded)`)
scenario("all-unique UAs, uncached baseline", allUnique, enrichUncached, { rounds: Math.min(ROUNDS, 3) })

if (WITH_GEO) {
  const { makeGeoipLookup } = await import("../src/layers/GeoLookup.ts")
  const geoip = await import("geoip-lite")
  const lookup = makeGeoipLookup((geoip as unknown as { default: Parameters<typeof makeGeoipLookup>[0] }).default)
  scenario("repeat-heavy, cached + geoip-lite lookup", () => repeatHeavy, enrichView, { lookup })
}

if (sink === 0) console.log(emptyGeo) // keep the results observable
