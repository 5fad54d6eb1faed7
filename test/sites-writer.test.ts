/**
 * Sites on the writer's side (issue 13): the tenant lookup maps an alias to its site's id and
 * learns a new site within seconds of `spoolway sites add`; the writer publishes every change of
 * the registry to the primary Redis (also the ones a CLI run could not publish itself).
 */
import { randomUUID } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { hashKey, type SiteSnapshot } from "../src/domain/Site.ts"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { Domains } from "../src/layers/Domains.ts"
import { PrimaryRedis } from "../src/layers/PrimaryRedis.ts"
import { SitePublisher } from "../src/layers/SitePublisher.ts"
import { SiteStore } from "../src/layers/SiteStore.ts"
import * as Sql from "../src/layers/Sql.ts"
import { query, REDIS_URL, redis, TestDb } from "./writerSupport.ts"

const prefix = `test:sites-writer:${randomUUID().slice(0, 8)}`

const siteStoreLayer = SiteStore.layer.pipe(Layer.provideMerge(Layer.mergeAll(
  Layer.unwrap(Effect.map(TestDb, (db) => Sql.layerUrl(db.url))).pipe(Layer.provideMerge(TestDb.layer)),
  PrimaryRedis.layerUrl(REDIS_URL),
  AppConfig.layerWith({ streamPrefix: prefix, sitesRefreshMs: 50 })
)))

const TestLayer = Layer.mergeAll(
  Domains.layerWith({ sitesCheckEvery: Duration.millis(50) }),
  SitePublisher.layerStore
).pipe(Layer.provideMerge(siteStoreLayer))

/** The tenant table loaded once, then only by `refreshForUnknown` (its timers never fire under the TestClock). */
const OnlyOnDemandLayer = Domains.layerWith({ sitesCheckEvery: Duration.hours(1), refreshEvery: Duration.hours(1) })
  .pipe(Layer.provideMerge(siteStoreLayer))

const eventually = <A, R>(what: string, check: Effect.Effect<A | undefined, never, R>) =>
  check.pipe(
    Effect.flatMap((a) => (a === undefined ? Effect.fail(what) : Effect.succeed(a))),
    Effect.retry({ times: 100, schedule: undefined }),
    Effect.catch(() => Effect.die(new Error(`never: ${what}`)))
  )

const newSite = (hostname: string, aliases: ReadonlyArray<string>) => ({
  hostname,
  aliases,
  corp: "Writer Corp",
  timezone: "UTC",
  origins: null,
  writeKeyHash: hashKey(`sw_pub_${hostname}`),
  serverKeyHash: hashKey(`sw_sec_${hostname}`)
})

describe("sites, writer side", () => {
  it.live("an alias resolves to its site's id; a new site is found within seconds; the registry is published", () =>
    Effect.gen(function*() {
      const domains = yield* Domains
      const store = yield* SiteStore
      // nothing to publish before the first site
      yield* Effect.sleep("200 millis")
      assert.isNull(yield* redis((c) => c.get(sitesVersionKey(prefix))))

      const site = yield* store.add(newSite("writer.test", ["www.writer.test", "writer-alias.test"]))
      const tenant = yield* eventually(
        "the alias in the tenant lookup",
        Effect.sync(() => domains.resolve("writer-alias.test") ?? undefined).pipe(Effect.delay("20 millis"))
      )
      assert.deepStrictEqual(tenant, { domainId: site.id, corpId: site.corpId })
      assert.deepStrictEqual(domains.resolve("www.writer.test"), { domainId: site.id, corpId: site.corpId })
      assert.deepStrictEqual(domains.byId(site.id), { domainId: site.id, corpId: site.corpId })
      assert.isNull(domains.byId(site.id + 1000))

      const registry = yield* eventually(
        "the registry on the primary Redis",
        redis((c) => c.get(sitesKey(prefix))).pipe(Effect.map((json) => json ?? undefined), Effect.delay("20 millis"))
      )
      const snapshot = JSON.parse(registry) as SiteSnapshot
      assert.deepStrictEqual(snapshot.sites.map((s) => s.hostnames), [["writer.test", "writer-alias.test", "www.writer.test"]])

      // a change nobody published (a CLI run that could not reach Redis): the writer publishes it
      yield* store.remove(site.id)
      const version = yield* store.version
      yield* eventually(
        "the removal on the primary Redis",
        redis((c) => c.get(sitesVersionKey(prefix))).pipe(
          Effect.map((v) => (Number(v) === version ? true : undefined)),
          Effect.delay("20 millis")
        )
      )
      assert.deepStrictEqual(JSON.parse((yield* redis((c) => c.get(sitesKey(prefix))))!).sites, [])
      // removed, not purged: its hostnames still name it (events in flight keep their site)
      assert.deepStrictEqual(domains.resolve("writer-alias.test"), { domainId: site.id, corpId: site.corpId })
      yield* redis((c) => c.del(sitesKey(prefix), sitesVersionKey(prefix)))
      assert.isAbove((yield* query<{ n: number }>(`SELECT count(*)::int AS n FROM domains`))[0]!.n, 2)
    }).pipe(Effect.provide(TestLayer)), 30_000)

  // The tracker's first view of a site added a moment ago reached a writer whose table had been
  // loaded less than a second earlier, before the site existed: the reload was skipped and the
  // view was stored without its site (so with a session of its own).
  it.effect("a site added just after the table's last load is found by its first event's id; an unknown id is looked for at most once a second", () =>
    Effect.gen(function*() {
      const domains = yield* Domains
      const store = yield* SiteStore
      // the table was loaded when the layer was built (no time has passed since, on the TestClock)
      const site = yield* store.add(newSite("late.test", []))
      assert.isNull(domains.byId(site.id))
      yield* domains.refreshForUnknown([site.id])
      assert.deepStrictEqual(domains.byId(site.id), { domainId: site.id, corpId: site.corpId })

      // an id no load finds (a site of another database, say): looked for once …
      const missing = site.id + 1000
      yield* domains.refreshForUnknown([missing])
      const next = yield* store.add(newSite("next.test", []))
      // … and not again within the second (a reload would have found the site added since)
      yield* domains.refreshForUnknown([missing])
      assert.isNull(domains.byId(next.id))
      yield* TestClock.adjust("999 millis")
      yield* domains.refreshForUnknown([missing])
      assert.isNull(domains.byId(next.id))
      // a second later it is looked for again
      yield* TestClock.adjust("1 millis")
      yield* domains.refreshForUnknown([missing])
      assert.deepStrictEqual(domains.byId(next.id), { domainId: next.id, corpId: next.corpId })
      assert.isNull(domains.byId(missing))

      // a new id among ids looked for a moment ago: reloaded at once
      const third = yield* store.add(newSite("third.test", []))
      yield* domains.refreshForUnknown([missing, third.id])
      assert.deepStrictEqual(domains.byId(third.id), { domainId: third.id, corpId: third.corpId })
    }).pipe(Effect.provide(OnlyOnDemandLayer)), 30_000)
})
