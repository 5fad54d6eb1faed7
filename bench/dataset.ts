/**
 * The stats query benchmark's data set (issue 14): a realistic history — default 10M events
 * over 90 days on 5 sites (≈ 2M visits) — written through the writer's own code path: envelopes
 * into a Redis stream, read by `makeWriter` (decode, enrich with UA parsing and geoip, visitor
 * ids, sessions, visits, rollups), one transaction per batch. Nothing is inserted by hand, so the
 * data cannot drift from what the writer stores.
 *
 * Distributions: sites weighted 40/25/15/12/8 %; weekday/weekend and hour-of-day curves and a
 * slow growth over the period; 3 % bot visits; 42 % one-page visits, else 2 + geometric pages;
 * Zipf-distributed pages (≈ 120 paths per site); sources: direct, Google, Bing, DuckDuckGo,
 * social, Hacker News, a partner, UTM newsletter / cpc campaigns; real-world UAs by share;
 * addresses from many countries' prefixes (geoip-lite); clicks/scrolls on 30 % of the views;
 * 2.5 % of visits convert (value in EUR/USD). One day at a time, time-ordered like a stream;
 * progress with rate and ETA after every day.
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/dataset.ts [--events 10000000] [--days 90] [--database spoolway_bench_query]
 *
 * The database (on BENCH_PG_ADMIN_URL's server, default postgres://postgres@127.0.0.1:5432/postgres)
 * is dropped and re-created; it is kept afterwards for bench/query.ts. BENCH_REDIS_URL
 * (redis://127.0.0.1:6379) holds the stream (trimmed after every day).
 */
import { randomBytes, randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { ENVELOPE_FIELD, type RawEventEnvelope } from "../src/domain/Envelope.ts"
import { formatKey, hashKey, KEY_BYTES } from "../src/domain/Site.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { GeoLookup } from "../src/layers/GeoLookup.ts"
import { NetworkLookup } from "../src/layers/NetworkLookup.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import { SiteStore } from "../src/layers/SiteStore.ts"
import * as Sql from "../src/layers/Sql.ts"
import { makeWriter, WriterDependencies } from "../src/programs/Writer.ts"
import { arg, log, machineInfo, requireNode24, round, stamp, writeResult } from "./lib.ts"

requireNode24()

const EVENTS = Number(arg("events", "10000000"))
const DAYS = Number(arg("days", "90"))
export const DATABASE = arg("database", "spoolway_bench_query")
const ADMIN_URL = process.env["BENCH_PG_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const REDIS_URL = process.env["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const BATCH = Number(process.env["BENCH_BATCH"] ?? 500)

/** The sites: hostname, share of the traffic, time zone. */
export const SITES = [
  { hostname: "shop.example.com", weight: 40, timezone: "Europe/Berlin" },
  { hostname: "blog.example.com", weight: 25, timezone: "UTC" },
  { hostname: "www.acme.test", weight: 15, timezone: "America/New_York" },
  { hostname: "docs.acme.test", weight: 12, timezone: "UTC" },
  { hostname: "news.example.org", weight: 8, timezone: "Asia/Kolkata" }
] as const

// ---------------------------------------------------------------- random

let seed = 20261206
const rand = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0
  return seed / 2 ** 32
}
const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(rand() * items.length)]!
const weightedPicker = <A>(items: ReadonlyArray<readonly [A, number]>) => {
  const total = items.reduce((s, [, w]) => s + w, 0)
  return () => {
    let r = rand() * total
    for (const [item, w] of items) if ((r -= w) < 0) return item
    return items[0]![0]
  }
}
/** Zipf(1) over n ranks, by inverse CDF on the harmonic weights. */
const zipf = (n: number) => {
  const weights = Array.from({ length: n }, (_, i) => 1 / (i + 1))
  const cdf: Array<number> = []
  let acc = 0
  for (const w of weights) cdf.push((acc += w))
  return () => {
    const r = rand() * acc
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < r) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

const UA = weightedPicker<string>([
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
  ["Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", 2]
])
const BOT_UAS = [
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36"
]
/** first octets of public ranges of many countries (as geoip-lite places them) */
const IP_PREFIXES = weightedPicker<string>([
  ["24", 14], ["73", 10], ["98", 6], ["81.2", 6], ["86", 5], ["89.160", 3], ["78", 6], ["85", 5], ["93", 5], ["62", 4], ["151", 4],
  ["176", 4], ["185", 4], ["193", 3], ["212", 3], ["1.0", 2], ["27", 3], ["49", 3], ["101", 2], ["110", 2], ["177", 3], ["187", 2],
  ["41", 2], ["105", 1], ["5", 3], ["46", 3], ["92", 3], ["213", 2], ["217", 2], ["84", 3]
])
const ip = () => {
  const prefix = IP_PREFIXES()
  const parts = prefix.split(".")
  while (parts.length < 3) parts.push(String(Math.floor(rand() * 256)))
  parts.push(String(1 + Math.floor(rand() * 254)))
  return parts.join(".")
}
const LANGS = weightedPicker<string>([
  ["en-US,en;q=0.9", 35], ["en-GB,en;q=0.8", 10], ["de-DE,de;q=0.9,en;q=0.5", 15], ["fr-FR,fr;q=0.9", 8], ["es-ES,es;q=0.9", 7],
  ["pt-BR,pt;q=0.9", 5], ["it-IT,it;q=0.9", 4], ["nl-NL,nl;q=0.9", 3], ["ja-JP,ja;q=0.9", 3], ["hi-IN,hi;q=0.9,en;q=0.8", 3]
])
type Touch = { readonly referrer?: string; readonly utm?: Record<string, string> }
const TOUCH = weightedPicker<Touch>([
  [{}, 32],
  [{ referrer: "https://www.google.com/" }, 30],
  [{ referrer: "https://www.google.de/" }, 5],
  [{ referrer: "https://www.bing.com/" }, 4],
  [{ referrer: "https://duckduckgo.com/" }, 3],
  [{ referrer: "https://t.co/abc" }, 3],
  [{ referrer: "https://www.facebook.com/" }, 4],
  [{ referrer: "https://news.ycombinator.com/" }, 3],
  [{ referrer: "https://www.reddit.com/r/programming/" }, 2],
  [{ referrer: "https://partner.example.net/review" }, 2],
  [{ utm: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "weekly" } }, 5],
  [{ utm: { utmSource: "google", utmMedium: "cpc", utmCampaign: "brand", utmTerm: "acme" } }, 4],
  [{ utm: { utmSource: "facebook", utmMedium: "social", utmCampaign: "launch" } }, 3]
])
const SECTIONS = ["blog", "docs", "product", "guides", "news"]
const PATHS = [
  "/",
  "/pricing",
  "/about",
  "/contact",
  "/signup",
  "/login",
  "/cart",
  "/checkout",
  ...Array.from({ length: 112 }, (_, i) => `/${SECTIONS[i % SECTIONS.length]}/${i < 40 ? `item-${i}` : `page-${i}`}`)
]
const PAGE = zipf(PATHS.length)
/** visits per hour of day (local shape, applied in UTC: sites are spread over zones) */
const HOUR_WEIGHTS = [2, 1.5, 1, 1, 1, 1.5, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 6, 5, 4, 3]
const HOUR = weightedPicker(HOUR_WEIGHTS.map((w, h) => [h, w] as const))
const SITE = weightedPicker<number>(SITES.map((s, i) => [i, s.weight] as const))

// ---------------------------------------------------------------- generation

interface DayPlan {
  readonly startMs: number
  readonly events: number
}

/** Events per day: weekends at 70 %, +30 % growth over the period, normalised to EVENTS. */
const planDays = (endDayMs: number): Array<DayPlan> => {
  const weights = Array.from({ length: DAYS }, (_, i) => {
    const day = endDayMs - (DAYS - i) * 86_400_000
    const weekday = new Date(day).getUTCDay()
    return (weekday === 0 || weekday === 6 ? 0.7 : 1) * (1 + (0.3 * i) / DAYS)
  })
  const total = weights.reduce((a, b) => a + b, 0)
  return weights.map((w, i) => ({ startMs: endDayMs - (DAYS - i) * 86_400_000, events: Math.round((EVENTS * w) / total) }))
}

const makeDay = (plan: DayPlan, siteIds: ReadonlyArray<number>): Array<RawEventEnvelope> => {
  const out: Array<RawEventEnvelope> = []
  while (out.length < plan.events) {
    const siteIndex = SITE()
    const host = SITES[siteIndex]!.hostname
    const bot = rand() < 0.03
    const ua = bot ? pick(BOT_UAS) : UA()
    const edge = { ip: ip(), ua, lang: LANGS(), headers: { origin: `https://${host}` }, site: siteIds[siteIndex]! }
    const mobile = /Mobile|iPhone|Android/.test(ua)
    const sessionId = randomUUID()
    const pages = rand() < 0.42 ? 1 : 2 + Math.min(40, Math.floor(Math.log(1 - rand()) / Math.log(1 - 1 / 4)))
    const touch = TOUCH()
    let t = plan.startMs + HOUR() * 3_600_000 + Math.floor(rand() * 3_600_000)
    const push = (kind: RawEventEnvelope["kind"], payload: RawEventEnvelope["payload"]) =>
      out.push({ v: 1, eventId: randomUUID(), receivedAt: new Date(t).toISOString(), edge, kind, payload })
    for (let p = 0; p < pages; p++) {
      const pageUrl = `https://${host}${PATHS[p === 0 && rand() < 0.5 ? 0 : PAGE()]}${rand() < 0.1 ? "?ref=nav" : ""}`
      push("view", {
        eventType: "pageview",
        sessionId,
        pageUrl,
        isView: true,
        timestamp: t,
        ...(p === 0 && touch.referrer !== undefined ? { referrer: touch.referrer } : {}),
        ...(p === 0 && touch.utm !== undefined ? { attribution: touch.utm } : {}),
        clientDevice: mobile
          ? { screenWidth: 390, screenHeight: 844, viewportWidth: 390, viewportHeight: 664, pixelRatio: 3, language: "en-US" }
          : { screenWidth: 1920, screenHeight: 1080, viewportWidth: 1440, viewportHeight: 900, pixelRatio: 1, language: "en-US" },
        metadata: { app: "web" }
      })
      if (rand() < 0.3) {
        t += 2_000 + Math.floor(rand() * 20_000)
        push("interaction", {
          eventType: rand() < 0.6 ? "click" : "scroll",
          sessionId,
          pageUrl,
          isView: false,
          timestamp: t,
          metadata: { selector: "#cta" }
        })
      }
      t += 5_000 + Math.floor(rand() * 90_000)
    }
    if (!bot && rand() < 0.025) {
      push("conversion", {
        eventType: "conversion",
        sessionId,
        isView: false,
        metadata: { conversionType: pick(["purchase", "signup", "lead"]), value: Math.round(rand() * 20_000) / 100, currency: pick(["EUR", "USD"]) }
      })
    }
  }
  return out.sort((a, b) => (a.receivedAt < b.receivedAt ? -1 : a.receivedAt > b.receivedAt ? 1 : 0))
}

// ---------------------------------------------------------------- run

const adminSql = (statement: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(statement)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 })))
  )

export const databaseUrl = (name = DATABASE) => Object.assign(new URL(ADMIN_URL), { pathname: `/${name}` }).toString()

const main = async () => {
  // the tree as it is when the run starts (the code this process loaded), not after later edits
  const machine = machineInfo()
  const dbUrl = databaseUrl()
  const prefix = `bench-dataset-${Math.random().toString(36).slice(2, 8)}`
  const streamKey = `${prefix}:events`
  log(`data set: ${EVENTS} events over ${DAYS} days on ${SITES.length} sites into ${DATABASE} (dropped and re-created)`)
  await adminSql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`)
  await adminSql(`CREATE DATABASE ${DATABASE}`)
  const redis = new Redis(REDIS_URL)
  const layer = WriterDependencies.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        Sql.layerUrl(dbUrl),
        PrimaryRedis.layerUrl(REDIS_URL),
        AppConfig.layerWith({ streamPrefix: prefix, writerBatchSize: BATCH, writerBlockMs: 100, writerTransactions: 2 }),
        GeoLookup.layer,
        NetworkLookup.layer
      )
    )
  )
  const endDay = Math.floor(Date.now() / 86_400_000) * 86_400_000 + 86_400_000
  const days = planDays(endDay)
  try {
    const summary = await Effect.runPromise(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* SiteStore
        const siteIds: Array<number> = []
        for (const site of SITES) {
          const record = yield* store.add({
            hostname: site.hostname,
            aliases: [],
            corp: undefined,
            timezone: site.timezone,
            origins: null,
            writeKeyHash: hashKey(formatKey("write", randomBytes(KEY_BYTES))),
            serverKeyHash: hashKey(formatKey("server", randomBytes(KEY_BYTES)))
          })
          siteIds.push(record.id)
        }
        // the daily partitions a running system would have created day by day
        yield* sql.unsafe(`SELECT spoolway_ensure_raw_event_partitions((now() - interval '${DAYS + 1} days')::date, ${DAYS + 3})`)
        const writer = yield* makeWriter({ maintenance: false })
        const start = performance.now()
        let written = 0
        let generateS = 0
        let writeS = 0
        for (let d = 0; d < days.length; d++) {
          const g0 = performance.now()
          const envelopes = makeDay(days[d]!, siteIds)
          for (let i = 0; i < envelopes.length; i += 2000) {
            const pipeline = redis.pipeline()
            for (const envelope of envelopes.slice(i, i + 2000)) pipeline.xadd(streamKey, "*", ENVELOPE_FIELD, JSON.stringify(envelope))
            yield* Effect.promise(() => pipeline.exec())
          }
          const w0 = performance.now()
          generateS += (w0 - g0) / 1000
          yield* writer.drain
          writeS += (performance.now() - w0) / 1000
          yield* Effect.promise(() => redis.xtrim(streamKey, "MAXLEN", 0))
          written += envelopes.length
          const elapsed = (performance.now() - start) / 1000
          const rate = written / elapsed
          const eta = (EVENTS - written) / rate
          log(
            `day ${d + 1}/${days.length} (${new Date(days[d]!.startMs).toISOString().slice(0, 10)}): ${written.toLocaleString("en")} events, ` +
              `${Math.round(rate).toLocaleString("en")} events/s overall (writer ${Math.round(written / writeS).toLocaleString("en")}/s), ` +
              `elapsed ${Math.round(elapsed)} s, ETA ${Math.round(eta)} s`
          )
        }
        const totalS = (performance.now() - start) / 1000
        // as autovacuum leaves a running install: statistics, and the visibility maps that let
        // the queries' index-only scans skip the heap (visits, their items, the events' partitions)
        yield* sql.unsafe("VACUUM (ANALYZE)")
        const [counts] = yield* sql<{ events: string; visits: string; bots: string; size: string }>`
          SELECT (SELECT count(*) FROM raw_events) AS events, (SELECT count(*) FROM visits) AS visits,
                 (SELECT count(*) FROM visits WHERE is_bot) AS bots,
                 pg_size_pretty(pg_database_size(current_database())) AS size`
        const snapshot = yield* writer.snapshot
        return { totalS, generateS, writeS, written, counts: counts!, snapshot }
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, SiteStore.layer.pipe(Layer.provide(Sql.layerUrl(dbUrl))))))
    )
    const result = {
      at: new Date().toISOString(),
      machine,
      database: DATABASE,
      events: EVENTS,
      days: DAYS,
      written: summary.written,
      stored: Number(summary.counts.events),
      visits: Number(summary.counts.visits),
      botVisits: Number(summary.counts.bots),
      size: summary.counts.size,
      seconds: round(summary.totalS, 1),
      generateS: round(summary.generateS, 1),
      writerS: round(summary.writeS, 1),
      writerEventsPerS: Math.round(summary.written / summary.writeS)
    }
    log(JSON.stringify(result))
    writeResult(`dataset-${stamp()}.json`, JSON.stringify(result, null, 2))
  } finally {
    await redis.del(streamKey)
    redis.disconnect()
  }
}

if (import.meta.main) await main()
