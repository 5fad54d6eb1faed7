/**
 * Visits (issue 14, docs/visits.md) through the real writer, PostgreSQL and Redis: each metric
 * on hand-made visits (bounce, duration, entry / exit page, first touch), redelivery,
 * out-of-order arrival and overlapping transactions, and the server-side session assignment
 * of events sent without a sessionId (the 30-minute rule, two visitors, redelivery, late events).
 */
import { assert, layer } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { SESSION_GAP_MS, serverSessionId } from "../src/domain/Visits.ts"
import { bySession, type StoredVisit, visitsOf } from "./support/visits.ts"
import {
  cleanupKeys,
  domainFor,
  drainOverlappedThenSerial,
  eventEnvelope,
  GOOGLEBOT,
  IPHONE,
  makeWriter,
  query,
  streamKeys,
  viewEnvelope,
  withLateCopies,
  writerTestLayer,
  xadd
} from "./writerSupport.ts"

const T0 = Date.parse("2026-05-01T10:00:00.000Z")
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString()
const MIN = 60

/** An envelope without a sessionId (the writer assigns the session). */
const withoutSession = <E extends ReturnType<typeof viewEnvelope>>(envelope: E): E => {
  const { sessionId: _, ...payload } = envelope.payload
  return { ...envelope, payload } as E
}

layer(writerTestLayer(), { excludeTestServices: true, timeout: "120 seconds" })("visits", (it) => {
  it.effect("each metric on hand-made visits: bounce, duration, entry / exit page, first touch", () =>
    Effect.gen(function*() {
      const keys = streamKeys("hand")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("hand")
      const edge = { headers: { origin: site.origin } }
      const view = (session: string, seconds: number, path: string, extra: Parameters<typeof viewEnvelope>[0] = {}) =>
        viewEnvelope({
          ...extra,
          receivedAt: at(seconds),
          edge: { ...edge, ...extra.edge },
          payload: { sessionId: session, pageUrl: `${site.origin}${path}?q=1#frag`, ...extra.payload }
        })
      const event = (session: string, seconds: number, eventType: string) =>
        eventEnvelope({ receivedAt: at(seconds), edge, payload: { sessionId: session, eventType } })
      const landing = view("bounce", 0, "/landing", {
        edge: { ua: IPHONE, ip: "81.2.69.160" },
        payload: {
          referrer: "https://www.google.com/search?q=x",
          attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "spring", utmContent: "top", utmTerm: "shoes" },
          clientDevice: { language: "en-GB", viewportWidth: 390, touchPoints: 5 }
        }
      })
      // "read": three pages and an engagement event, the last page sent first (arrives out of order)
      const stream = [
        landing,
        view("read", 120, "/c"),
        view("read", 0, "/a", { edge: { ip: "89.160.20.112" } }),
        view("read", 60, "/b"),
        event("read", 150, "engagement"),
        view("one-engaged", 10, "/article"),
        event("one-engaged", 40, "engagement"),
        view("clicked", 10, "/pricing"),
        event("clicked", 20, "outbound"),
        view("bot", 5, "/", { edge: { ua: GOOGLEBOT } }),
        view("bot", 6, "/x", { edge: { ua: GOOGLEBOT } }),
        // no site: no visit
        viewEnvelope({ receivedAt: at(1), edge: { headers: { origin: "https://unknown.example" } }, payload: { sessionId: "nosite" } })
      ]
      yield* xadd(keys.streamKey, stream)
      const writer = yield* makeWriter({ ...keys, consumer: "hand-a", batchSize: 2 })
      yield* writer.drain
      const visits = bySession(yield* visitsOf(site.domainId))
      assert.deepStrictEqual([...visits.keys()].sort(), ["bot", "bounce", "clicked", "one-engaged", "read"])

      const bounce = visits.get("bounce")!
      assert.include(bounce, {
        pageviews: 1,
        events: 1,
        engaged: false,
        bounce: true,
        duration_ms: 0,
        entry_page: "/landing",
        exit_page: "/landing",
        hostname: site.hostname,
        source: "email",
        referrer: "https://www.google.com/search?q=x",
        utm_source: "newsletter",
        utm_medium: "email",
        utm_campaign: "spring",
        utm_content: "top",
        utm_term: "shoes",
        device: "mobile",
        country: "GB",
        region: "ENG",
        city: "London",
        language: "en-GB",
        is_bot: false
      })
      // the same first touch as the session's fingerprint (the enrichment's own values)
      const [fp] = yield* query<Record<string, unknown>>(
        `SELECT browser, browser_version, os, os_version, encode(visitor_id_daily, 'hex') AS vid FROM session_fingerprints WHERE session_id = 'bounce'`
      )
      assert.deepStrictEqual(
        { browser: bounce.browser, browser_version: bounce.browser_version, os: bounce.os, os_version: bounce.os_version, vid: bounce.vid },
        fp
      )
      assert.isNotNull(bounce.browser)

      const read = visits.get("read")!
      assert.include(read, {
        pageviews: 3,
        events: 4,
        engaged: true,
        bounce: false,
        started: T0,
        last: T0 + 150_000,
        duration_ms: 150_000,
        entry_page: "/a",
        entry_at: T0,
        exit_page: "/c",
        exit_at: T0 + 120_000,
        // the first touch is the entry view's (its IP is in Sweden), whatever arrived first
        country: "SE",
        source: "direct",
        device: "desktop"
      })
      // one page view and an engagement event: not a bounce; so is one with any other event
      assert.include(visits.get("one-engaged")!, { pageviews: 1, events: 2, engaged: true, bounce: false, duration_ms: 30_000 })
      assert.include(visits.get("clicked")!, { pageviews: 1, engaged: true, bounce: false })
      assert.include(visits.get("bot")!, { is_bot: true, pageviews: 2, entry_page: "/", exit_page: "/x", device: "bot" })
      const [noSite] = yield* query<{ n: number }>(`SELECT count(*)::int AS n FROM visits WHERE session_id = 'nosite'`)
      assert.strictEqual(noSite!.n, 0)
    }))

  it.effect("ties: the entry is the earliest view by (time, page, event id), the exit the latest by (time, page)", () =>
    Effect.gen(function*() {
      const keys = streamKeys("ties")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("ties")
      const view = (id: string, path: string, ip: string) =>
        viewEnvelope({
          eventId: id,
          receivedAt: at(0),
          edge: { headers: { origin: site.origin }, ip },
          payload: { sessionId: "tie", pageUrl: `${site.origin}${path}` }
        })
      const ids = ["00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000001"]
      // same time: /a before /b; same time and page: the lower event id (its IP: GB) is the entry
      yield* xadd(keys.streamKey, [view(randomUUID(), "/b", "81.2.69.160"), view(ids[0]!, "/a", "89.160.20.112")])
      const w1 = yield* makeWriter({ ...keys, consumer: "ties-a", batchSize: 1 })
      yield* w1.drain
      yield* xadd(keys.streamKey, [view(ids[1]!, "/a", "81.2.69.160")])
      yield* w1.drain
      const [visit] = yield* visitsOf(site.domainId)
      assert.include(visit!, { entry_page: "/a", exit_page: "/b", country: "GB", pageviews: 3 })
      const [row] = yield* query<{ id: string }>(`SELECT entry_event_id::text AS id FROM visits WHERE site_id = $1`, [site.domainId])
      assert.strictEqual(row!.id, ids[1])
    }))

  it.effect("redelivery, out-of-order arrival and three transactions in flight give the visits of a one-at-a-time, in-order writer", () =>
    Effect.gen(function*() {
      const overlapped = streamKeys("v-overlap")
      const serial = streamKeys("v-serial")
      yield* cleanupKeys(overlapped.streamKey, serial.streamKey)
      const siteA = yield* domainFor("v-overlap")
      const siteB = yield* domainFor("v-serial")
      // 12 client sessions of views and events over 40 minutes, and 4 visitors without a
      // sessionId whose events keep within 20 minutes (one session each whatever the order)
      const workload = (site: { readonly origin: string }, tag: string) => {
        const list: Array<ReturnType<typeof viewEnvelope>> = []
        for (let i = 0; i < 72; i++) {
          const session = i % 12
          const seconds = (i * 7919) % (40 * MIN)
          const edge = { headers: { origin: site.origin }, ip: `81.2.69.${160 + (session % 5)}`, ...(session === 11 ? { ua: GOOGLEBOT } : {}) }
          list.push(
            i % 4 === 3
              ? eventEnvelope({ receivedAt: at(seconds), edge, payload: { sessionId: `${tag}-s${session}`, eventType: "engagement" } })
              : viewEnvelope({ receivedAt: at(seconds), edge, payload: { sessionId: `${tag}-s${session}`, pageUrl: `${site.origin}/p${i % 5}` } })
          )
        }
        for (let i = 0; i < 32; i++) {
          const visitor = i % 4
          const seconds = 3 * 3600 + visitor * 3 * 3600 + ((i * 613) % (20 * MIN))
          const edge = { headers: { origin: site.origin }, ip: `89.160.20.${112 + visitor}` }
          list.push(withoutSession(
            i % 3 === 2
              ? eventEnvelope({ receivedAt: at(seconds), edge, payload: { eventType: "engagement" } })
              : viewEnvelope({ receivedAt: at(seconds), edge, payload: { pageUrl: `${site.origin}/q${i % 3}` } })
          ))
        }
        // every entry twice, the copy 1–9 entries later, and the whole list in a scrambled order
        const scrambled = list.map((e, i) => [(i * 37) % list.length, e] as const).sort((a, b) => a[0] - b[0]).map(([, e]) => e)
        const stream = withLateCopies(scrambled)
        const inOrder = [...list].sort((a, b) => Date.parse(a.receivedAt) - Date.parse(b.receivedAt))
        return { list, stream, inOrder }
      }
      const a = workload(siteA, "ovl")
      const b = workload(siteB, "ser")
      yield* xadd(overlapped.streamKey, a.stream)
      yield* xadd(serial.streamKey, b.inOrder)

      const [writerA, writerB] = yield* drainOverlappedThenSerial("v-", overlapped, serial)
      for (const writer of [writerA, writerB]) {
        const stats = yield* writer.snapshot
        assert.strictEqual(stats.written, 104)
        assert.strictEqual(stats.retries, 0) // no deadlock
      }
      // client sessions by name; server-assigned ones by their time span (their id is the
      // event id of the first event the writer saw of them, which depends on arrival order)
      const comparable = (visits: ReadonlyArray<StoredVisit>, tag: string) =>
        visits.map(({ hostname, session_id, ...rest }) => ({
          ...rest,
          hostname: hostname?.split("-")[0],
          session: session_id.startsWith("~") ? "server" : session_id.slice(tag.length)
        })).sort((x, y) => x.started - y.started || x.session.localeCompare(y.session))
      const visitsA = comparable(yield* visitsOf(siteA.domainId), "ovl")
      const visitsB = comparable(yield* visitsOf(siteB.domainId), "ser")
      assert.strictEqual(visitsA.length, 16)
      assert.strictEqual(visitsA.filter((v) => v.session === "server").length, 4)
      assert.deepStrictEqual(visitsA, visitsB)
      // each server-assigned session is the one of its visitor: 8 events each
      for (const v of visitsA.filter((v) => v.session === "server")) assert.strictEqual(v.events, 8)
    }))

  it.effect("server-side sessions: same site + daily visitor + < 30 minutes since the last event; two visitors; redelivery changes nothing", () =>
    Effect.gen(function*() {
      const keys = streamKeys("assign")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("assign")
      const edge = (ip: string) => ({ headers: { origin: site.origin }, ip })
      const view = (seconds: number, ip: string, path: string) =>
        withoutSession(viewEnvelope({ receivedAt: at(seconds), edge: edge(ip), payload: { pageUrl: `${site.origin}${path}` } }))
      const engagement = (seconds: number, ip: string) =>
        withoutSession(eventEnvelope({ receivedAt: at(seconds), edge: edge(ip), payload: { eventType: "engagement" } }))
      const v1 = "81.2.69.160"
      const v2 = "89.160.20.112"
      const gapJustUnder = SESSION_GAP_MS / 1000 - 1
      const first = view(0, v1, "/a")
      const events = [
        first,
        view(10 * MIN, v1, "/b"),
        engagement(10 * MIN + gapJustUnder, v1), // 29:59 after /b: same session
        view(5 * MIN, v2, "/other"), // another visitor (IP): a session of its own
        view(10 * MIN + gapJustUnder + 30 * MIN, v1, "/c") // exactly 30 minutes later: a new session
      ]
      yield* xadd(keys.streamKey, events)
      // one event per batch, three transactions in flight: assigned in stream order all the same
      // (no session lanes: they would keep one visitor's batches apart)
      const writer = yield* makeWriter({ ...keys, consumer: "assign-a", batchSize: 1, transactions: 3, sessionLanes: false })
      yield* writer.drain
      // everything again (a redelivery, a spool drain), in another order
      yield* xadd(keys.streamKey, [...events].reverse())
      yield* writer.drain
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.written, 5)
      assert.strictEqual(stats.duplicates, 5)

      const visits = yield* visitsOf(site.domainId)
      assert.strictEqual(visits.length, 3)
      const firstSession = serverSessionId(first.eventId)
      const one = visits.find((v) => v.session_id === firstSession)!
      assert.include(one, { pageviews: 2, events: 3, engaged: true, entry_page: "/a", exit_page: "/b", duration_ms: (10 * MIN + gapJustUnder) * 1000 })
      const later = visits.find((v) => v.entry_page === "/c")!
      assert.include(later, { session_id: serverSessionId(events[4]!.eventId), pageviews: 1, bounce: true })
      const other = visits.find((v) => v.entry_page === "/other")!
      assert.notStrictEqual(other.vid, one.vid)
      assert.strictEqual(later.vid, one.vid)
      // raw_events carry the assigned ids; the visitor's latest session is remembered
      const raw = yield* query<{ session_id: string }>(
        `SELECT session_id FROM raw_events WHERE domain_id = $1 ORDER BY received_at`,
        [site.domainId]
      )
      assert.deepStrictEqual(raw.map((r) => r.session_id), [firstSession, other.session_id, firstSession, firstSession, later.session_id])
      const state = yield* query<{ session_id: string }>(
        `SELECT session_id FROM visitor_sessions WHERE site_id = $1 ORDER BY last_seen_at`,
        [site.domainId]
      )
      assert.deepStrictEqual(state.map((s) => s.session_id), [other.session_id, later.session_id])
      // sessions (rollup) and fingerprints follow the assigned ids
      const [fp] = yield* query<{ n: number }>(`SELECT count(*)::int AS n FROM session_fingerprints WHERE domain_id = $1`, [site.domainId])
      assert.strictEqual(fp!.n, 3)
    }))

  it.effect("server-side sessions: batches in flight assign in the order they were read, even when the first one is slower to lock", () =>
    Effect.gen(function*() {
      const keys = streamKeys("turn")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("turn")
      const view = (seconds: number, path: string) =>
        withoutSession(viewEnvelope({ receivedAt: at(seconds), edge: { headers: { origin: site.origin } }, payload: { pageUrl: `${site.origin}${path}` } }))
      // in order: one session (each 20 minutes after the last); read the other way round the
      // third would not join the first
      const events = [view(0, "/a"), view(20 * MIN, "/b"), view(40 * MIN, "/c")]
      const entryIds = yield* xadd(keys.streamKey, events)
      let delayed = false
      const writer = yield* makeWriter({
        ...keys,
        consumer: "turn-a",
        batchSize: 1,
        transactions: 3,
        sessionLanes: false, // lanes would keep one visitor's batches apart: no turn to take

        hooks: {
          // the first batch is slow to take its locks: the others must wait for it
          beforeVisitorLocks: ({ entryIds: ids }) =>
            ids[0] === entryIds[0] && !delayed ? Effect.sleep("300 millis").pipe(Effect.andThen(Effect.sync(() => (delayed = true)))) : Effect.void
        }
      })
      yield* writer.drain
      assert.isTrue(delayed)
      const visits = yield* visitsOf(site.domainId)
      assert.strictEqual(visits.length, 1)
      assert.include(visits[0]!, { session_id: serverSessionId(events[0]!.eventId), pageviews: 3, entry_page: "/a", exit_page: "/c" })
    }))

  it.effect("server-side sessions, late events: a visitor's earlier events arriving after a later session join their own session", () =>
    Effect.gen(function*() {
      const keys = streamKeys("late")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("late")
      const view = (seconds: number, path: string) =>
        withoutSession(viewEnvelope({ receivedAt: at(seconds), edge: { headers: { origin: site.origin } }, payload: { pageUrl: `${site.origin}${path}` } }))
      const early = [view(0, "/a"), view(5 * MIN, "/b"), view(12 * MIN, "/c")]
      const late = view(60 * MIN, "/d")
      // the later session is written first (a spool drain brings the earlier events afterwards), one batch each
      yield* xadd(keys.streamKey, [late, ...early])
      const writer = yield* makeWriter({ ...keys, consumer: "late-a", batchSize: 1 })
      yield* writer.drain
      const visits = yield* visitsOf(site.domainId)
      assert.strictEqual(visits.length, 2)
      const earlier = visits.find((v) => v.entry_page === "/a")!
      // opened by the first of them to arrive; the other two found it among the visitor's earlier sessions
      assert.include(earlier, { session_id: serverSessionId(early[0]!.eventId), pageviews: 3, exit_page: "/c" })
      assert.include(visits.find((v) => v.entry_page === "/d")!, { session_id: serverSessionId(late.eventId), pageviews: 1 })
      // the visitor's latest session is still the later one
      const [state] = yield* query<{ session_id: string }>(`SELECT session_id FROM visitor_sessions WHERE site_id = $1`, [site.domainId])
      assert.strictEqual(state!.session_id, serverSessionId(late.eventId))
    }))
})
