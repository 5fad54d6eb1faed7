/**
 * The writer benchmark's workload (bench/writer.ts, bench/writer-cpu.ts): N mixed envelopes,
 * 70 % views with weighted real-world UAs, 3 % of the sessions bots, conversions, engagement,
 * interactions; N/5 sessions on 5 registered sites; receivedAt increasing over two hours.
 * Deterministic apart from the random UUIDs (seeded LCG).
 */
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import type { RawEventEnvelope } from "../src/domain/Envelope.ts"
import { emptyNetwork } from "../src/domain/Network.ts"
import { NetworkLookup } from "../src/layers/NetworkLookup.ts"

/**
 * BENCH_NETWORK: how the writer benches look addresses up, as a comma list used in turn (per round
 * of bench/writer.ts, per pass of bench/writer-cpu.ts), e.g. `real,empty,empty,real`:
 * - `real` (default): `NetworkLookup.layer`, the ASN data set;
 * - `empty`: every address answers "no network data" (`emptyNetwork`, no lookup at all): the
 *   network columns stay NULL and `org_type` has one (NULL) value — the same code as if it had
 *   no network enrichment, to measure what that enrichment costs in one run;
 * - `table`: as `empty`, but with the ASN table loaded (what holding it costs, e.g. in GC).
 */
export const BENCH_NETWORK_MODES = (process.env["BENCH_NETWORK"] ?? "real").split(",").map((mode) => {
  if (mode !== "real" && mode !== "empty" && mode !== "table") throw new Error(`BENCH_NETWORK: real, empty or table, not ${mode}`)
  return mode
})

/** The `NetworkLookup` of a BENCH_NETWORK mode. */
export const benchNetworkLayer = (mode: "real" | "empty" | "table"): Layer.Layer<NetworkLookup, unknown> =>
  mode === "real"
    ? NetworkLookup.layer
    : Layer.effect(
      NetworkLookup,
      Effect.gen(function*() {
        const service = yield* NetworkLookup
        return NetworkLookup.of({ ...service, lookup: () => emptyNetwork })
      })
    ).pipe(Layer.provide(mode === "table" ? NetworkLookup.layer : NetworkLookup.layerTest([])))

const UAS: ReadonlyArray<readonly [string, number]> = [
  ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 22],
  ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 10],
  ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 16],
  ["Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", 12],
  ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 7],
  ["Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 5],
  ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67", 6],
  ["Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 3],
  ["Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36", 4],
  ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2],
  ["Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", 3],
  ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/459.0.0.41.110]", 2],
  ["Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", 2],
  ["Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36", 1],
  ["Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2]
]
const BOT_UAS = [
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36"
]
export const HOSTS = ["shop.example.com", "blog.example.com", "www.acme.test", "docs.acme.test", "news.example.org"]
const PATHS = ["/", "/pricing", "/blog/launch", "/docs/getting-started", "/product/42", "/cart", "/checkout", "/about", "/contact"]
const REFERRERS = [
  "https://www.google.com/",
  "https://www.google.co.uk/",
  "https://t.co/abc",
  "https://www.facebook.com/",
  "https://news.ycombinator.com/",
  "https://duckduckgo.com/",
  "https://partner.example.net/review"
]
const UTM = [
  { utmSource: "newsletter", utmMedium: "email", utmCampaign: "spring-sale" },
  { utmSource: "google", utmMedium: "cpc", utmCampaign: "brand", utmTerm: "acme shoes" },
  { utmSource: "facebook", utmMedium: "social", utmCampaign: "launch" }
]
const LANGS = ["en-US,en;q=0.9", "en-GB,en;q=0.8", "de-DE,de;q=0.9,en;q=0.5", "fr-FR,fr;q=0.9", "es-ES,es;q=0.9"]

let seed = 42
/** Restarts the generator (same sessions, UAs, IPs for the same N). */
export const resetSeed = () => {
  seed = 42
}
const rand = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0
  return seed / 2 ** 32
}
const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(rand() * items.length)]!
const weighted = (() => {
  const total = UAS.reduce((s, [, w]) => s + w, 0)
  return () => {
    let r = rand() * total
    for (const [ua, w] of UAS) if ((r -= w) < 0) return ua
    return UAS[0]![0]
  }
})()
const publicIp = () => `${pick([24, 31, 46, 62, 78, 81, 89, 92, 104, 151, 176, 185, 193, 212])}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`

interface Session {
  readonly id: string
  readonly ua: string
  readonly ip: string
  readonly lang: string
  readonly host: string
  readonly mobile: boolean
  readonly userId: string | undefined
}

/**
 * BENCH_NO_SESSION_ID=1: every envelope without its sessionId, as the tracker sends them — the
 * writer assigns the sessions by (site, daily visitor id) (docs/visits.md).
 */
export const makeWorkload = (n: number): Array<RawEventEnvelope> => {
  const all = makeWorkloadWithSessions(n)
  if (process.env["BENCH_NO_SESSION_ID"] !== "1") return all
  return all.map((envelope) => {
    const { sessionId: _, ...payload } = envelope.payload
    return { ...envelope, payload }
  })
}

/**
 * BENCH_VISIT_MINUTES=m: each session's events fall within m minutes (the sessions start evenly
 * over the two hours; an event goes to a session started in the last m minutes), as a real visit's
 * do; unset (the default): an event goes to any session, so a session's events spread over the
 * whole two hours and meet in many batches (the harder case for the visits model).
 */
const VISIT_MS = process.env["BENCH_VISIT_MINUTES"] === undefined ? undefined : Number(process.env["BENCH_VISIT_MINUTES"]) * 60_000
const sessionAt = <S>(sessions: ReadonlyArray<S>, fraction: number): S => {
  if (VISIT_MS === undefined) return pick(sessions)
  const started = fraction * sessions.length
  const width = Math.min(started, (VISIT_MS / (2 * 3_600_000)) * sessions.length)
  return sessions[Math.max(0, Math.min(sessions.length - 1, Math.floor(started - rand() * width)))]!
}

const makeWorkloadWithSessions = (n: number): Array<RawEventEnvelope> => {
  const sessions: Array<Session> = []
  const sessionCount = Math.max(1, Math.round(n / 5))
  for (let i = 0; i < sessionCount; i++) {
    const bot = rand() < 0.03
    const ua = bot ? pick(BOT_UAS) : weighted()
    sessions.push({
      id: `sess-${i}-${randomUUID().slice(0, 8)}`,
      ua,
      ip: publicIp(),
      lang: pick(LANGS),
      host: pick(HOSTS),
      mobile: /Mobile|iPhone|Android/.test(ua),
      userId: rand() < 0.2 ? `user-${i}` : undefined
    })
  }
  // the stream is in capture order: receivedAt increases over the last two hours
  const start = Date.now() - 2 * 3_600_000
  const out: Array<RawEventEnvelope> = []
  for (let i = 0; i < n; i++) {
    const s = sessionAt(sessions, i / n)
    const receivedAt = new Date(start + Math.floor((i / n) * 2 * 3_600_000)).toISOString()
    const edge = { ip: s.ip, ua: s.ua, lang: s.lang, headers: { origin: `https://${s.host}`, host: "collector.example.com" } }
    const base = { v: 1 as const, eventId: randomUUID(), receivedAt, edge }
    const pageUrl = `https://${s.host}${pick(PATHS)}${rand() < 0.2 ? "?ref=x" : ""}`
    const r = rand()
    if (r < 0.7) {
      const utm = rand() < 0.2 ? pick(UTM) : undefined
      const referrer = rand() < 0.35 ? pick(REFERRERS) : undefined
      out.push({
        ...base,
        kind: "view",
        payload: {
          eventType: "pageview",
          sessionId: s.id,
          ...(s.userId !== undefined ? { userId: s.userId } : {}),
          pageUrl,
          ...(referrer !== undefined ? { referrer } : {}),
          isView: true,
          timestamp: Date.parse(receivedAt) - Math.floor(rand() * 500),
          clientDevice: s.mobile
            ? { screenWidth: 390, screenHeight: 844, viewportWidth: 390, viewportHeight: 664, pixelRatio: 3, touchPoints: 5, language: "en-US", timezone: "Europe/London" }
            : { screenWidth: 1920, screenHeight: 1080, viewportWidth: 1440, viewportHeight: 900, pixelRatio: 1, colorDepth: 24, hardwareConcurrency: 8, language: "en-US", timezone: "Europe/Berlin", cookiesEnabled: true },
          ...(utm !== undefined ? { attribution: { ...utm, ...(referrer !== undefined ? { referrer } : {}) } } : {}),
          metadata: { contentType: "article", app: "web" }
        }
      })
    } else if (r < 0.73) {
      out.push({
        ...base,
        kind: "conversion",
        payload: {
          eventType: "conversion",
          sessionId: s.id,
          isView: false,
          metadata: { conversionType: pick(["purchase", "signup", "lead"]), value: Math.round(rand() * 20000) / 100, currency: pick(["EUR", "USD"]) }
        }
      })
    } else if (r < 0.78) {
      out.push({
        ...base,
        kind: "engagement",
        payload: {
          eventType: `engagement_${pick(["like", "comment", "subscribe"])}`,
          sessionId: s.userId ?? s.id,
          ...(s.userId !== undefined ? { userId: s.userId } : {}),
          isView: false,
          metadata: { metricType: "like", targetId: `post-${Math.floor(rand() * 100)}`, targetType: "post" }
        }
      })
    } else {
      out.push({
        ...base,
        kind: "interaction",
        payload: {
          eventType: pick(["click", "scroll", "resize", "funnel_step"]),
          sessionId: s.id,
          pageUrl,
          isView: false,
          timestamp: Date.parse(receivedAt) - Math.floor(rand() * 500),
          metadata: { x: Math.floor(rand() * 1000), y: Math.floor(rand() * 800), selector: "#buy-now" }
        }
      })
    }
  }
  return out
}
