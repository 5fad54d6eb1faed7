/**
 * Writer (issue 5): exactly-once transactional write, recovery, enrichment columns, rollups.
 * Real PostgreSQL (a fresh database for this file) and real Redis (unique stream keys).
 */
import { assert, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { hashIp, visitorIdDaily } from "../src/domain/Identity.ts"
import { Writer } from "../src/programs/Writer.ts"
import * as Stream from "../src/layers/StreamConsumer.ts"
import {
  cleanupKeys,
  domainFor,
  drainOverlappedThenSerial,
  eventEnvelope,
  holdFirstUntilAnotherOpens,
  GOOGLEBOT,
  IPHONE,
  makeWriter,
  metricsOf,
  metricValue,
  query,
  redis,
  streamKeys,
  viewEnvelope,
  withLateCopies,
  writerLayerWith,
  writerTestLayer,
  xadd
} from "./writerSupport.ts"

const pendingOf = (streamKey: string, group: string) =>
  redis(async (client) => {
    const reply = (await client.xpending(streamKey, group)) as Array<unknown>
    return Number(reply[0] ?? 0)
  })

const countRows = (statement: string, params: ReadonlyArray<unknown> = []) =>
  Effect.map(query<{ n: number }>(statement, params), (rows) => Number(rows[0]?.n ?? 0))

layer(writerTestLayer(), { excludeTestServices: true, timeout: "60 seconds" })("writer", (it) => {
  it.effect("the same envelope delivered 3 times (and drained again later) is stored once and counted once", () =>
    Effect.gen(function*() {
      const keys = streamKeys("dup")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("dup")
      const envelope = viewEnvelope({
        edge: { headers: { origin: site.origin }, ua: IPHONE },
        payload: {
          sessionId: "dup-session",
          userId: "u-1",
          attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "spring" },
          clientDevice: { screenWidth: 390, screenHeight: 844, viewportWidth: 390, viewportHeight: 700, touchPoints: 5 }
        }
      })
      yield* xadd(keys.streamKey, [envelope, envelope, envelope])
      const writer = yield* makeWriter({ ...keys, consumer: "dup-a" })
      yield* writer.drain
      // the spool drain forwards the same envelope once more, later
      yield* xadd(keys.streamKey, [envelope])
      yield* writer.drain

      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE id = $1::uuid`, [envelope.eventId]), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", granularity: "hour" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "unique_visitors" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "events", dimension: "event_type", dimensionValue: "pageview" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", dimension: "source", dimensionValue: "email" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", dimension: "utm_campaign", dimensionValue: "spring" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", dimension: "device_type", dimensionValue: "mobile" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", dimension: "page_path", dimensionValue: "/pricing" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews", dimension: "country", dimensionValue: "GB" }), 1)
      const [daily] = yield* query<{ pageviews: string; sessions: string; unique_visitors: string; events: string }>(
        `SELECT pageviews::text, sessions::text, unique_visitors::text, events::text FROM daily_metrics WHERE domain_id = $1::int4`,
        [site.domainId]
      )
      assert.deepStrictEqual(daily, { pageviews: "1", sessions: "1", unique_visitors: "1", events: "1" })

      const [fp] = yield* query<Record<string, unknown>>(
        `SELECT user_id, domain_id, corp_id, device_type, browser, os, traffic_source, utm_source, utm_medium, utm_campaign,
                viewport_width, screen_width, touch_points, country, city, landing_page
         FROM session_fingerprints WHERE session_id = 'dup-session'`
      )
      assert.deepStrictEqual(fp, {
        user_id: "u-1",
        domain_id: site.domainId,
        corp_id: site.corpId,
        device_type: "mobile",
        browser: "Safari",
        os: "iOS",
        traffic_source: "email",
        utm_source: "newsletter",
        utm_medium: "email",
        utm_campaign: "spring",
        viewport_width: 390,
        screen_width: 390,
        touch_points: 5,
        country: "GB",
        city: "London",
        landing_page: "https://shop.example.com/pricing?plan=pro"
      })

      const stats = yield* writer.snapshot
      assert.strictEqual(stats.written, 1)
      assert.strictEqual(stats.duplicates, 3)
      assert.strictEqual(stats.poison, 0)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
      assert.strictEqual(yield* redis((c) => c.xlen(keys.streamKey)), 0)
    }))

  it.effect("a crash after COMMIT and before XACK: the redelivery changes nothing", () =>
    Effect.gen(function*() {
      const keys = streamKeys("crash")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("crash")
      const envelopes = [1, 2, 3].map((i) =>
        viewEnvelope({ edge: { headers: { origin: site.origin } }, payload: { sessionId: `crash-${i}` } })
      )
      yield* xadd(keys.streamKey, [...envelopes, eventEnvelope({ edge: { headers: { origin: site.origin } } })])

      const crashing = yield* makeWriter({
        ...keys,
        consumer: "crash-a",
        sessionLanes: false, // the read as one transaction (one commit to crash after)
        hooks: { afterCommit: () => Effect.interrupt }
      })
      const exit = yield* Effect.exit(crashing.step)
      assert.isTrue(Exit.hasInterrupts(exit))
      // committed, but still pending
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 4)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 4)
      const client = yield* redis(async (c) => c)
      const status = yield* Stream.streamStatus(client, keys.streamKey, keys.group).pipe(Effect.orDie)
      assert.deepStrictEqual(status, { length: 4, pending: 4, lag: 0, consumers: 1, group: true })
      const before = yield* metricsOf(site.domainId)
      assert.strictEqual(before["pageviews|day|total|∅"], 3)

      // another writer reclaims the idle entries
      const recovering = yield* makeWriter({ ...keys, consumer: "crash-b", claimIdleMs: 0 })
      yield* recovering.drain
      assert.deepStrictEqual(yield* metricsOf(site.domainId), before)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 4)
      const stats = yield* recovering.snapshot
      assert.strictEqual(stats.written, 0)
      assert.strictEqual(stats.duplicates, 4)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
      assert.strictEqual(yield* redis((c) => c.xlen(keys.streamKey)), 0)
      const after = yield* Stream.streamStatus(client, keys.streamKey, keys.group).pipe(Effect.orDie)
      assert.deepStrictEqual({ length: after.length, pending: after.pending, lag: after.lag }, { length: 0, pending: 0, lag: 0 })
    }))

  it.effect("a failure inside the transaction: nothing is visible, entries stay pending, the retry stores once", () =>
    Effect.gen(function*() {
      const keys = streamKeys("txfail")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("txfail")
      const sql = yield* SqlClient.SqlClient
      const envelopes = [1, 2, 3, 4, 5].map((i) =>
        viewEnvelope({ edge: { headers: { origin: site.origin } }, payload: { sessionId: `tx-${i}` } })
      )
      yield* xadd(keys.streamKey, envelopes)
      const secondAttempt = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const writer = yield* makeWriter({
        ...keys,
        consumer: "tx-a",
        sessionLanes: false, // the read as one transaction (attempts counted per transaction)
        retryBaseMs: 20,
        hooks: {
          beforeCommit: ({ attempt }) =>
            attempt === 1
              ? sql`SELECT 1 / 0`.pipe(Effect.asVoid) // a failing statement inside the transaction
              : Deferred.succeed(secondAttempt, undefined).pipe(Effect.andThen(Deferred.await(release)))
        }
      })
      const fiber = yield* Effect.forkChild(writer.drain)
      yield* Deferred.await(secondAttempt)
      // attempt 1 rolled back; attempt 2 has run its statements but not committed
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 0)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM session_fingerprints WHERE session_id LIKE 'tx-%'`), 0)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM aggregated_metrics WHERE domain_id = $1::int4`, [site.domainId]), 0)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 5)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)

      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 5)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 5)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 5)
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.retries, 1)
      assert.strictEqual(stats.written, 5)
      assert.strictEqual(stats.duplicates, 0)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))

  it.effect("the transaction's connection dies (ROLLBACK fails too): the same batch is retried in place, stored once, the loop keeps running", () =>
    Effect.gen(function*() {
      const keys = streamKeys("connlost")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("connlost")
      const sql = yield* SqlClient.SqlClient
      const envelopes = [1, 2, 3, 4].map((i) =>
        viewEnvelope({ edge: { headers: { origin: site.origin } }, payload: { sessionId: `cl-${i}` } })
      )
      yield* xadd(keys.streamKey, envelopes)
      const writer = yield* makeWriter({
        ...keys,
        consumer: "connlost-a",
        sessionLanes: false, // the read as one transaction (attempts counted per transaction)
        retryBaseMs: 20,
        hooks: {
          // attempt 1: the backend of this very transaction goes away (as in a PostgreSQL
          // shutdown or crash), so the statement fails and the driver's ROLLBACK fails as well
          beforeCommit: ({ attempt }) =>
            attempt === 1 ? sql`SELECT pg_terminate_backend(pg_backend_pid())`.pipe(Effect.asVoid) : Effect.void
        }
      })
      // drain ends with a defect if the failed ROLLBACK escapes the retry (the loop would restart)
      const exit = yield* Effect.exit(writer.drain)
      assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? String(exit.cause) : "")

      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 4)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 4)
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.retries, 1)
      assert.strictEqual(stats.written, 4)
      assert.strictEqual(stats.duplicates, 0)
      assert.match(stats.lastError ?? "", /terminat|connection/i)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))

  it.effect("maintenance removes dead writers' consumers that hold nothing, and keeps those that still hold entries", () =>
    Effect.gen(function*() {
      const keys = streamKeys("prune")
      yield* cleanupKeys(keys.streamKey)
      const writer = yield* makeWriter({ ...keys, consumer: "prune-live", pruneConsumersIdleMs: 50 })
      yield* xadd(keys.streamKey, [eventEnvelope()])
      yield* redis((c) => c.xreadgroup("GROUP", keys.group, "ghost-empty", "COUNT", 0, "STREAMS", keys.streamKey, "0"))
      // a second dead writer that still holds the entry (pending 1)
      yield* redis((c) => c.xreadgroup("GROUP", keys.group, "ghost-holding", "COUNT", 1, "STREAMS", keys.streamKey, ">"))
      yield* Effect.sleep("120 millis")
      yield* writer.maintain
      const consumers = yield* redis((c) => c.xinfo("CONSUMERS", keys.streamKey, keys.group) as Promise<Array<Array<unknown>>>)
      const names = consumers.map((fields) => String(fields[1]))
      assert.notInclude(names, "ghost-empty")
      assert.include(names, "ghost-holding")
    }))

  it.effect("poison entries go to ingest_failures and are acknowledged; the rest of the batch is stored", () =>
    Effect.gen(function*() {
      const keys = streamKeys("poison")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("poison")
      const good1 = viewEnvelope({ edge: { headers: { origin: site.origin } } })
      const good2 = eventEnvelope({ edge: { headers: { origin: site.origin } } })
      const wrongVersion = JSON.stringify({ ...viewEnvelope(), v: 2 })
      const ids = yield* xadd(keys.streamKey, [good1, "{not json", good2, wrongVersion])
      const writer = yield* makeWriter({ ...keys, consumer: "poison-a" })
      yield* writer.drain

      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 2)
      const failures = yield* query<{ entry_id: string; payload: string; error: string; attempts: number; stream_key: string }>(
        `SELECT entry_id, payload, error, attempts, stream_key FROM ingest_failures WHERE stream_key = $1 ORDER BY entry_id`,
        [keys.streamKey]
      )
      assert.deepStrictEqual(failures.map((f) => f.entry_id), [ids[1], ids[3]])
      assert.strictEqual(failures[0]!.payload, "{not json")
      assert.strictEqual(failures[1]!.payload, wrongVersion)
      assert.match(failures[0]!.error, /undecodable/)
      assert.strictEqual(failures[0]!.attempts, 1)
      assert.strictEqual((yield* writer.snapshot).poison, 2)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
      assert.strictEqual(yield* redis((c) => c.xlen(keys.streamKey)), 0)
    }))

  it.effect("an entry delivered more than maxDeliveries times is poison, kept with its attempts", () =>
    Effect.gen(function*() {
      const keys = streamKeys("redeliver")
      yield* cleanupKeys(keys.streamKey)
      const envelope = viewEnvelope()
      const [id] = yield* xadd(keys.streamKey, [envelope])
      const handles = {
        key: keys.streamKey,
        group: keys.group,
        consumer: "ghost",
        client: (yield* redis(async (c) => c)),
        blocking: (yield* redis(async (c) => c))
      }
      yield* Stream.ensureGroup(handles).pipe(Effect.orDie)
      yield* redis((c) => c.xreadgroup("GROUP", keys.group, "ghost", "COUNT", 10, "STREAMS", keys.streamKey, ">"))
      for (let i = 0; i < 5; i++) {
        yield* redis((c) => c.xclaim(keys.streamKey, keys.group, "ghost", 0, id!))
      }
      const writer = yield* makeWriter({ ...keys, consumer: "redeliver-a", claimIdleMs: 0, maxDeliveries: 5 })
      yield* writer.drain
      const [failure] = yield* query<{ attempts: number; error: string; event_id: string }>(
        `SELECT attempts, error, event_id FROM ingest_failures WHERE stream_key = $1`,
        [keys.streamKey]
      )
      assert.strictEqual(failure!.attempts, 7)
      assert.strictEqual(failure!.event_id, envelope.eventId)
      assert.match(failure!.error, /delivered 7 times/)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE id = $1::uuid`, [envelope.eventId]), 0)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))

  it.effect("an event received 23:59:59 UTC yesterday and written today uses yesterday's salt", () =>
    Effect.gen(function*() {
      const keys = streamKeys("salt")
      yield* cleanupKeys(keys.streamKey)
      const today = new Date().toISOString().slice(0, 10)
      const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
      const envelope = viewEnvelope({ receivedAt: `${yesterday}T23:59:59.000Z`, payload: { sessionId: "salt-session" } })
      yield* xadd(keys.streamKey, [envelope])
      const writer = yield* makeWriter({ ...keys, consumer: "salt-a" })
      yield* writer.drain

      const salts = yield* query<{ day: string; salt: Uint8Array }>(
        `SELECT day::text AS day, salt FROM visitor_salts WHERE day IN ($1::date, $2::date)`,
        [yesterday, today]
      )
      const yesterdaySalt = salts.find((s) => s.day === yesterday)?.salt
      assert.isDefined(yesterdaySalt)
      const [row] = yield* query<{ visitor_id_daily: Uint8Array; received_at: Date }>(
        `SELECT visitor_id_daily, received_at FROM raw_events WHERE id = $1::uuid`,
        [envelope.eventId]
      )
      const expected = visitorIdDaily(yesterdaySalt!, envelope.edge.ip, envelope.edge.ua, envelope.edge.lang)
      assert.deepStrictEqual(Array.from(row!.visitor_id_daily), Array.from(expected))
      const [fp] = yield* query<{ ip_hash: string }>(`SELECT ip_hash FROM session_fingerprints WHERE session_id = 'salt-session'`)
      assert.strictEqual(fp!.ip_hash, hashIp(yesterdaySalt!, envelope.edge.ip))
      const todaySalt = salts.find((s) => s.day === today)?.salt
      if (todaySalt !== undefined) {
        assert.notDeepEqual(Array.from(row!.visitor_id_daily), Array.from(visitorIdDaily(todaySalt, envelope.edge.ip, envelope.edge.ua, envelope.edge.lang)))
      }
      assert.strictEqual(row!.received_at.toISOString(), `${yesterday}T23:59:59.000Z`)
    }))

  it.effect("two writers racing on first views of the same session: one fingerprint, no error", () =>
    Effect.gen(function*() {
      const keys = streamKeys("race")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("race")
      const t0 = Date.now() - 5_000
      const first = viewEnvelope({
        receivedAt: new Date(t0).toISOString(),
        edge: { headers: { origin: site.origin } },
        payload: { sessionId: "race-session", attribution: { utmSource: "google", utmMedium: "cpc" }, clientDevice: { viewportWidth: 1200 } }
      })
      const second = viewEnvelope({
        receivedAt: new Date(t0 + 1000).toISOString(),
        edge: { headers: { origin: site.origin } },
        payload: { sessionId: "race-session", userId: "late-user", pageUrl: "https://x.example/second", clientDevice: { viewportWidth: 800 } }
      })
      yield* xadd(keys.streamKey, [first, second])
      const gate = yield* Deferred.make<void>()
      const a = yield* makeWriter({
        ...keys,
        consumer: "race-a",
        batchSize: 1,
        // hold A's transaction open (fingerprint inserted, not committed) so B collides with it
        hooks: { beforeCommit: () => Deferred.succeed(gate, undefined).pipe(Effect.andThen(Effect.sleep("300 millis"))) }
      })
      const b = yield* makeWriter({ ...keys, consumer: "race-b", batchSize: 1 })
      const fa = yield* Effect.forkChild(a.step)
      yield* Deferred.await(gate)
      yield* b.step
      yield* Fiber.join(fa)

      const fps = yield* query<{ user_id: string | null; traffic_source: string; viewport_width: number; landing_page: string }>(
        `SELECT user_id, traffic_source, viewport_width, landing_page FROM session_fingerprints WHERE session_id = 'race-session'`
      )
      assert.strictEqual(fps.length, 1)
      assert.deepStrictEqual(fps[0], {
        user_id: "late-user",
        traffic_source: "paid",
        viewport_width: 800,
        landing_page: "https://shop.example.com/pricing?plan=pro"
      })
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 2)
      assert.strictEqual((yield* a.snapshot).retries + (yield* b.snapshot).retries, 0)
      assert.strictEqual((yield* a.snapshot).lastError, null)
      assert.strictEqual((yield* b.snapshot).lastError, null)
    }))

  it.effect("three transactions in flight: redeliveries across overlapping batches are stored and counted once, as by a one-at-a-time writer", () =>
    Effect.gen(function*() {
      const overlapped = streamKeys("overlap")
      const serial = streamKeys("serial")
      yield* cleanupKeys(overlapped.streamKey, serial.streamKey)
      const siteA = yield* domainFor("overlap")
      const siteB = yield* domainFor("serial")
      const t0 = Date.now() - 60_000
      // 24 sessions of 4 views (viewport and user change on later views), 8 visitors (IP), 2 bot
      // sessions, conversions; every entry is delivered twice, the copy 1–9 entries later
      const workload = (site: { readonly origin: string }, tag: string) => {
        const list: Array<ReturnType<typeof viewEnvelope>> = []
        for (let i = 0; i < 96; i++) {
          const session = i % 24
          const bot = session >= 22
          const at = new Date(t0 + ((i * 7919) % 50_000)).toISOString()
          list.push(viewEnvelope({
            receivedAt: at,
            edge: { headers: { origin: site.origin }, ip: `81.2.69.${160 + (session % 8)}`, ...(bot ? { ua: GOOGLEBOT } : {}) },
            payload: {
              sessionId: `${tag}-s${session}`,
              timestamp: Date.parse(at),
              pageUrl: `https://x.example/p${i % 5}${session % 3 === 0 ? "?utm_source=news&utm_campaign=c" + (i % 2) : ""}`,
              ...(i >= 48 && session % 2 === 0 ? { userId: `u-${session}` } : {}),
              clientDevice: { viewportWidth: 800 + (i % 4) * 100 }
            }
          }))
          if (i % 6 === 0) {
            list.push(eventEnvelope({
              kind: "conversion",
              receivedAt: at,
              edge: { headers: { origin: site.origin } },
              payload: { eventType: "conversion", sessionId: `${tag}-s${session}`, metadata: { conversionType: "signup", value: i } }
            }))
          }
        }
        return { list, stream: withLateCopies(list) }
      }
      const a = workload(siteA, `ovl-${siteA.domainId}`)
      const b = workload(siteB, `ser-${siteB.domainId}`)
      yield* xadd(overlapped.streamKey, a.stream)
      yield* xadd(serial.streamKey, b.stream)

      // the first transaction waits (before COMMIT) until another one of this writer is open
      const [writerA, writerB] = yield* drainOverlappedThenSerial("", overlapped, serial)

      for (const [writer, site, work] of [[writerA, siteA, a], [writerB, siteB, b]] as const) {
        const stats = yield* writer.snapshot
        assert.strictEqual(stats.written, work.list.length)
        assert.strictEqual(stats.duplicates, work.list.length)
        assert.strictEqual(stats.retries, 0) // no deadlock, no lock timeout
        assert.strictEqual(stats.lastError, null)
        assert.strictEqual(
          yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]),
          work.list.length
        )
        assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 88) // 96 − 8 bot views
        assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 22)
        assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "unique_visitors" }), 8)
        assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "conversions" }), 16)
        assert.strictEqual(yield* pendingOf(writer.options.streamKey, writer.options.group), 0)
      }
      // every rollup and every fingerprint as the one-at-a-time writer left them
      assert.deepStrictEqual(yield* metricsOf(siteA.domainId), yield* metricsOf(siteB.domainId))
      const fingerprints = (prefix: string) =>
        Effect.map(
          query<Record<string, unknown>>(
            `SELECT * FROM session_fingerprints WHERE session_id LIKE $1 || '-%' ORDER BY session_id`,
            [prefix]
          ),
          (rows) =>
            // prev_rollup_key is what the row's last update took over (it depends on the batches);
            // rollup_key names the site: compared without it
            rows.map(({ corp_id: _c, created_at: _t, domain_id: _d, prev_rollup_key: _p, rollup_key, session_id, updated_at: _u, ...rest }) => {
              const [at, _corp, _domain, ...key] = JSON.parse(String(rollup_key)) as Array<unknown>
              return { ...rest, counted: [at, ...key], session: String(session_id).slice(prefix.length) }
            })
        )
      const fpA = yield* fingerprints(`ovl-${siteA.domainId}`)
      assert.strictEqual(fpA.length, 24)
      assert.deepStrictEqual(fpA, yield* fingerprints(`ser-${siteB.domainId}`))
    }))

  it.effect("bots are stored with is_bot and absent from human rollups", () =>
    Effect.gen(function*() {
      const keys = streamKeys("bots")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("bots")
      const bot = viewEnvelope({ edge: { ua: GOOGLEBOT, headers: { origin: site.origin } } })
      const human = viewEnvelope({ edge: { headers: { origin: site.origin } } })
      yield* xadd(keys.streamKey, [bot, human])
      const writer = yield* makeWriter({ ...keys, consumer: "bots-a" })
      yield* writer.drain

      const [row] = yield* query<{ is_bot: boolean; device_type: string }>(
        `SELECT is_bot, device_type FROM raw_events WHERE id = $1::uuid`,
        [bot.eventId]
      )
      assert.deepStrictEqual(row, { is_bot: true, device_type: "bot" })
      const metrics = yield* metricsOf(site.domainId)
      assert.strictEqual(metrics["pageviews|day|total|∅"], 1)
      assert.strictEqual(metrics["sessions|day|total|∅"], 1)
      assert.strictEqual(metrics["unique_visitors|day|total|∅"], 1)
      assert.strictEqual(metrics["events|day|total|∅"], 1)
      assert.strictEqual(metrics["bot_events|day|total|∅"], 1)
      assert.strictEqual(metrics["bot_events|hour|total|∅"], 1)
      assert.isUndefined(metrics["pageviews|day|device_type|bot"])
      assert.isUndefined(metrics["pageviews|day|browser|Googlebot"])
      const [daily] = yield* query<{ pageviews: string; bot_events: string; events: string }>(
        `SELECT pageviews::text, bot_events::text, events::text FROM daily_metrics WHERE domain_id = $1::int4`,
        [site.domainId]
      )
      assert.deepStrictEqual(daily, { pageviews: "1", bot_events: "1", events: "1" })
    }))

  it.effect("receivedAt is persisted from the envelope (never now()); timestamp is the client's when finite", () =>
    Effect.gen(function*() {
      const keys = streamKeys("recv")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("recv")
      const withClientTime = eventEnvelope({
        receivedAt: "2026-03-04T05:06:07.891Z",
        edge: { headers: { origin: site.origin } },
        payload: { timestamp: Date.parse("2026-03-04T05:00:00.000Z"), sessionId: "recv-1" }
      })
      const withoutClientTime = viewEnvelope({
        receivedAt: "2025-12-31T23:59:59.999Z",
        edge: { headers: { origin: site.origin } },
        payload: { sessionId: "recv-2" }
      })
      yield* xadd(keys.streamKey, [withClientTime, withoutClientTime])
      const writer = yield* makeWriter({ ...keys, consumer: "recv-a" })
      yield* writer.drain
      const rows = yield* query<{ id: string; received_at: Date; timestamp: Date }>(
        `SELECT id::text AS id, received_at, "timestamp" FROM raw_events WHERE domain_id = $1::int4`,
        [site.domainId]
      )
      const byId = new Map(rows.map((r) => [r.id, r]))
      assert.strictEqual(byId.get(withClientTime.eventId)!.received_at.toISOString(), "2026-03-04T05:06:07.891Z")
      assert.strictEqual(byId.get(withClientTime.eventId)!.timestamp.toISOString(), "2026-03-04T05:00:00.000Z")
      assert.strictEqual(byId.get(withoutClientTime.eventId)!.received_at.toISOString(), "2025-12-31T23:59:59.999Z")
      assert.strictEqual(byId.get(withoutClientTime.eventId)!.timestamp.toISOString(), "2025-12-31T23:59:59.999Z")
      // rollup buckets follow receivedAt
      const [bucket] = yield* query<{ b: Date }>(
        `SELECT bucket_start AS b FROM aggregated_metrics
         WHERE domain_id = $1::int4 AND metric = 'pageviews' AND granularity = 'hour' AND dimension = 'total'`,
        [site.domainId]
      )
      assert.strictEqual(bucket!.b.toISOString(), "2025-12-31T23:00:00.000Z")
    }))

  it.effect("non-view events take the tenant of their session; conversions are counted with their value", () =>
    Effect.gen(function*() {
      const keys = streamKeys("conv")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("conv")
      const view = viewEnvelope({ edge: { headers: { origin: site.origin } }, payload: { sessionId: "conv-session" } })
      const conversion = eventEnvelope({
        kind: "conversion",
        edge: { headers: {} },
        payload: {
          eventType: "conversion",
          sessionId: "conv-session",
          metadata: { conversionType: "purchase", value: 19.99, currency: "EUR" }
        }
      })
      yield* xadd(keys.streamKey, [view])
      const writer = yield* makeWriter({ ...keys, consumer: "conv-a" })
      yield* writer.drain
      yield* xadd(keys.streamKey, [conversion, conversion])
      yield* writer.drain
      const [row] = yield* query<{ domain_id: number; metadata: unknown }>(
        `SELECT domain_id, metadata FROM raw_events WHERE id = $1::uuid`,
        [conversion.eventId]
      )
      assert.strictEqual(row!.domain_id, site.domainId)
      assert.deepStrictEqual(row!.metadata, { conversionType: "purchase", value: 19.99, currency: "EUR" })
      const metrics = yield* metricsOf(site.domainId)
      assert.strictEqual(metrics["conversions|day|total|∅"], 1)
      assert.strictEqual(metrics["conversions|day|conversion_type|purchase"], 1)
      assert.strictEqual(metrics["conversion_value|day|total|∅"], 19.99)
      assert.strictEqual(metrics["conversion_value|day|currency|EUR"], 19.99)
      assert.strictEqual(metrics["events|day|total|∅"], 2)
    }))

  it.effect("a header-less event right behind its session's first view, while that view's transaction is still open, takes the view's tenant", () =>
    Effect.gen(function*() {
      const keys = streamKeys("inflight-scope")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("inflight-scope")
      const view = viewEnvelope({ edge: { headers: { origin: site.origin } }, payload: { sessionId: `ifs-${site.domainId}` } })
      const event = eventEnvelope({ edge: { headers: {} }, payload: { eventType: "server-side", sessionId: `ifs-${site.domainId}` } })
      yield* xadd(keys.streamKey, [view, event])
      // the view's transaction stays open (before COMMIT) until the event's has started and inserted
      const hold = yield* holdFirstUntilAnotherOpens(200)
      // without session lanes (with them one writer never has a session in two transactions at
      // once; several writers do)
      const writer = yield* makeWriter({
        ...keys,
        consumer: "ifs-a",
        batchSize: 1,
        transactions: 2,
        sessionLanes: false,
        hooks: { beforeCommit: () => hold.hook }
      })
      yield* writer.drain
      assert.isTrue(hold.overlapped(), "the two transactions did not overlap")
      const [row] = yield* query<{ domain_id: number | null; corp_id: number | null }>(
        `SELECT domain_id, corp_id FROM raw_events WHERE id = $1::uuid`,
        [event.eventId]
      )
      assert.deepStrictEqual(row, { domain_id: site.domainId, corp_id: site.corpId })
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "events" }), 2)
    }))

  it.effect("Writer.layer runs in the background and stops only between batches (the in-flight batch commits and acks)", () =>
    Effect.gen(function*() {
      const keys = streamKeys("layer")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("layer")
      const started = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        writerLayerWith({
          ...keys,
          consumer: "layer-a",
          maintenance: false,
          hooks: { beforeCommit: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep("300 millis"))) }
        }),
        scope
      )
      const writer = Context.get(context, Writer)
      // one MULTI so the three entries arrive in one read
      yield* redis((c) => {
        const tx = c.multi()
        for (let i = 0; i < 3; i++) {
          tx.xadd(keys.streamKey, "*", "e", JSON.stringify(viewEnvelope({ edge: { headers: { origin: site.origin } } })))
        }
        return tx.exec()
      })
      yield* Deferred.await(started)
      // stop while the batch is inside its transaction
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 3)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
      const stats = yield* writer.snapshot
      assert.strictEqual(stats.written, 3)
      assert.isNotNull(stats.lastWriteAt)
      // the consumer left the group on the way out
      const consumers = yield* redis((c) => c.xinfo("CONSUMERS", keys.streamKey, keys.group) as Promise<Array<unknown>>)
      assert.strictEqual(consumers.length, 0)
    }))

  it.effect("stopping with two transactions in flight: both commit, the read-ahead commits, the rest is released and stored once by the next writer", () =>
    Effect.gen(function*() {
      const keys = streamKeys("stop2")
      yield* cleanupKeys(keys.streamKey)
      // one site per entry: transactions on the same site's rollup rows would wait for each other
      const sites = yield* Effect.forEach(Array.from({ length: 8 }), () => domainFor("stop2"))
      const envelopes = sites.map((site) => viewEnvelope({ edge: { headers: { origin: site.origin } } }))
      const domainIds = sites.map((site) => site.domainId)
      yield* xadd(keys.streamKey, envelopes)
      const bothInside = yield* Deferred.make<void>()
      // the first transaction is released last: the stop must wait for it as well
      const releaseFirst = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      let open = 0
      let maxOpen = 0
      let entered = 0
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        writerLayerWith({
          ...keys,
          consumer: "stop2-a",
          batchSize: 1,
          transactions: 2,
          sessionLanes: false, // two transactions in flight whatever lanes the sessions fall in
          maintenance: false,
          hooks: {
            beforeCommit: () =>
              Effect.gen(function*() {
                maxOpen = Math.max(maxOpen, ++open)
                const first = ++entered === 1
                if (open === 2) yield* Deferred.succeed(bothInside, undefined)
                yield* Deferred.await(first ? releaseFirst : release)
                open--
              })
          }
        }),
        scope
      )
      const writer = Context.get(context, Writer)
      // two transactions wait before their COMMIT; the third entry is read (pending for this
      // consumer) and given time to be prepared: the read-ahead batch
      yield* Deferred.await(bothInside)
      while ((yield* pendingOf(keys.streamKey, keys.group)) < 3) yield* Effect.sleep("10 millis")
      yield* Effect.sleep("300 millis")
      // stop now; the transactions finish once released
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.sleep("100 millis")
      yield* Deferred.succeed(release, undefined)
      yield* Effect.sleep("400 millis")
      yield* Deferred.succeed(releaseFirst, undefined)
      yield* Fiber.join(closing)
      const stored = yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = ANY($1::int4[])`, [domainIds])
      const stats = yield* writer.snapshot
      assert.strictEqual(maxOpen, 2)
      // the two in flight and the batch read ahead meanwhile; nothing more was read
      assert.strictEqual(stored, 3)
      assert.strictEqual(stats.written, stored)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
      assert.strictEqual(yield* redis((c) => c.xlen(keys.streamKey)), envelopes.length - stored)

      const next = yield* makeWriter({ ...keys, consumer: "stop2-b" })
      yield* next.drain
      assert.strictEqual((yield* next.snapshot).duplicates, 0)
      assert.strictEqual(
        yield* countRows(`SELECT count(DISTINCT id)::int AS n FROM raw_events WHERE domain_id = ANY($1::int4[])`, [domainIds]),
        envelopes.length
      )
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = ANY($1::int4[])`, [domainIds]), envelopes.length)
      for (const site of sites) assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 1)
    }))

  it.effect("later views only update the viewport and fill an empty user_id; an earlier view takes over the first touch", () =>
    Effect.gen(function*() {
      const keys = streamKeys("fp")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("fp")
      const t0 = Date.parse("2026-05-01T10:00:00.000Z")
      const at = (s: number) => new Date(t0 + s * 1000).toISOString()
      const view = (s: number, payload: Record<string, unknown>) =>
        viewEnvelope({
          receivedAt: at(s),
          edge: { headers: { origin: site.origin } },
          payload: { sessionId: "fp-session", ...payload }
        })
      const fingerprint = query<Record<string, unknown>>(
        `SELECT user_id, viewport_width, traffic_source, utm_campaign, landing_page, first_seen_at
         FROM session_fingerprints WHERE session_id = 'fp-session'`
      )
      const writer = yield* makeWriter({ ...keys, consumer: "fp-a" })
      const send = (envelope: ReturnType<typeof view>) => Effect.andThen(xadd(keys.streamKey, [envelope]), writer.drain)

      yield* send(view(10, { pageUrl: "https://x.example/a", attribution: { utmSource: "newsletter", utmMedium: "email", utmCampaign: "c1" }, clientDevice: { viewportWidth: 1200 } }))
      // later view: new viewport, a user id, other attribution → only viewport + user change
      yield* send(view(20, { pageUrl: "https://x.example/b", userId: "u-9", attribution: { utmSource: "google", utmMedium: "cpc", utmCampaign: "c2" }, clientDevice: { viewportWidth: 800 } }))
      assert.deepStrictEqual((yield* fingerprint)[0], {
        user_id: "u-9",
        viewport_width: 800,
        traffic_source: "email",
        utm_campaign: "c1",
        landing_page: "https://x.example/a",
        first_seen_at: new Date(at(10))
      })
      // a still later view repeating the viewport, and an older one with another viewport: no change
      yield* send(view(30, { pageUrl: "https://x.example/c", userId: "u-other", clientDevice: { viewportWidth: 800 } }))
      yield* send(view(15, { pageUrl: "https://x.example/d", clientDevice: { viewportWidth: 640 } }))
      assert.strictEqual((yield* fingerprint)[0]!.viewport_width, 800)
      assert.strictEqual((yield* fingerprint)[0]!.user_id, "u-9")
      // a view received before the first one (a late spool drain) becomes the first touch
      yield* send(view(5, { pageUrl: "https://x.example/z", attribution: { utmSource: "facebook", utmMedium: "social", utmCampaign: "c0" } }))
      assert.deepStrictEqual((yield* fingerprint)[0], {
        user_id: "u-9",
        viewport_width: 800,
        traffic_source: "social",
        utm_campaign: "c0",
        landing_page: "https://x.example/z",
        first_seen_at: new Date(at(5))
      })
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 5)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "unique_visitors" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "unique_visitors", granularity: "hour" }), 1)
    }))

  it.effect("a session's count follows its first touch: an earlier view arriving later moves it to its own hour, day and landing values, once", () =>
    Effect.gen(function*() {
      const keys = streamKeys("fpmove")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("fpmove")
      const view = (receivedAt: string, path: string, attribution: Record<string, string>) =>
        viewEnvelope({
          receivedAt,
          edge: { headers: { origin: site.origin } },
          payload: { sessionId: `fpmove-${site.domainId}`, pageUrl: `${site.origin}${path}`, attribution }
        })
      const late = view("2026-05-02T00:10:00.000Z", "/b", { utmSource: "google", utmMedium: "cpc" })
      const early = view("2026-05-01T23:50:00.000Z", "/a", { utmSource: "newsletter", utmMedium: "email" })
      const sessionsBy = (dimension: string, granularity: "hour" | "day") =>
        query<{ bucket: string; value_of: string | null; n: number }>(
          `SELECT to_char(bucket_start AT TIME ZONE 'UTC', 'MM-DD HH24') AS bucket, dimension_value AS value_of, value::int AS n
           FROM aggregated_metrics WHERE domain_id = $1 AND metric = 'sessions' AND granularity = $2 AND dimension = $3 AND value <> 0
           ORDER BY 1, 2`,
          [site.domainId, granularity, dimension]
        )
      const daily = query<{ day: string; sessions: number }>(
        `SELECT to_char(day, 'MM-DD') AS day, sessions::int AS sessions FROM daily_metrics WHERE domain_id = $1 AND sessions <> 0 ORDER BY 1`,
        [site.domainId]
      )
      const writer = yield* makeWriter({ ...keys, consumer: "fpmove-a" })
      const send = (envelopes: ReadonlyArray<ReturnType<typeof view>>) => Effect.andThen(xadd(keys.streamKey, envelopes), writer.drain)

      yield* send([late])
      assert.deepStrictEqual(yield* sessionsBy("page_path", "hour"), [{ bucket: "05-02 00", value_of: "/b", n: 1 }])
      // the earlier view, from a late spool drain: the session is counted where it began
      yield* send([early])
      const moved = {
        pageHour: [{ bucket: "05-01 23", value_of: "/a", n: 1 }],
        sourceDay: [{ bucket: "05-01 00", value_of: "email", n: 1 }],
        totalHour: [{ bucket: "05-01 23", value_of: null, n: 1 }],
        daily: [{ day: "05-01", sessions: 1 }]
      }
      const now = Effect.all({
        pageHour: sessionsBy("page_path", "hour"),
        sourceDay: sessionsBy("source", "day"),
        totalHour: sessionsBy("total", "hour"),
        daily
      })
      assert.deepStrictEqual(yield* now, moved)
      // both again (a redelivery): nothing moves twice
      yield* send([late, early])
      assert.deepStrictEqual(yield* now, moved)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "sessions" }), 1)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 2)
    }))

  it.effect("an entry whose write keeps failing is isolated by splitting the batch and kept in ingest_failures", () =>
    Effect.gen(function*() {
      const keys = streamKeys("split")
      yield* cleanupKeys(keys.streamKey)
      const site = yield* domainFor("split")
      const sql = yield* SqlClient.SqlClient
      const envelopes = [1, 2, 3, 4, 5].map(() => viewEnvelope({ edge: { headers: { origin: site.origin } } }))
      const ids = yield* xadd(keys.streamKey, envelopes)
      const bad = ids[2]!
      const writer = yield* makeWriter({
        ...keys,
        consumer: "split-a",
        retryBaseMs: 5,
        permanentAttempts: 2,
        hooks: {
          // any transaction writing the event of entry `bad` fails with a permanent error
          beforeCommit: ({ entryIds, events }) =>
            events > 0 && entryIds.includes(bad) ? sql`SELECT 1 / 0`.pipe(Effect.asVoid) : Effect.void
        }
      })
      yield* writer.drain
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE domain_id = $1::int4`, [site.domainId]), 4)
      assert.strictEqual(yield* countRows(`SELECT count(*)::int AS n FROM raw_events WHERE id = $1::uuid`, [envelopes[2]!.eventId]), 0)
      const failures = yield* query<{ entry_id: string; error: string; event_id: string }>(
        `SELECT entry_id, error, event_id FROM ingest_failures WHERE stream_key = $1`,
        [keys.streamKey]
      )
      assert.strictEqual(failures.length, 1)
      assert.strictEqual(failures[0]!.entry_id, bad)
      assert.strictEqual(failures[0]!.event_id, envelopes[2]!.eventId)
      assert.match(failures[0]!.error, /division by zero/)
      assert.strictEqual(yield* metricValue({ domainId: site.domainId, metric: "pageviews" }), 4)
      assert.strictEqual(yield* pendingOf(keys.streamKey, keys.group), 0)
    }))
})
