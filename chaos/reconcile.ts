/**
 * Reconciliation of a chaos run: the load generator's record of every request against what
 * PostgreSQL holds once the pipeline drained.
 *
 * - Every event of a 2xx request is in `raw_events` exactly once (its marker, see
 *   workload.ts); a single event's row has the `eventId` its 202 returned.
 * - No event of a 4xx/503 request (or a refused connection) is stored.
 * - A request that got no answer (reset, timeout) is "unknown": stored entirely or not at all,
 *   never in part, never twice.
 * - No row exists that no request of the run could have produced.
 * - Rollups: per (hour | day bucket, corp, domain), `aggregated_metrics` totals equal the counts
 *   of the stored rows (events / bot_events / pageviews / conversions, events by event type),
 *   `daily_metrics` likewise, sessions equal the human `session_fingerprints` created in the
 *   bucket, unique visitors equal the `visitor_seen` rows.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { FLAG_BODY_OK, FLAG_INVALID, FLAG_REFUSED, FLAG_RETRY_AFTER, FLAG_SINGLE, type LoadColumns } from "./load.ts"
import { KINDS } from "./workload.ts"

export interface Db {
  query<A extends object>(text: string, params?: ReadonlyArray<unknown>): Promise<ReadonlyArray<A>>
  close(): Promise<void>
}

export const openDb = async (url: string, maxConnections = 2): Promise<Db> => {
  const scope = await Effect.runPromise(Scope.make())
  const ctx = await Effect.runPromise(
    Scope.provide(Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections, connectTimeout: "10 seconds" })), scope)
  )
  const sql = Context.get(ctx, SqlClient.SqlClient)
  return {
    query: <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
      Effect.runPromise(sql.unsafe<A>(text, params as Array<unknown>)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export interface PhaseRow {
  readonly phase: string
  readonly seconds: number
  readonly requests: number
  readonly events: number
  readonly ok2xx: number
  /** 4xx answers (the invalid-on-purpose requests get 400) */
  readonly c4xx: number
  /** 4xx to a request that was valid, or a 2xx to an invalid one */
  readonly wrongStatus: number
  readonly c503: number
  /** 5xx other than 503-with-Retry-After */
  readonly bad5xx: number
  readonly refused: number
  /** no answer (reset / timeout): stored all-or-nothing is allowed */
  readonly unknown: number
  /** 2xx with a body not as the contract says */
  readonly badBody: number
  readonly lost: number
  readonly duplicated: number
  readonly storedRejected: number
  readonly partialUnknown: number
  readonly idMismatch: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface Reconciliation {
  readonly rows: ReadonlyArray<PhaseRow>
  readonly total: PhaseRow
  readonly rawEvents: number
  readonly unexpectedRows: number
  readonly duplicateIds: number
  readonly ingestFailures: number
  readonly rollupBuckets: number
  readonly rollupMismatches: ReadonlyArray<string>
  /** examples: lost / duplicated / stored-while-rejected requests, bad statuses */
  readonly examples: ReadonlyArray<string>
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

interface Got {
  readonly n: number
  readonly d: number
  readonly id: string
  readonly maxIndex: number
}

export const reconcile = async (
  db: Db,
  cols: LoadColumns,
  phases: ReadonlyArray<{ readonly name: string; readonly seconds: number }>
): Promise<Reconciliation> => {
  const tag = `${cols.tag}.`
  const stored = await db.query<{ req: number; n: number; d: number; id: string; maxi: number }>(
    `SELECT split_part(session_id, '.', 2)::int AS req, count(*)::int AS n, count(DISTINCT session_id)::int AS d,
            min(id::text) AS id, max(split_part(session_id, '.', 3)::int) AS maxi
       FROM raw_events WHERE starts_with(session_id, $1) GROUP BY 1`,
    [tag]
  )
  const got = new Map<number, Got>()
  for (const r of stored) got.set(Number(r.req), { n: Number(r.n), d: Number(r.d), id: r.id, maxIndex: Number(r.maxi) })
  const [counts] = await db.query<{ total: number; foreign: number }>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE NOT starts_with(session_id, $1)))::int AS foreign FROM raw_events`,
    [tag]
  )
  const [dupIds] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT id FROM raw_events GROUP BY id HAVING count(*) > 1) x`
  )
  const failures = await db.query<{ payload: string; error: string }>(`SELECT payload, error FROM ingest_failures ORDER BY id`)

  const examples: Array<string> = []
  const example = (line: string) => {
    if (examples.length < 60) examples.push(line)
  }
  const describe = (i: number) =>
    `request ${i} (${KINDS[cols.kind[i]!]}, ${cols.events[i]} event(s), phase "${phases[cols.phase[i]!]?.name}", sent at +${
      (cols.at[i]! / 1000).toFixed(3)
    } s, status ${cols.status[i]}${cols.note[i] ? `, ${cols.note[i]}` : ""})`

  const n = cols.status.length
  let unknownShown = 0
  type Acc = {
    requests: number
    events: number
    ok2xx: number
    c4xx: number
    wrongStatus: number
    c503: number
    bad5xx: number
    refused: number
    unknown: number
    badBody: number
    lost: number
    duplicated: number
    storedRejected: number
    partialUnknown: number
    idMismatch: number
    latencies: Array<number>
  }
  const fresh = (): Acc => ({
    requests: 0,
    events: 0,
    ok2xx: 0,
    c4xx: 0,
    wrongStatus: 0,
    c503: 0,
    bad5xx: 0,
    refused: 0,
    unknown: 0,
    badBody: 0,
    lost: 0,
    duplicated: 0,
    storedRejected: 0,
    partialUnknown: 0,
    idMismatch: 0,
    latencies: []
  })
  const acc = phases.map(fresh)
  const all = fresh()
  for (let i = 0; i < n; i++) {
    const a = acc[cols.phase[i]!] ?? acc[acc.length - 1]!
    const status = cols.status[i]!
    const flags = cols.flags[i]!
    const events = cols.events[i]!
    const invalid = (flags & FLAG_INVALID) !== 0
    const g = got.get(i)
    const d = g?.d ?? 0
    const rows = g?.n ?? 0
    const bump = (key: Exclude<keyof Acc, "latencies">, by = 1) => {
      a[key] += by
      all[key] += by
    }
    bump("requests")
    bump("events", events)
    if (status !== 0) {
      a.latencies.push(cols.latencyMs[i]!)
      all.latencies.push(cols.latencyMs[i]!)
    }
    if (g !== undefined && g.maxIndex >= events) example(`marker index ${g.maxIndex} beyond the ${events} events of ${describe(i)}`)
    if (rows > d) {
      bump("duplicated", rows - d)
      example(`DUPLICATED ${rows - d} row(s) of ${describe(i)}`)
    }
    if (status >= 200 && status < 300) {
      bump("ok2xx")
      if (invalid) {
        bump("wrongStatus")
        example(`2xx to an invalid request: ${describe(i)}`)
      }
      if ((flags & FLAG_BODY_OK) === 0) {
        bump("badBody")
        example(`2xx body not per contract: ${describe(i)}`)
      }
      if (d < events) {
        bump("lost", events - d)
        example(`LOST ${events - d} of ${events} event(s) of ${describe(i)}${cols.eventId[i] ? ` eventId ${cols.eventId[i]}` : ""}`)
      }
      if ((flags & FLAG_SINGLE) !== 0 && g !== undefined && g.n === 1 && cols.eventId[i] !== "" && g.id !== cols.eventId[i]) {
        bump("idMismatch")
        example(`stored id ${g.id} ≠ returned eventId ${cols.eventId[i]}: ${describe(i)}`)
      }
    } else if (status === 0 && (flags & FLAG_REFUSED) === 0) {
      bump("unknown")
      if (unknownShown++ < 5 || (d !== 0 && d !== events)) {
        example(`no answer (${d === 0 ? "not stored" : d === events ? "stored entirely" : "stored IN PART"}): ${describe(i)}`)
      }
      if (d !== 0 && d !== events) {
        bump("partialUnknown")
        example(`unanswered request stored in part (${d}/${events}): ${describe(i)}`)
      }
    } else {
      if (status === 0) bump("refused")
      else if (status >= 400 && status < 500) {
        bump("c4xx")
        if (!invalid) {
          bump("wrongStatus")
          example(`4xx to a valid request: ${describe(i)}`)
        }
      } else if (status === 503 && (flags & FLAG_RETRY_AFTER) !== 0) bump("c503")
      else {
        bump("bad5xx")
        example(`5xx other than 503 + Retry-After: ${describe(i)}`)
      }
      if (d > 0) {
        bump("storedRejected", d)
        example(`STORED although rejected: ${d} event(s) of ${describe(i)}`)
      }
    }
  }
  let orphanRequests = 0
  for (const req of got.keys()) if (req >= n) orphanRequests++
  if (orphanRequests > 0) example(`${orphanRequests} stored marker group(s) name a request number the load never sent`)

  const finish = (name: string, seconds: number, a: Acc): PhaseRow => {
    const sorted = Float64Array.from(a.latencies).sort()
    const { latencies: _, ...rest } = a
    return {
      phase: name,
      seconds,
      ...rest,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!
    }
  }
  const rows = phases.map((p, i) => finish(p.name, p.seconds, acc[i]!))
  const total = finish("total", phases.reduce((s, p) => s + p.seconds, 0), all)

  for (const f of failures.slice(0, 10)) example(`ingest_failures: ${f.error.slice(0, 200)} — payload ${f.payload.slice(0, 160)}`)

  const rollupMismatches = await checkRollups(db)
  const [buckets] = await db.query<{ n: number }>(
    `SELECT count(DISTINCT (granularity, bucket_start, corp_id, domain_id))::int AS n FROM aggregated_metrics`
  )
  return {
    rows,
    total,
    rawEvents: Number(counts?.total ?? 0),
    unexpectedRows: Number(counts?.foreign ?? 0) + orphanRequests,
    duplicateIds: Number(dupIds?.n ?? 0),
    ingestFailures: failures.length,
    rollupBuckets: Number(buckets?.n ?? 0),
    rollupMismatches,
    examples
  }
}

/** Rollups against the stored rows; returns one line per mismatching bucket (empty = all equal). */
export const checkRollups = async (db: Db): Promise<ReadonlyArray<string>> => {
  const out: Array<string> = []
  const bucket = (g: string) => `date_trunc('${g}', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`
  const key = (a: string, b: string) =>
    `${a}.g = ${b}.g AND ${a}.b = ${b}.b AND coalesce(${a}.corp_id, -1) = coalesce(${b}.corp_id, -1) AND coalesce(${a}.domain_id, -1) = coalesce(${b}.domain_id, -1)`

  // totals per bucket and scope
  const totals = await db.query<Record<string, unknown>>(`
    WITH c AS (
      SELECT 'hour' AS g, ${bucket("hour")} AS b, corp_id, domain_id,
             count(*) FILTER (WHERE NOT is_bot) AS events, count(*) FILTER (WHERE is_bot) AS bot_events,
             count(*) FILTER (WHERE NOT is_bot AND kind = 'view') AS pageviews,
             count(*) FILTER (WHERE NOT is_bot AND event_type = 'conversion') AS conversions
        FROM raw_events GROUP BY 1, 2, 3, 4
      UNION ALL
      SELECT 'day', ${bucket("day")}, corp_id, domain_id,
             count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot),
             count(*) FILTER (WHERE NOT is_bot AND kind = 'view'),
             count(*) FILTER (WHERE NOT is_bot AND event_type = 'conversion')
        FROM raw_events GROUP BY 1, 2, 3, 4),
    m AS (
      SELECT granularity AS g, bucket_start AS b, corp_id, domain_id,
             coalesce(sum(value) FILTER (WHERE metric = 'events'), 0) AS events,
             coalesce(sum(value) FILTER (WHERE metric = 'bot_events'), 0) AS bot_events,
             coalesce(sum(value) FILTER (WHERE metric = 'pageviews'), 0) AS pageviews,
             coalesce(sum(value) FILTER (WHERE metric = 'conversions'), 0) AS conversions
        FROM aggregated_metrics
       WHERE dimension = 'total' AND metric IN ('events', 'bot_events', 'pageviews', 'conversions')
       GROUP BY 1, 2, 3, 4)
    SELECT coalesce(c.g, m.g) AS g, coalesce(c.b, m.b)::text AS b, coalesce(c.corp_id, m.corp_id) AS corp, coalesce(c.domain_id, m.domain_id) AS domain,
           coalesce(c.events, 0)::bigint AS c_events, coalesce(m.events, 0)::bigint AS m_events,
           coalesce(c.bot_events, 0)::bigint AS c_bot, coalesce(m.bot_events, 0)::bigint AS m_bot,
           coalesce(c.pageviews, 0)::bigint AS c_pv, coalesce(m.pageviews, 0)::bigint AS m_pv,
           coalesce(c.conversions, 0)::bigint AS c_conv, coalesce(m.conversions, 0)::bigint AS m_conv
      FROM c FULL JOIN m ON ${key("c", "m")}
     WHERE coalesce(c.events, 0) <> coalesce(m.events, 0) OR coalesce(c.bot_events, 0) <> coalesce(m.bot_events, 0)
        OR coalesce(c.pageviews, 0) <> coalesce(m.pageviews, 0) OR coalesce(c.conversions, 0) <> coalesce(m.conversions, 0)`)
  for (const r of totals) {
    out.push(
      `aggregated_metrics totals ${r.g} ${r.b} corp ${r.corp} domain ${r.domain}: rows events/bot/pageviews/conversions ` +
        `${r.c_events}/${r.c_bot}/${r.c_pv}/${r.c_conv} vs rollup ${r.m_events}/${r.m_bot}/${r.m_pv}/${r.m_conv}`
    )
  }

  // by event type (events for humans, bot_events for bots)
  const byType = await db.query<Record<string, unknown>>(`
    WITH c AS (
      SELECT g.g, date_trunc(g.g, received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS b, corp_id, domain_id,
             CASE WHEN is_bot THEN 'bot_events' ELSE 'events' END AS metric, event_type, count(*) AS n
        FROM raw_events CROSS JOIN (VALUES ('hour'), ('day')) AS g(g) GROUP BY 1, 2, 3, 4, 5, 6),
    m AS (
      SELECT granularity AS g, bucket_start AS b, corp_id, domain_id, metric, dimension_value AS event_type, sum(value) AS n
        FROM aggregated_metrics WHERE dimension = 'event_type' AND metric IN ('events', 'bot_events') GROUP BY 1, 2, 3, 4, 5, 6)
    SELECT coalesce(c.g, m.g) AS g, coalesce(c.b, m.b)::text AS b, coalesce(c.corp_id, m.corp_id) AS corp,
           coalesce(c.domain_id, m.domain_id) AS domain, coalesce(c.metric, m.metric) AS metric,
           coalesce(c.event_type, m.event_type) AS event_type, coalesce(c.n, 0)::bigint AS c_n, coalesce(m.n, 0)::bigint AS m_n
      FROM c FULL JOIN m ON ${key("c", "m")} AND c.metric = m.metric AND coalesce(c.event_type, '') = coalesce(m.event_type, '')
     WHERE coalesce(c.n, 0) <> coalesce(m.n, 0)`)
  for (const r of byType) {
    out.push(`aggregated_metrics ${r.metric}/event_type=${r.event_type} ${r.g} ${r.b} corp ${r.corp} domain ${r.domain}: rows ${r.c_n} vs rollup ${r.m_n}`)
  }

  // daily_metrics
  const daily = await db.query<Record<string, unknown>>(`
    WITH c AS (
      SELECT (received_at AT TIME ZONE 'UTC')::date AS day, corp_id, domain_id,
             count(*) FILTER (WHERE NOT is_bot) AS events, count(*) FILTER (WHERE is_bot) AS bot_events,
             count(*) FILTER (WHERE NOT is_bot AND kind = 'view') AS pageviews,
             count(*) FILTER (WHERE NOT is_bot AND event_type = 'conversion') AS conversions
        FROM raw_events GROUP BY 1, 2, 3)
    SELECT coalesce(c.day, m.day)::text AS day, coalesce(c.corp_id, m.corp_id) AS corp, coalesce(c.domain_id, m.domain_id) AS domain,
           coalesce(c.events, 0)::bigint AS c_events, coalesce(m.events, 0)::bigint AS m_events,
           coalesce(c.bot_events, 0)::bigint AS c_bot, coalesce(m.bot_events, 0)::bigint AS m_bot,
           coalesce(c.pageviews, 0)::bigint AS c_pv, coalesce(m.pageviews, 0)::bigint AS m_pv,
           coalesce(c.conversions, 0)::bigint AS c_conv, coalesce(m.conversions, 0)::bigint AS m_conv
      FROM c FULL JOIN daily_metrics m
        ON c.day = m.day AND coalesce(c.corp_id, -1) = coalesce(m.corp_id, -1) AND coalesce(c.domain_id, -1) = coalesce(m.domain_id, -1)
     WHERE coalesce(c.events, 0) <> coalesce(m.events, 0) OR coalesce(c.bot_events, 0) <> coalesce(m.bot_events, 0)
        OR coalesce(c.pageviews, 0) <> coalesce(m.pageviews, 0) OR coalesce(c.conversions, 0) <> coalesce(m.conversions, 0)`)
  for (const r of daily) {
    out.push(
      `daily_metrics ${r.day} corp ${r.corp} domain ${r.domain}: rows events/bot/pageviews/conversions ` +
        `${r.c_events}/${r.c_bot}/${r.c_pv}/${r.c_conv} vs daily_metrics ${r.m_events}/${r.m_bot}/${r.m_pv}/${r.m_conv}`
    )
  }

  // sessions = human fingerprints created in the bucket (first_seen_at)
  const sessions = await db.query<Record<string, unknown>>(`
    WITH c AS (
      SELECT g.g, date_trunc(g.g, first_seen_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS b, corp_id, domain_id, count(*) AS n
        FROM session_fingerprints CROSS JOIN (VALUES ('hour'), ('day')) AS g(g) WHERE NOT is_bot GROUP BY 1, 2, 3, 4),
    m AS (
      SELECT granularity AS g, bucket_start AS b, corp_id, domain_id, sum(value) AS n
        FROM aggregated_metrics WHERE metric = 'sessions' AND dimension = 'total' GROUP BY 1, 2, 3, 4)
    SELECT coalesce(c.g, m.g) AS g, coalesce(c.b, m.b)::text AS b, coalesce(c.corp_id, m.corp_id) AS corp,
           coalesce(c.domain_id, m.domain_id) AS domain, coalesce(c.n, 0)::bigint AS c_n, coalesce(m.n, 0)::bigint AS m_n
      FROM c FULL JOIN m ON ${key("c", "m")} WHERE coalesce(c.n, 0) <> coalesce(m.n, 0)`)
  for (const r of sessions) {
    out.push(`sessions ${r.g} ${r.b} corp ${r.corp} domain ${r.domain}: human fingerprints ${r.c_n} vs rollup ${r.m_n}`)
  }

  // unique visitors = seen-set rows
  const visitors = await db.query<Record<string, unknown>>(`
    WITH c AS (
      SELECT granularity AS g, bucket_start AS b, corp_id, domain_id, count(*) AS n FROM visitor_seen GROUP BY 1, 2, 3, 4),
    m AS (
      SELECT granularity AS g, bucket_start AS b, corp_id, domain_id, sum(value) AS n
        FROM aggregated_metrics WHERE metric = 'unique_visitors' AND dimension = 'total' GROUP BY 1, 2, 3, 4)
    SELECT coalesce(c.g, m.g) AS g, coalesce(c.b, m.b)::text AS b, coalesce(c.corp_id, m.corp_id) AS corp,
           coalesce(c.domain_id, m.domain_id) AS domain, coalesce(c.n, 0)::bigint AS c_n, coalesce(m.n, 0)::bigint AS m_n
      FROM c FULL JOIN m ON ${key("c", "m")} WHERE coalesce(c.n, 0) <> coalesce(m.n, 0)`)
  for (const r of visitors) {
    out.push(`unique_visitors ${r.g} ${r.b} corp ${r.corp} domain ${r.domain}: visitor_seen rows ${r.c_n} vs rollup ${r.m_n}`)
  }
  return out
}
