/**
 * The writer's visit item rows (domain/VisitItems.ts `visitItemRows`), property: for random
 * events — page URLs built from the characters `spoolway_page_path` cuts at (and NUL, lone
 * surrogates, non-ASCII), event types with conversions, metadata whose `value` is any number,
 * a numeric string or missing — the rows computed in Node equal what the SQL they replace
 * (`itemsOfEventsSql` over the events' parameters as the raw_events insert sends them) computes
 * in PostgreSQL: the same keys, figures and revenue (as numeric text, with its scale).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { decimalText, type ItemEvent, itemsOfEventsSql, visitItemRows } from "../src/domain/VisitItems.ts"
import { int4Array, metadataJson, noNul, noNulOrNull, textArray } from "../src/layers/PgSinkParams.ts"
import { itemParams } from "../src/layers/PgSinkStatements.ts"
import * as Sql from "../src/layers/Sql.ts"
import { TestDb } from "./writerSupport.ts"

const PIECES = ["/", "?", "#", "://", ":", "|", "|page|=", "a", "B", "é", "日", "😀", "\u0000", "\ud800", "\udfff", " ", "%2F", ".", "x=1", "https", "p"] as const
const Url = Schema.Union([Schema.Null, Schema.Array(Schema.Literals(PIECES)).check(Schema.isMaxLength(8))])
const NUMBERS = [0, -0, 1, -5.5, 0.1, 19.99, 1e21, 1.5e-7, 123456789.123, 2.5e300, 5e-324, 1e-7, 100] as const
const Metadata = Schema.Union([
  Schema.Null,
  Schema.Struct({ value: Schema.Literals(NUMBERS) }),
  Schema.Struct({ value: Schema.Number }),
  Schema.Struct({ value: Schema.Literals(["12", "x"]) }),
  Schema.Struct({ currency: Schema.Literals(["EUR"]) })
])
const Event = Schema.Struct({
  site: Schema.Literals([1, 2, 0]),
  session: Schema.Literals(["s1", "s2", "s\u0000", "s\ufffd", "s\ud800", "s1|page|=/a", "s1|5|s1"]),
  url: Url,
  eventType: Schema.Literals(["pageview", "click", "conversion", "conv\u0000", "\ud800"]),
  view: Schema.Boolean,
  metadata: Metadata
})
const Events = Schema.Array(Event).check(Schema.isMinLength(1), Schema.isMaxLength(30))

const toItemEvent = (e: typeof Event.Type): ItemEvent => ({
  scope: { domainId: e.site === 0 ? null : e.site },
  row: {
    sessionId: e.session,
    pageUrl: e.url === null ? null : e.url.join(""),
    eventType: e.eventType,
    kind: e.view ? "view" : "event",
    metadata: e.metadata
  }
})

const dbLayer = Layer.unwrap(Effect.map(TestDb, (db) => Sql.layerUrl(db.url))).pipe(Layer.provideMerge(TestDb.layer))

layer(dbLayer, { timeout: "120 seconds" })("visit item rows", (it) => {
  it.effect.prop(
    "computed in Node = itemsOfEventsSql over the same events in PostgreSQL",
    { events: Events },
    ({ events }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const items = events.map(toItemEvent)
        // the arrays as the raw_events insert sends them (PgSinkStatements.rawParams)
        const params = [
          int4Array(items.map((e) => e.scope.domainId)),
          textArray(items.map((e) => noNul(e.row.sessionId))),
          textArray(items.map((e) => noNulOrNull(e.row.pageUrl))),
          textArray(items.map((e) => noNul(e.row.eventType))),
          textArray(items.map((e) => e.row.kind)),
          textArray(items.map((e) => metadataJson(e.row.metadata)))
        ]
        const fromSql = yield* sql.unsafe<Record<string, unknown>>(
          `SELECT site_id, session_id, dim, value, pageviews::int, events::int, conversions::int, revenue::text FROM (${
            itemsOfEventsSql(
              "unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(site_id, session_id, page_url, event_type, kind, metadata)"
            )
          }) i`,
          params
        )
        // Node's rows, their texts as PostgreSQL stores them (read back through the same driver)
        const rows = visitItemRows(items)
        const fromNode = yield* sql.unsafe<Record<string, unknown>>(
          `SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[], $7::int4[], $8::text[])
             AS t(site_id, session_id, dim, value, pageviews, events, conversions, revenue)`,
          itemParams(rows)
        )
        const canonical = (rs: ReadonlyArray<Record<string, unknown>>) =>
          rs.map((r) =>
            JSON.stringify([r["site_id"], r["session_id"], r["dim"], r["value"], r["pageviews"], r["events"], r["conversions"], r["revenue"]])
          ).sort()
        assert.deepStrictEqual(canonical(fromNode), canonical(fromSql))
        // one row per key in PostgreSQL too (the upsert cannot touch a row twice)
        const keys = new Set(fromNode.map((r) => JSON.stringify([r["site_id"], r["session_id"], r["dim"], r["value"]])))
        assert.strictEqual(keys.size, fromNode.length)
        // and the revenue text is numeric input PostgreSQL reads back unchanged
        const [check] = yield* sql.unsafe<{ same: boolean }>(
          `SELECT bool_and(r::numeric::text = r) AS same FROM unnest($1::text[]) AS r`,
          [textArray(rows.map((r) => decimalText(r.revenue)))]
        )
        assert.isTrue(check!.same !== false)
      }),
    { arbitrary: { runs: 300 } }
  )
})

describe("visit item rows, keys", () => {
  it("a session id or value holding the key's separators does not merge two rows", () => {
    const event = (sessionId: string, pageUrl: string): ItemEvent => ({
      scope: { domainId: 1 },
      row: { sessionId, pageUrl, eventType: "click", kind: "event", metadata: null }
    })
    const rows = visitItemRows([event("s1", "/a|page|=/p"), event("s1|page|=/a", "/p")])
    assert.deepStrictEqual(
      rows.map((r) => [r.sessionId, r.dim, r.value, r.events]),
      [["s1", "event_type", "click", 1], ["s1", "page", "/a|page|=/p", 1], ["s1|page|=/a", "event_type", "click", 1], [
        "s1|page|=/a",
        "page",
        "/p",
        1
      ]]
    )
  })
})
