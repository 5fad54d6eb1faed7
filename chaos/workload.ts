/**
 * The chaos load's request mix (pure, seeded): every event carries a unique marker
 * `<tag>.<request seq>.<index in request>` as its `sessionId` (engagement: `userId`, which the
 * collector uses as the session), so each stored `raw_events` row names the request and the
 * position it came from. That is how batches — whose 202 only says `count` — and rejected
 * requests — which get no eventId — are reconciled.
 *
 * Runs on Node 24 with type stripping (no enums, no parameter properties).
 */

/** Endpoint kinds, as stored in the per-request result columns (index = code). */
export const KINDS = [
  "event",
  "event-beacon",
  "view",
  "conversion",
  "engagement",
  "funnel",
  "registration-funnel",
  "batch",
  "interaction",
  "invalid-batch",
  "invalid-event"
] as const
export type Kind = (typeof KINDS)[number]

/** Relative weights of the mix (≈ 3.3 events per request on average). */
const WEIGHTS: ReadonlyArray<readonly [Kind, number]> = [
  ["event", 24],
  ["event-beacon", 6],
  ["view", 25],
  ["conversion", 5],
  ["engagement", 5],
  ["funnel", 4],
  ["registration-funnel", 3],
  ["batch", 14],
  ["interaction", 12],
  ["invalid-batch", 1],
  ["invalid-event", 1]
]
const TOTAL_WEIGHT = WEIGHTS.reduce((s, [, w]) => s + w, 0)

export interface PlannedRequest {
  readonly kind: Kind
  readonly path: string
  readonly contentType: string
  readonly body: string
  readonly headers: Record<string, string>
  /** events (markers) the request carries: `<tag>.<seq>.0 … <tag>.<seq>.<events-1>` */
  readonly events: number
  /** the request is invalid on purpose: the contract says 400, nothing stored */
  readonly invalid: boolean
  /** a single-event endpoint: its 202 carries `eventId` */
  readonly single: boolean
}

/** sfc32: small, fast, seedable. */
export const prng = (seed: number) => {
  let a = 0x9e3779b9 ^ seed
  let b = 0x243f6a88 ^ (seed * 31)
  let c = 0xb7e15162
  let d = seed | 0
  const next = () => {
    a |= 0
    b |= 0
    c |= 0
    d |= 0
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 16; i++) next()
  return next
}

const UAS = [
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
  "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
]
const UA_WEIGHTS = [30, 25, 20, 12, 6, 4, 3]
const IPS = ["81.2.69.160", "89.160.20.112", "2.125.160.216", "216.160.83.56", "67.43.156.0", "175.16.199.0", "8.8.8.8"]
const ORIGINS = ["https://shop.chaos.test", "https://blog.chaos.test", "https://unknown.example"]
const REFERRERS = ["https://www.google.com/", "https://t.co/x", "https://news.example/a", ""]
const PAGES = ["/", "/pricing", "/p/1", "/p/2", "/blog/chaos", "/checkout"]

/** The domains the harness registers (views from these origins get a tenant). */
export const CHAOS_DOMAINS = ["shop.chaos.test", "blog.chaos.test"] as const

const pickWeighted = <A>(rand: () => number, items: ReadonlyArray<A>, weights: ReadonlyArray<number>): A => {
  const total = weights.reduce((s, w) => s + w, 0)
  let x = rand() * total
  for (let i = 0; i < items.length; i++) {
    x -= weights[i]!
    if (x < 0) return items[i]!
  }
  return items[items.length - 1]!
}

const pick = <A>(rand: () => number, items: ReadonlyArray<A>): A => items[Math.floor(rand() * items.length)]!

const int = (rand: () => number, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1))

export const marker = (tag: string, seq: number, index: number) => `${tag}.${seq}.${index}`

/** Builds request `seq` of the run `tag` (deterministic given the PRNG state). */
export const planRequest = (rand: () => number, tag: string, seq: number): PlannedRequest => {
  let x = rand() * TOTAL_WEIGHT
  let kind: Kind = "event"
  for (const [k, w] of WEIGHTS) {
    x -= w
    if (x < 0) {
      kind = k
      break
    }
  }
  const m = (i: number) => marker(tag, seq, i)
  const ip = pick(rand, IPS)
  const headers: Record<string, string> = {
    "user-agent": pickWeighted(rand, UAS, UA_WEIGHTS),
    "x-forwarded-for": ip,
    "accept-language": rand() < 0.5 ? "en-US,en;q=0.9" : "de-DE"
  }
  if (rand() < 0.7) headers["origin"] = pick(rand, ORIGINS)
  const json = "application/json"
  const now = Date.now()
  switch (kind) {
    case "event":
    case "event-beacon":
      return {
        kind,
        path: "/track/event",
        contentType: kind === "event" ? json : "text/plain;charset=UTF-8",
        headers,
        body: JSON.stringify({
          eventType: pick(rand, ["signup_click", "add_to_cart", "search", "unload"]),
          sessionId: m(0),
          pageUrl: pick(rand, PAGES),
          metadata: { n: seq, chaos: true },
          ...(rand() < 0.3 ? { timestamp: now - int(rand, 0, 5000) } : {})
        }),
        events: 1,
        invalid: false,
        single: true
      }
    case "view": {
      const referrer = pick(rand, REFERRERS)
      return {
        kind,
        path: "/track/view",
        contentType: json,
        headers,
        body: JSON.stringify({
          sessionId: m(0),
          pageUrl: `https://shop.chaos.test${pick(rand, PAGES)}`,
          ...(referrer === "" ? {} : { referrer }),
          ...(rand() < 0.2 ? { attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "chaos" } } : {}),
          clientDevice: { viewportWidth: pick(rand, [390, 768, 1440]), touchPoints: int(rand, 0, 5), language: "en-US" },
          duration: int(rand, 0, 60000)
        }),
        events: 1,
        invalid: false,
        single: true
      }
    }
    case "conversion":
      return {
        kind,
        path: "/track/conversion",
        contentType: json,
        headers,
        body: JSON.stringify({
          conversionType: pick(rand, ["purchase", "subscription"]),
          sessionId: m(0),
          value: int(rand, 1, 20000) / 100,
          currency: pick(rand, ["EUR", "USD"])
        }),
        events: 1,
        invalid: false,
        single: true
      }
    case "engagement":
      // engagement is user-scoped: the collector uses userId as the sessionId
      return {
        kind,
        path: "/track/engagement",
        contentType: json,
        headers,
        body: JSON.stringify({ userId: m(0), metricType: pick(rand, ["like", "comment", "subscribe"]), targetId: `post-${int(rand, 1, 50)}` }),
        events: 1,
        invalid: false,
        single: true
      }
    case "funnel":
      return {
        kind,
        path: "/track/funnel",
        contentType: json,
        headers,
        body: JSON.stringify({ funnelId: "checkout", stepId: pick(rand, ["cart", "address", "pay"]), stepOrder: int(rand, 0, 3), sessionId: m(0) }),
        events: 1,
        invalid: false,
        single: true
      }
    case "registration-funnel":
      return {
        kind,
        path: "/track/registration-funnel",
        contentType: json,
        headers,
        body: JSON.stringify({
          event: pick(rand, ["visit", "signup", "profile", "conversion"]),
          sessionId: m(0),
          timestamp: new Date(now).toISOString(),
          route: "/register"
        }),
        events: 1,
        invalid: false,
        single: true
      }
    case "batch": {
      const n = int(rand, 2, 25)
      const events = Array.from({ length: n }, (_, i) => ({
        eventType: pick(rand, ["scroll_depth", "video_play", "add_to_cart"]),
        sessionId: m(i),
        metadata: { i }
      }))
      return { kind, path: "/track/batch", contentType: json, headers, body: JSON.stringify({ events }), events: n, invalid: false, single: false }
    }
    case "interaction": {
      const n = int(rand, 1, 10)
      const events = Array.from({ length: n }, (_, i) => ({
        type: pick(rand, ["click", "scroll", "resize"]),
        sessionId: m(i),
        data: { x: int(rand, 0, 1000), y: int(rand, 0, 1000) }
      }))
      return {
        kind,
        path: "/track/interaction",
        contentType: json,
        headers,
        body: JSON.stringify({ events }),
        events: n,
        invalid: false,
        single: false
      }
    }
    case "invalid-batch": {
      // all valid but the last (event type over its 100-character cap): the whole batch is a 400
      const n = int(rand, 2, 8)
      const events = Array.from({ length: n }, (_, i) => ({
        eventType: i === n - 1 ? "x".repeat(101) : "valid_in_bad_batch",
        sessionId: m(i)
      }))
      return { kind, path: "/track/batch", contentType: json, headers, body: JSON.stringify({ events }), events: n, invalid: true, single: false }
    }
    case "invalid-event":
      return {
        kind,
        path: "/track/conversion",
        contentType: json,
        headers,
        // currency must be three letters
        body: JSON.stringify({ conversionType: "purchase", sessionId: m(0), value: 1, currency: "EURO" }),
        events: 1,
        invalid: true,
        single: true
      }
  }
}
