/**
 * Bots on every event, and the site of an event from `edge.site` (issue 13), on the writer with
 * the PostgreSQL sink. An event is a bot event when its own User-Agent is a bot, or when its
 * session is known to be a bot: a bot view in the same batch, in a batch still being written,
 * or the session's stored first touch (src/programs/PrepareBatch.ts). Bot events are stored with
 * `is_bot` and counted only as `bot_events`.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Domains } from "../src/layers/Domains.ts"
import {
  cleanupKeys,
  domainFor,
  eventEnvelope,
  GOOGLEBOT,
  holdFirstUntilAnotherOpens,
  makeWriter,
  metricsOf,
  query,
  registerDomain,
  streamKeys,
  viewEnvelope,
  writerTestLayer,
  xadd
} from "./writerSupport.ts"

const CURL = "curl/8.5.0"

/** is_bot of each stored event, by event id */
const botFlags = (ids: ReadonlyArray<string>) =>
  Effect.map(
    query<{ id: string; is_bot: boolean }>(`SELECT id::text AS id, is_bot FROM raw_events WHERE id = ANY($1::uuid[])`, [ids]),
    (rows) => Object.fromEntries(rows.map((r) => [r.id, r.is_bot]))
  )

/** The day totals of a domain's human and bot rollups (aggregated_metrics and daily_metrics). */
const totals = (domainId: number) =>
  Effect.gen(function*() {
    const metrics = yield* metricsOf(domainId)
    const [daily] = yield* query<Record<string, number>>(
      `SELECT coalesce(sum(pageviews), 0)::int AS pageviews, coalesce(sum(sessions), 0)::int AS sessions,
              coalesce(sum(unique_visitors), 0)::int AS "uniqueVisitors", coalesce(sum(events), 0)::int AS events,
              coalesce(sum(conversions), 0)::int AS conversions, coalesce(sum(bot_events), 0)::int AS "botEvents"
       FROM daily_metrics WHERE domain_id = $1::int4`,
      [domainId]
    )
    return {
      pageviews: metrics["pageviews|day|total|∅"] ?? 0,
      sessions: metrics["sessions|day|total|∅"] ?? 0,
      uniqueVisitors: metrics["unique_visitors|day|total|∅"] ?? 0,
      events: metrics["events|day|total|∅"] ?? 0,
      conversions: metrics["conversions|day|total|∅"] ?? 0,
      botEvents: metrics["bot_events|day|total|∅"] ?? 0,
      botEventsHourly: metrics["bot_events|hour|total|∅"] ?? 0,
      daily
    }
  })

/** An event with no User-Agent and no Origin / Referer / Host: sent server-side. */
const serverSide = (sessionId: string, extra: { readonly kind?: "event" | "conversion"; readonly site?: number } = {}) => {
  const envelope = eventEnvelope({
    kind: extra.kind ?? "event",
    edge: { headers: {}, ...(extra.site === undefined ? {} : { site: extra.site }) },
    payload: extra.kind === "conversion"
      ? { eventType: "conversion", sessionId, metadata: { conversionType: "purchase", value: 10, currency: "EUR" } }
      : { eventType: "server-side", sessionId }
  })
  const { ua: _ua, ...edge } = envelope.edge
  return { ...envelope, edge }
}

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("bots on every event", (it) => {
  it.effect("in one batch: a bot view makes every event of its session a bot event; an event's own bot User-Agent is enough", () =>
    Effect.gen(function*() {
      const keys = streamKeys("bots-batch")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("bots-batch")
      const edge = { headers: { origin: site.origin } }
      const bot = `bb-bot-${site.domainId}`
      const human = `bb-human-${site.domainId}`
      // a headless session: its views, its beacons with the same UA, a view with a browser's UA,
      // and a server-side conversion without any UA — all bot events
      const botEvents = [
        eventEnvelope({ edge, payload: { eventType: "click", sessionId: bot } }), // before the bot view
        viewEnvelope({ edge: { ...edge, ua: GOOGLEBOT }, payload: { sessionId: bot } }),
        eventEnvelope({ edge: { ...edge, ua: GOOGLEBOT }, payload: { eventType: "exit", sessionId: bot } }),
        viewEnvelope({ edge, payload: { sessionId: bot } }),
        serverSide(bot, { kind: "conversion" })
      ]
      // a human session; one of its events was sent with curl's UA
      const humanView = viewEnvelope({ edge, payload: { sessionId: human } })
      const humanClick = eventEnvelope({ edge, payload: { eventType: "click", sessionId: human } })
      const curlClick = eventEnvelope({ edge: { ...edge, ua: CURL }, payload: { eventType: "click", sessionId: human } })
      const humanConversion = serverSide(human, { kind: "conversion" })
      const all = [...botEvents, humanView, humanClick, curlClick, humanConversion]
      yield* xadd(keys.streamKey, all)
      const writer = yield* makeWriter({ ...keys, consumer: "bb-a", batchSize: 100 })
      yield* writer.drain

      const flags = yield* botFlags(all.map((e) => e.eventId))
      for (const e of botEvents) assert.isTrue(flags[e.eventId], `${e.payload.eventType} of the bot session`)
      assert.isTrue(flags[curlClick.eventId])
      for (const e of [humanView, humanClick, humanConversion]) assert.isFalse(flags[e.eventId], `${e.payload.eventType} of the human session`)

      const [fingerprint] = yield* query<{ is_bot: boolean }>(`SELECT is_bot FROM session_fingerprints WHERE session_id = $1`, [bot])
      assert.isTrue(fingerprint!.is_bot)
      const t = yield* totals(site.domainId)
      assert.deepStrictEqual(t, {
        pageviews: 1,
        sessions: 1,
        uniqueVisitors: 1,
        events: 3,
        conversions: 1,
        botEvents: 6,
        botEventsHourly: 6,
        daily: { pageviews: 1, sessions: 1, uniqueVisitors: 1, events: 3, conversions: 1, botEvents: 6 }
      })
    }))

  it.effect("across batches: a header-less event takes its session's stored first touch — a bot's is a bot event, counted once when redelivered", () =>
    Effect.gen(function*() {
      const keys = streamKeys("bots-stored")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("bots-stored")
      const bot = `bs-bot-${site.domainId}`
      const human = `bs-human-${site.domainId}`
      const edge = { headers: { origin: site.origin } }
      yield* xadd(keys.streamKey, [
        viewEnvelope({ edge: { ...edge, ua: GOOGLEBOT }, payload: { sessionId: bot } }),
        viewEnvelope({ edge, payload: { sessionId: human } })
      ])
      const writer = yield* makeWriter({ ...keys, consumer: "bs-a" })
      yield* writer.drain
      const before = yield* totals(site.domainId)
      assert.strictEqual(before.events, 1)
      assert.strictEqual(before.botEvents, 1)

      // later, server-side: no UA, no Origin; the sessions' views are stored, not in this batch
      const botConversion = serverSide(bot, { kind: "conversion" })
      const botEvent = serverSide(bot)
      const humanConversion = serverSide(human, { kind: "conversion" })
      const noView = serverSide(`bs-none-${site.domainId}`) // a session never seen: not a bot
      const later = [botConversion, botEvent, humanConversion, noView]
      yield* xadd(keys.streamKey, later)
      yield* writer.drain
      const flags = yield* botFlags(later.map((e) => e.eventId))
      assert.deepStrictEqual(flags, {
        [botConversion.eventId]: true,
        [botEvent.eventId]: true,
        [humanConversion.eventId]: false,
        [noView.eventId]: false
      })
      const after = yield* totals(site.domainId)
      // the never-seen session has no tenant: it counts in the NULL scope, not here
      assert.deepStrictEqual(
        { events: after.events, conversions: after.conversions, botEvents: after.botEvents, daily: after.daily },
        {
          events: 2,
          conversions: 1,
          botEvents: 3,
          daily: { pageviews: 1, sessions: 1, uniqueVisitors: 1, events: 2, conversions: 1, botEvents: 3 }
        }
      )

      // redelivered (a drain forwarding twice, a replay), mixed with a new bot event: counted once
      const another = serverSide(bot)
      yield* xadd(keys.streamKey, [...later, another])
      yield* writer.drain
      assert.isTrue((yield* botFlags([another.eventId]))[another.eventId])
      const again = yield* totals(site.domainId)
      assert.deepStrictEqual({ events: again.events, botEvents: again.botEvents }, { events: 2, botEvents: 4 })
      assert.strictEqual(again.daily!["botEvents"], 4)
    }))

  it.effect("in flight: a header-less event right behind its session's bot view, while that view's transaction is still open, is a bot event", () =>
    Effect.gen(function*() {
      const keys = streamKeys("bots-inflight")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("bots-inflight")
      const session = `bi-${site.domainId}`
      const view = viewEnvelope({ edge: { ua: GOOGLEBOT, headers: { origin: site.origin } }, payload: { sessionId: session } })
      const event = serverSide(session)
      yield* xadd(keys.streamKey, [view, event])
      // the view's transaction stays open (before COMMIT) until the event's has started and inserted
      const hold = yield* holdFirstUntilAnotherOpens(200)
      // without session lanes (with them one writer never has a session in two transactions at
      // once; several writers do)
      const writer = yield* makeWriter({
        ...keys,
        consumer: "bi-a",
        batchSize: 1,
        transactions: 2,
        sessionLanes: false,
        hooks: { beforeCommit: () => hold.hook }
      })
      yield* writer.drain
      assert.isTrue(hold.overlapped(), "the two transactions did not overlap")
      assert.isTrue((yield* botFlags([event.eventId]))[event.eventId])
      const t = yield* totals(site.domainId)
      assert.deepStrictEqual({ events: t.events, botEvents: t.botEvents }, { events: 0, botEvents: 2 })
    }))
})

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("the site of an event (edge.site)", (it) => {
  it.effect("an event admitted with a site's key is stored for that site whatever its headers say; an unknown site falls back to the hostname", () =>
    Effect.gen(function*() {
      const keys = streamKeys("edge-site")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("edge-site")
      const other = yield* domainFor("edge-other")
      const session = `es-${site.domainId}`
      // server-side, no headers at all; a view whose Origin names another domain; an unknown site id
      const noHeaders = serverSide(session, { kind: "conversion", site: site.domainId })
      const otherOrigin = viewEnvelope({ edge: { site: site.domainId, headers: { origin: other.origin } }, payload: { sessionId: session } })
      const unknownSite = eventEnvelope({ edge: { site: 2_000_000_000, headers: { origin: other.origin } } })
      yield* xadd(keys.streamKey, [noHeaders, otherOrigin, unknownSite])
      const writer = yield* makeWriter({ ...keys, consumer: "es-a" })
      yield* writer.drain
      const rows = yield* query<{ id: string; domain_id: number | null; corp_id: number | null }>(
        `SELECT id::text AS id, domain_id, corp_id FROM raw_events WHERE id = ANY($1::uuid[])`,
        [[noHeaders.eventId, otherOrigin.eventId, unknownSite.eventId]]
      )
      const byId = Object.fromEntries(rows.map((r) => [r.id, { domainId: r.domain_id, corpId: r.corp_id }]))
      assert.deepStrictEqual(byId, {
        [noHeaders.eventId]: { domainId: site.domainId, corpId: site.corpId },
        [otherOrigin.eventId]: { domainId: site.domainId, corpId: site.corpId },
        [unknownSite.eventId]: { domainId: other.domainId, corpId: other.corpId }
      })
      const t = yield* totals(site.domainId)
      assert.deepStrictEqual({ pageviews: t.pageviews, conversions: t.conversions }, { pageviews: 1, conversions: 1 })
      assert.strictEqual((yield* totals(other.domainId)).events, 1)
    }))

  it.effect("a site added after the tenant table was loaded: its first event reloads the table and lands on it", () =>
    Effect.gen(function*() {
      const keys = streamKeys("edge-site-new")
      yield* cleanupKeys(keys.streamKey)
      // added behind the tenant table's back (no refresh, no registry version change)
      const fresh = yield* registerDomain(`fresh-${Math.random().toString(36).slice(2, 8)}.example.com`)
      assert.isNull((yield* Domains).byId(fresh.domainId))
      // the table reloads for an unknown site at most once a second
      yield* Effect.sleep("1100 millis")
      const event = serverSide(`esn-${fresh.domainId}`, { site: fresh.domainId })
      yield* xadd(keys.streamKey, [event])
      const writer = yield* makeWriter({ ...keys, consumer: "esn-a" })
      yield* writer.drain
      const [row] = yield* query<{ domain_id: number | null }>(`SELECT domain_id FROM raw_events WHERE id = $1::uuid`, [event.eventId])
      assert.strictEqual(row!.domain_id, fresh.domainId)
    }))
})
