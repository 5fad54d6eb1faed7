/**
 * WRITER_GROUP_BY_SITE (docs/scaling.md): each batch read is written as one transaction per
 * site — for a PostgreSQL distributed by site, one shard per transaction — and what is stored
 * is the same as without it. Plain PostgreSQL; the transactions are observed with the sink's
 * beforeCommit hook.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { groupBySite, siteKeyOfPayload } from "../src/domain/SiteGroups.ts"
import { cleanupKeys, domainFor, makeWriter, query, streamKeys, viewEnvelope, writerTestLayer, xadd } from "./writerSupport.ts"

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("WRITER_GROUP_BY_SITE", (it) => {
  /** 30 views over 3 sites, interleaved; the writer's transactions as lists of entry ids */
  const run = (name: string, groupBySite: boolean) =>
    Effect.gen(function*() {
      const keys = streamKeys(name)
      yield* cleanupKeys(keys.streamKey)
      const sites = [yield* domainFor(`${name}a`), yield* domainFor(`${name}b`), yield* domainFor(`${name}c`)]
      const envelopes = Array.from({ length: 30 }, (_, i) =>
        viewEnvelope({ edge: { headers: { origin: sites[i % 3]!.origin } }, payload: { sessionId: `${name}-${i}` } }))
      const ids = yield* xadd(keys.streamKey, envelopes)
      const siteOf = new Map(ids.map((id, i) => [id, sites[i % 3]!.domainId]))
      const transactions: Array<ReadonlyArray<string>> = []
      const writer = yield* makeWriter({
        ...keys,
        consumer: `${name}-w`,
        batchSize: 100,
        groupBySite,
        sessionLanes: false, // site groups alone (lanes: writer-session-lanes.test.ts)
        hooks: { beforeCommit: ({ entryIds }) => Effect.sync(() => void transactions.push(entryIds)) }
      })
      yield* writer.drain
      const stored = yield* query<{ n: number }>(
        `SELECT count(*)::int AS n FROM raw_events WHERE domain_id = ANY($1::int4[])`,
        [sites.map((s) => s.domainId)]
      )
      return { transactions, siteOf, stored: stored[0]!.n }
    })

  it.effect("on: one site per transaction, every event stored once", () =>
    Effect.gen(function*() {
      const { siteOf, stored, transactions } = yield* run("gbs-on", true)
      assert.strictEqual(stored, 30)
      assert.strictEqual(transactions.length, 3)
      for (const t of transactions) assert.strictEqual(new Set(t.map((id) => siteOf.get(id))).size, 1)
    }))

  it.effect("off (the default): one transaction for the batch, all sites in it, the same rows", () =>
    Effect.gen(function*() {
      const { stored, transactions } = yield* run("gbs-off", false)
      assert.strictEqual(stored, 30)
      assert.strictEqual(transactions.length, 1)
    }))

  it("the site key: edge.site, else the Origin's host, else the page URL's; unparseable → one group", () => {
    const entry = (payload: string, id: string) => ({ id, payload, deliveries: 1 })
    assert.strictEqual(siteKeyOfPayload(JSON.stringify({ edge: { site: 7, headers: { origin: "https://a.example" } } })), "#7")
    assert.strictEqual(siteKeyOfPayload(JSON.stringify({ edge: { headers: { origin: "https://A.example:8443" } } })), "a.example:8443")
    assert.strictEqual(siteKeyOfPayload(JSON.stringify({ edge: { headers: {} }, payload: { pageUrl: "https://b.example/x?y" } })), "b.example")
    assert.strictEqual(siteKeyOfPayload("not json"), "")
    const groups = groupBySite([
      entry(JSON.stringify({ edge: { site: 1, headers: {} } }), "1"),
      entry(JSON.stringify({ edge: { site: 2, headers: {} } }), "2"),
      entry("bad", "3"),
      entry(JSON.stringify({ edge: { site: 1, headers: {} } }), "4")
    ])
    assert.deepStrictEqual(groups.map((g) => g.map((e) => e.id)), [["1", "4"], ["2"], ["3"]])
  })
})
