/**
 * Session lanes (WRITER_SESSION_LANES, domain/SessionLanes.ts): a batch read is written as one
 * transaction per lane, split by session, so the transactions in flight touch disjoint
 * sessions — and what is stored is the same as without it. Plain PostgreSQL; the
 * transactions are observed with the sink's beforeCommit hook.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { encodeEnvelopeJson } from "../src/domain/Envelope.ts"
import { laneKeyOfPayload, splitIntoLanes } from "../src/domain/SessionLanes.ts"
import {
  cleanupKeys,
  domainFor,
  eventEnvelope,
  makeWriter,
  query,
  streamKeys,
  viewEnvelope,
  writerTestLayer,
  xadd
} from "./writerSupport.ts"

const entry = (payload: string, id: string) => ({ id, payload, deliveries: 1 })

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("WRITER_SESSION_LANES", (it) => {
  /** 8 sessions × 5 events (a view, then events and views), interleaved; the writer's transactions as entry ids */
  const run = (name: string, sessionLanes: boolean) =>
    Effect.gen(function*() {
      const keys = streamKeys(name)
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor(name)
      const sessions = Array.from({ length: 8 }, (_, i) => `${name}-s${i}`)
      const envelopes = Array.from({ length: 40 }, (_, i) => {
        const input = {
          edge: { headers: { origin: site.origin } },
          payload: { sessionId: sessions[i % 8]!, pageUrl: `${site.origin}/p${Math.floor(i / 8)}` }
        }
        return i % 16 < 8 ? viewEnvelope(input) : eventEnvelope(input)
      })
      const ids = yield* xadd(keys.streamKey, envelopes)
      const sessionOf = new Map(ids.map((id, i) => [id, sessions[i % 8]!]))
      const transactions: Array<ReadonlyArray<string>> = []
      const writer = yield* makeWriter({
        ...keys,
        consumer: `${name}-w`,
        batchSize: 100,
        transactions: 2,
        sessionLanes,
        hooks: { beforeCommit: ({ entryIds }) => Effect.sync(() => void transactions.push(entryIds)) }
      })
      yield* writer.drain
      const stored = yield* query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1`, [site.domainId])
      const visits = yield* query<{ session_id: string; pageviews: number; events: number }>(
        `SELECT session_id, pageviews, events FROM visits WHERE site_id = $1 ORDER BY session_id`,
        [site.domainId]
      )
      return { transactions, sessionOf, stored: stored[0]!.n, visits }
    })

  it.effect("on (the default): one transaction per lane, no session in two of them, every event stored once", () =>
    Effect.gen(function*() {
      const { sessionOf, stored, transactions, visits } = yield* run("lanes-on", true)
      assert.strictEqual(stored, 40)
      assert.strictEqual(transactions.length, 2)
      const [a, b] = transactions.map((t) => new Set(t.map((id) => sessionOf.get(id))))
      for (const session of a!) assert.isFalse(b!.has(session), `${session} in both lanes`)
      assert.strictEqual(transactions[0]!.length + transactions[1]!.length, 40)
      // the visits are the same as one transaction makes (below)
      assert.deepStrictEqual(visits.map((v) => [v.pageviews, v.events]), Array.from({ length: 8 }, () => [3, 5]))
    }))

  it.effect("off: one transaction for the read, the same visits", () =>
    Effect.gen(function*() {
      const { stored, transactions, visits } = yield* run("lanes-off", false)
      assert.strictEqual(stored, 40)
      assert.strictEqual(transactions.length, 1)
      assert.deepStrictEqual(visits.map((v) => [v.pageviews, v.events]), Array.from({ length: 8 }, () => [3, 5]))
    }))

  it("the lane key: the sessionId, else the client IP, else empty", () => {
    const withSession = viewEnvelope({ payload: { sessionId: `a"b\\c` } })
    assert.strictEqual(laneKeyOfPayload(encodeEnvelopeJson(withSession)), JSON.stringify(`a"b\\c`).slice(1, -1))
    const { sessionId: _, ...payload } = viewEnvelope().payload
    const withoutSession = { ...viewEnvelope({ edge: { ip: "203.0.113.9" } }), payload }
    assert.strictEqual(laneKeyOfPayload(encodeEnvelopeJson(withoutSession)), "203.0.113.9")
    assert.strictEqual(laneKeyOfPayload("not json"), "")
  })

  it("the split: every entry once, in stream order per lane, one session in one lane, at most `lanes` groups", () => {
    const entries = Array.from({ length: 500 }, (_, i) =>
      entry(encodeEnvelopeJson(viewEnvelope({ payload: { sessionId: `s${(i * 7919) % 37}` } })), `${i}`))
    for (const lanes of [2, 3, 5]) {
      const groups = splitIntoLanes(entries, lanes)
      assert.isAtMost(groups.length, lanes)
      assert.isAbove(groups.length, 1)
      assert.deepStrictEqual(groups.flat().map((e) => e.id).sort(), entries.map((e) => e.id).sort())
      const laneOfSession = new Map<string, number>()
      groups.forEach((group, lane) => {
        const ids = group.map((e) => Number(e.id))
        assert.deepStrictEqual(ids, [...ids].sort((x, y) => x - y))
        for (const e of group) {
          const key = laneKeyOfPayload(e.payload)
          assert.strictEqual(laneOfSession.get(key) ?? lane, lane, `${key} in two lanes`)
          laneOfSession.set(key, lane)
        }
      })
    }
    assert.deepStrictEqual(splitIntoLanes(entries, 1), [entries])
    assert.deepStrictEqual(splitIntoLanes([], 2), [])
  })
})
