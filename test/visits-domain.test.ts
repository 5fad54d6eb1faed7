/**
 * The pure visit rules (src/domain/Visits.ts): merging is order-free, and the server-side
 * session rule on its own (30 minutes, nearest session, ties, ids).
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import type { PreparedEvent } from "../src/domain/Batch.ts"
import {
  assignVisitorSessions,
  type KnownSession,
  latestSession,
  mergeVisit,
  SESSION_GAP_MS,
  serverSessionId,
  visitOfEvent,
  visitRows,
  type VisitRow
} from "../src/domain/Visits.ts"

const MIN = 60_000

const event = (input: { id: number; at: number; view: boolean; page: number; session?: string; vid?: number }): PreparedEvent => {
  const eventId = `00000000-0000-4000-8000-${String(input.id).padStart(12, "0")}`
  const vid = input.vid === undefined ? null : new Uint8Array([input.vid])
  const base = {
    eventId,
    kind: input.view ? "view" : "event",
    eventType: input.view ? "pageview" : "engagement",
    sessionId: input.session ?? "s",
    userId: null,
    pageUrl: `https://a.example/p${input.page}?q=${input.id}`,
    referrer: null,
    metadata: null,
    timestamp: new Date(input.at).toISOString(),
    receivedAt: new Date(input.at).toISOString()
  } as const
  const row = input.view
    ? {
      ...base,
      isView: true as const,
      device: { deviceType: "desktop", isBot: false, browser: null, browserVersion: null, browserMajor: null, os: null, osVersion: null, deviceVendor: null, deviceModel: null },
      deviceType: "desktop" as const,
      isBot: false,
      ipHash: null,
      visitorIdDaily: vid ?? new Uint8Array([0]),
      traffic: { source: "direct", rawSource: null, medium: null, campaign: null, content: null, term: null, referrer: null },
      tenantHost: null,
      landingPage: null,
      geo: { country: null, region: null, city: null, isEu: null, timezone: null }
    }
    : { ...base, isView: false as const, deviceType: null, isBot: false, ipHash: null, visitorIdDaily: vid, tenantHost: null }
  return {
    entryId: String(input.id),
    receivedAtMs: input.at,
    timestampMs: input.at,
    scope: { corpId: 1, domainId: 1 },
    resolveScope: false,
    resolveBot: false,
    row: row as PreparedEvent["row"]
  }
}

const plain = (v: VisitRow) => ({
  ...v,
  visitorIdDaily: v.visitorIdDaily === null ? null : [...v.visitorIdDaily],
  entry: v.entry === undefined ? undefined : { at: v.entry.at, page: v.entry.page, eventId: v.entry.eventId }
})

const Item = Schema.Struct({
  at: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 20 })),
  view: Schema.Boolean,
  page: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3 })),
  vid: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 3 }))
})
const Items = Schema.Array(Item).check(Schema.isMinLength(1), Schema.isMaxLength(12))
const Seeds = Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 }))).check(Schema.isMinLength(12), Schema.isMaxLength(12))

describe("visit rows", () => {
  it.prop(
    "merging the events' rows in any order and grouping gives the same visit",
    [Items, Seeds],
    ([items, seeds]) => {
      const events = items.map((item, id) => event({ id, at: item.at * 1000, view: item.view, page: item.page, vid: item.vid }))
      const inOrder = events.map((e) => visitOfEvent(e, 1)).reduce((a, b) => mergeVisit(a, b))
      const shuffled = events.map((e, i) => [seeds[i]!, e] as const).sort((a, b) => a[0] - b[0]).map(([, e]) => e)
      // split in two "batches", each grouped, then merged: as the sink does across transactions
      const half = Math.floor(shuffled.length / 2)
      const parts = [shuffled.slice(0, half), shuffled.slice(half)].filter((p) => p.length > 0).map((p) => visitRows(p)[0]!)
      const merged = parts.reduceRight((a, b) => mergeVisit(a, b))
      assert.deepStrictEqual(plain(merged), plain(inOrder))
    },
    { arbitrary: { runs: 500 } }
  )

  it("engaged = any non-view event; page = the path; entry by (time, page, event id), exit by (time, page)", () => {
    const rows = visitRows([
      event({ id: 2, at: 1000, view: true, page: 1 }),
      event({ id: 1, at: 1000, view: true, page: 1 }),
      event({ id: 3, at: 1000, view: true, page: 0 }),
      event({ id: 4, at: 5000, view: true, page: 2 }),
      event({ id: 5, at: 5000, view: true, page: 3 })
    ])
    assert.strictEqual(rows.length, 1)
    assert.include(rows[0]!, { pageviews: 5, events: 5, engaged: false, startedAt: 1000, lastSeenAt: 5000, exitPage: "/p3", exitAt: 5000 })
    assert.deepStrictEqual({ page: rows[0]!.entry!.page, id: rows[0]!.entry!.eventId.slice(-1) }, { page: "/p0", id: "3" })
    assert.isTrue(visitRows([event({ id: 1, at: 0, view: true, page: 0 }), event({ id: 2, at: 1, view: false, page: 0 })])[0]!.engaged)
  })

  it("rows of an unknown site are left out; rows are sorted by (site, session)", () => {
    const noSite = { ...event({ id: 1, at: 0, view: true, page: 0 }), scope: { corpId: null, domainId: null } }
    const b = { ...event({ id: 2, at: 0, view: true, page: 0, session: "b" }) }
    const a2 = { ...event({ id: 3, at: 0, view: true, page: 0, session: "a" }), scope: { corpId: 1, domainId: 2 } }
    const a1 = event({ id: 4, at: 0, view: true, page: 0, session: "a" })
    assert.deepStrictEqual(visitRows([noSite, b, a2, a1]).map((r) => `${r.siteId}|${r.sessionId}`), ["1|a", "1|b", "2|a"])
  })
})

describe("server-side session rule", () => {
  const ids = (known: Array<KnownSession>, events: Array<[number, string]>) =>
    assignVisitorSessions(known, events.map(([at, eventId]) => ({ at, eventId })))

  it("less than 30 minutes since the last event: same session; exactly 30: a new one, named after its first event", () => {
    const known: Array<KnownSession> = []
    const out = ids(known, [[0, "A"], [10 * MIN, "B"], [10 * MIN + SESSION_GAP_MS - 1, "C"], [10 * MIN + 2 * SESSION_GAP_MS - 1, "D"]])
    assert.deepStrictEqual(out, [serverSessionId("A"), serverSessionId("A"), serverSessionId("A"), serverSessionId("D")])
    assert.strictEqual(serverSessionId("A"), "~a")
    assert.strictEqual(latestSession(known)!.sessionId, "~d")
  })

  it("events of a batch are assigned in (time, event id) order, whatever order they come in", () => {
    assert.deepStrictEqual(ids([], [[20 * MIN, "z"], [0, "y"], [0, "x"]]), ["~x", "~x", "~x"])
  })

  it("an event joins the nearest known session; a tie goes to the earlier one; stored sessions are extended", () => {
    const earlier = { sessionId: "~e", startedAt: 0, lastSeenAt: 10 * MIN }
    const later = { sessionId: "~l", startedAt: 40 * MIN, lastSeenAt: 50 * MIN }
    const known = [later, earlier]
    assert.deepStrictEqual(ids(known, [[25 * MIN, "t"]]), ["~e"]) // 15 min from both
    assert.deepStrictEqual(ids(known, [[36 * MIN, "n"]]), ["~l"]) // 4 min before the later one
    assert.strictEqual(later.startedAt, 36 * MIN)
    assert.strictEqual(earlier.lastSeenAt, 25 * MIN)
    assert.deepStrictEqual(ids(known, [[120 * MIN, "f"]]), ["~f"])
  })
})
