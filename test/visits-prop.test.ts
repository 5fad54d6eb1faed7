/**
 * Visits, property: a random history — events of four client sessions and of one visitor that
 * sends no sessionId, each delivered 1–3 times, in a random order, written in random batch
 * sizes with two transactions in flight — gives, through the PostgreSQL sink and through the
 * in-memory sink, the visits a reference computed here from the distinct events says:
 * start, last seen, pageviews, events, engaged, entry / exit page and time, first-touch country.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as MemorySink from "../src/layers/MemorySink.ts"
import { deliveries, historyEvent, historyOf, type HistoryEvent, int, IPS, writeForNewSite, writeThroughWriter } from "./support/history.ts"
import { visitsOf } from "./support/visits.ts"
import { eventEnvelope, onMemory, viewEnvelope, writerTestLayer } from "./writerSupport.ts"

const COUNTRY: Record<string, string> = { "81.2.69.160": "GB", "89.160.20.112": "SE" }
/** session 4: the visitor without a sessionId; its events stay within 25 minutes (one session) */
const SERVER = 4

const History = historyOf(SERVER + 1, {
  view: Schema.Boolean,
  ip: int(0, 1)
})

interface Event extends HistoryEvent {
  readonly view: boolean
  readonly ip: string
}

const eventsOf = (history: typeof History.Type): Array<Event> =>
  history.map((item) => ({
    // the server-side session's steps wrap at 50 (25 minutes)
    ...historyEvent(item.session === SERVER ? { ...item, step: item.step % 50 } : item),
    view: item.view,
    ip: item.session === SERVER ? IPS[0] : IPS[item.ip]!
  }))

interface Expected {
  readonly started: number
  readonly last: number
  readonly pageviews: number
  readonly events: number
  readonly engaged: boolean
  readonly entry_page: string | null
  readonly entry_at: number | null
  readonly exit_page: string | null
  readonly exit_at: number | null
  readonly country: string | null
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** The reference: straight from the distinct events of each session. */
const reference = (events: ReadonlyArray<Event>): Map<string, Expected> => {
  const out = new Map<string, Expected>()
  for (const session of new Set(events.map((e) => e.session))) {
    const own = events.filter((e) => e.session === session)
    const views = own.filter((e) => e.view)
    const entry = [...views].sort((a, b) => a.at - b.at || cmp(a.page, b.page) || cmp(a.id, b.id))[0]
    const exit = [...views].sort((a, b) => b.at - a.at || cmp(b.page, a.page))[0]
    out.set(session === SERVER ? "server" : `s${session}`, {
      started: Math.min(...own.map((e) => e.at)),
      last: Math.max(...own.map((e) => e.at)),
      pageviews: views.length,
      events: own.length,
      engaged: own.some((e) => !e.view),
      entry_page: entry?.page ?? null,
      entry_at: entry?.at ?? null,
      exit_page: exit?.page ?? null,
      exit_at: exit?.at ?? null,
      country: entry === undefined ? null : COUNTRY[entry.ip]!
    })
  }
  return out
}

/** Every copy of every event, in rank order. */
const streamOf = (events: ReadonlyArray<Event>, tag: string, origin: string) =>
  deliveries(events).map((e) => {
    const input = {
      eventId: e.id,
      receivedAt: new Date(e.at).toISOString(),
      edge: { headers: { origin }, ip: e.ip },
      payload: e.view ? { pageUrl: `${origin}${e.page}` } : { eventType: "engagement" }
    }
    const envelope = e.view ? viewEnvelope(input) : eventEnvelope(input)
    const { sessionId: _, ...payload } = envelope.payload
    return { ...envelope, payload: e.session === SERVER ? payload : { ...payload, sessionId: `${tag}-s${e.session}` } }
  })

const HOST = "memory.example"
const name = (sessionId: string, tag: string) => (sessionId.startsWith("~") ? "server" : sessionId.slice(tag.length + 1))

layer(writerTestLayer(), { excludeTestServices: true, timeout: "300 seconds" })("visits, property", (it) => {
  it.effect.prop(
    "random histories with duplicates and reordering: visits equal the reference, in PostgreSQL and in memory",
    { history: History, batchSize: int(1, 6) },
    ({ batchSize, history }) =>
      Effect.gen(function*() {
        const events = eventsOf(history)
        const expected = reference(events)
        const tag = `p${Math.random().toString(36).slice(2, 8)}`

        // PostgreSQL
        const site = yield* writeForNewSite("vprop", batchSize, (origin) => streamOf(events, tag, origin))
        const stored = yield* visitsOf(site.domainId)
        const actual = new Map(stored.map((v) => [name(v.session_id, tag), {
          started: v.started,
          last: v.last,
          pageviews: v.pageviews,
          events: v.events,
          engaged: v.engaged,
          entry_page: v.entry_page,
          entry_at: v.entry_at,
          exit_page: v.exit_page,
          exit_at: v.exit_at,
          country: v.country
        } satisfies Expected]))
        assert.deepStrictEqual(Object.fromEntries(actual), Object.fromEntries(expected))

        // memory
        const store = new MemorySink.MemoryStore()
        yield* writeThroughWriter("vprop-mem", streamOf(events, tag, `https://${HOST}`), batchSize, yield* onMemory(store, HOST))
        const inMemory = new Map([...store.visits.values()].map((v) => [name(v.sessionId, tag), {
          started: v.startedAt,
          last: v.lastSeenAt,
          pageviews: v.pageviews,
          events: v.events,
          engaged: v.engaged,
          entry_page: v.entry?.page ?? null,
          entry_at: v.entry?.at ?? null,
          exit_page: v.exitPage,
          exit_at: v.exitAt,
          country: v.entry?.view.geo.country ?? null
        } satisfies Expected]))
        assert.deepStrictEqual(Object.fromEntries(inMemory), Object.fromEntries(expected))
      }),
    { timeout: 300_000, arbitrary: { runs: 25 } }
  )
})
