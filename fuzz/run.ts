/**
 * Runs fuzz cases against a collector and checks every answer, then checks the streams:
 * each stored envelope decodes with the shared Schema, belongs to a request that got a
 * 202 (by its `edge.ua` = `fuzz/<id>`), in exactly the number the 202s promised, and
 * carries the socket peer as `edge.ip` (the fuzzer connects over loopback, which the
 * fuzz collector does not trust, so forwarded headers must be ignored).
 */
import type { Redis } from "ioredis"
import { decodeEnvelopeJson } from "../src/domain/Envelope.ts"
import { primaryStreamKey, spoolStreamKey } from "../src/domain/Streams.ts"
import { fieldValue } from "../src/layers/StreamStore.ts"
import { Connection, type Exchange, type HttpResponse } from "./client.ts"
import { API_STATUSES, CATEGORIES, type FuzzCase, type FuzzConfig, makeCase, type Pools, printable } from "./generators.ts"

export interface Violation {
  readonly id: number
  readonly category: string
  readonly label: string
  readonly reason: string
  /** answer | undecodable | edge-ip | kind | count */
  readonly check: string
}

interface CaseRecord {
  readonly category: string
  readonly label: string
  readonly accepted: number
  readonly eventIds: ReadonlyArray<string>
  readonly endpoint: string | undefined
  readonly requests: number
  readonly mayStore: number
}

export interface CategoryTally {
  cases: number
  requests: number
  /** answers by status */
  statuses: Map<number, number>
  s2xx: number
  s5xx: number
  /** answers without a JSON body (from Node's HTTP parser, on malformed requests) */
  nonJson: number
  /** cases that ended in a timeout / reset / early close before all answers arrived */
  connErrors: number
  connErrorKinds: Map<string, number>
  /** first case per connection-error kind: "label (case id)" */
  connErrorExamples: Map<string, string>
  violations: number
  acceptedEvents: number
}

export interface RunResult {
  readonly cases: number
  readonly requests: number
  readonly ms: number
  readonly tally: Map<string, CategoryTally>
  readonly violations: Array<Violation>
  readonly records: Map<number, CaseRecord>
  readonly acceptedEvents: number
  /** one example answer per category/status, for the report */
  readonly examples: Map<string, string>
}

export interface RunOptions {
  readonly port: number
  readonly cfg: FuzzConfig
  readonly pools: Pools
  readonly requests: number
  readonly concurrency: number
  /** run only these case ids (replay) */
  readonly only?: ReadonlyArray<number>
  readonly onProgress?: (done: number, total: number) => void
  /** called after every case (replay mode prints the answers) */
  readonly onCase?: (fc: FuzzCase, ex: Exchange, reasons: ReadonlyArray<string>) => void
}

const newTally = (): CategoryTally => ({
  cases: 0,
  requests: 0,
  statuses: new Map(),
  s2xx: 0,
  s5xx: 0,
  nonJson: 0,
  connErrors: 0,
  connErrorKinds: new Map(),
  connErrorExamples: new Map(),
  violations: 0,
  acceptedEvents: 0
})

const bodyText = (r: HttpResponse) => {
  const t = r.body.toString("utf8")
  return t.length > 300 ? `${t.slice(0, 300)}…` : t
}

const jsonObject = (r: HttpResponse): Record<string, unknown> | undefined => {
  try {
    const v = JSON.parse(r.body.toString("utf8"))
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined
  } catch {
    return undefined
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Judges one exchange: the answers themselves and the case's expectation. */
export const judge = (fc: FuzzCase, ex: Exchange) => {
  const reasons: Array<string> = []
  let accepted = 0
  const eventIds: Array<string> = []
  let nonJson = 0
  const protocol = fc.expect.kind === "protocol"
  for (const r of ex.responses) {
    const body = jsonObject(r)
    const isJson = body !== undefined && (r.headers["content-type"] ?? "").toLowerCase().startsWith("application/json")
    if (!isJson) nonJson++
    if (r.status >= 500) reasons.push(`5xx: ${r.status} ${bodyText(r)}`)
    if (r.status === 202) {
      if (body === undefined) reasons.push(`202 without a JSON body: ${bodyText(r)}`)
      else if (typeof body.count === "number") {
        accepted += body.count
        if (body.success !== true) reasons.push(`batch 202 with success=${String(body.success)}`)
      } else if (typeof body.eventId === "string" && UUID.test(body.eventId)) {
        accepted += 1
        eventIds.push(body.eventId)
      } else reasons.push(`202 body has neither count nor a uuid eventId: ${bodyText(r)}`)
    }
    if (!protocol) {
      if (!API_STATUSES.includes(r.status)) reasons.push(`status ${r.status} is not an API answer (${bodyText(r)})`)
      else if (!isJson) reasons.push(`${r.status} without a JSON body (content-type ${r.headers["content-type"]}): ${bodyText(r)}`)
      else if (r.status >= 400 && typeof body!.error !== "string") reasons.push(`${r.status} body without "error": ${bodyText(r)}`)
      if (r.status === 429 && r.headers["retry-after"] === undefined) reasons.push("429 without Retry-After")
    }
  }
  if (ex.error !== undefined && !protocol) reasons.push(`no complete answer: ${ex.error} after ${ex.ms} ms (${ex.responses.length}/${fc.responses} answers)`)
  if (protocol && ex.error === "timeout" && fc.expect.allowTimeout !== true) {
    // not a contract breach, but worth seeing: reported as a connection error only
  }
  const statuses = ex.responses.map((r) => r.status)
  switch (fc.expect.kind) {
    case "accept": {
      const all202 = statuses.length === fc.responses && statuses.every((s) => s === 202)
      if (!all202 || accepted !== fc.expect.events) {
        reasons.push(
          `expected ${fc.responses}× 202 accepting ${fc.expect.events} event(s), got [${statuses.join(",")}] accepting ${accepted}: ` +
            ex.responses.filter((r) => r.status !== 202).map(bodyText).join(" | ")
        )
      }
      break
    }
    case "status": {
      const allowed = fc.expect.statuses
      const bad = ex.responses.filter((r) => !allowed.includes(r.status))
      if (bad.length > 0) reasons.push(`expected status ${allowed.join("/")}, got ${bad.map((r) => `${r.status} ${bodyText(r)}`).join(" | ")}`)
      break
    }
    default:
      break
  }
  return { reasons, accepted, eventIds, nonJson, statuses }
}

/** Runs cases 0..requests-1 (or `only`) with `concurrency` workers; keep-alive unless a case wants a fresh socket. */
export const runCases = async (o: RunOptions): Promise<RunResult> => {
  const ids = o.only ?? Array.from({ length: o.requests }, (_, i) => i)
  const tally = new Map<string, CategoryTally>(CATEGORIES.map(([name]) => [name, newTally()]))
  const violations: Array<Violation> = []
  const records = new Map<number, CaseRecord>()
  const examples = new Map<string, string>()
  let next = 0
  let done = 0
  let requests = 0
  let acceptedEvents = 0
  const started = Date.now()
  const progressEvery = Math.max(1, Math.floor(ids.length / 20))

  const worker = async () => {
    let ka: Connection | undefined
    try {
      for (;;) {
        const i = next++
        if (i >= ids.length) return
        let fc: FuzzCase
        try {
          fc = makeCase(o.cfg, o.pools, ids[i]!)
        } catch (e) {
          throw new Error(`generating case ${ids[i]} (seed ${o.cfg.seed}) failed: ${(e as Error).stack}`)
        }
        const t = tally.get(fc.category) ?? newTally()
        tally.set(fc.category, t)
        let ex: Exchange
        let conn: Connection | undefined
        try {
          if (fc.fresh) conn = await Connection.open(o.port)
          else {
            if (ka === undefined || !ka.usable || Date.now() - ka.lastUsed > 3000) {
              ka?.close()
              ka = await Connection.open(o.port)
            }
            conn = ka
          }
          ex = await conn.exchange(fc.bytes, { responses: fc.responses, timeoutMs: fc.timeoutMs })
        } catch (e) {
          ex = { responses: [], error: `connect: ${(e as Error).message}`, closed: true, ms: 0 }
        }
        if (conn !== undefined) {
          const closeHeader = ex.responses.some((r) => (r.headers["connection"] ?? "").toLowerCase() === "close")
          if (fc.fresh) conn.close()
          else if (ex.error !== undefined || ex.closed || closeHeader || !conn.usable) {
            conn.close()
            ka = undefined
          }
        }
        const j = judge(fc, ex)
        const reqs = fc.category === "pipelined" ? fc.responses : 1
        requests += reqs
        t.cases++
        t.requests += reqs
        for (const s of j.statuses) {
          t.statuses.set(s, (t.statuses.get(s) ?? 0) + 1)
          if (s >= 200 && s < 300) t.s2xx++
          if (s >= 500) t.s5xx++
          const key = `${fc.category} ${s}`
          if (!examples.has(key)) {
            const r = ex.responses.find((r) => r.status === s)!
            examples.set(key, `${fc.label} → ${s} ${bodyText(r).slice(0, 160)}`)
          }
        }
        t.nonJson += j.nonJson
        if (ex.error !== undefined) {
          t.connErrors++
          const kind = ex.error.replace(/[:(].*$/, "").trim()
          t.connErrorKinds.set(kind, (t.connErrorKinds.get(kind) ?? 0) + 1)
          const exampleKey = `${kind} ${fc.label.replace(/\d+/g, "N")}`
          if (!t.connErrorExamples.has(exampleKey)) t.connErrorExamples.set(exampleKey, `case ${fc.id}`)
        }
        t.acceptedEvents += j.accepted
        acceptedEvents += j.accepted
        if (j.reasons.length > 0) {
          t.violations++
          for (const reason of j.reasons) violations.push({ id: fc.id, category: fc.category, label: fc.label, reason, check: "answer" })
        }
        o.onCase?.(fc, ex, j.reasons)
        records.set(fc.id, { category: fc.category, label: fc.label, accepted: j.accepted, eventIds: j.eventIds, endpoint: fc.category === "pipelined" ? undefined : fc.endpoint, requests: reqs, mayStore: fc.mayStore ?? 0 })
        done++
        if (o.onProgress && done % progressEvery === 0) o.onProgress(done, ids.length)
      }
    } finally {
      ka?.close()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker))
  return { cases: ids.length, requests, ms: Date.now() - started, tally, violations, records, acceptedEvents, examples }
}

// ---------------------------------------------------------------------------
// the streams

export interface StreamReport {
  readonly primary: number
  readonly spool: number
  readonly decoded: number
  readonly undecodable: number
  readonly violations: Array<Violation>
  /** envelopes stored without a 202 reaching the client, from cases with `mayStore` (see FuzzCase) */
  readonly answerLost: Array<Violation>
  /** kinds of undecodable envelopes, with counts */
  readonly undecodableReasons: Map<string, number>
  /** stored envelopes per case category (all checked for edge.ip = the socket peer) */
  readonly byCategory: Map<string, number>
}

const readAll = async (redis: Redis, key: string, each: (id: string, fields: Array<string>) => void) => {
  let start = "-"
  for (;;) {
    const rows = await redis.xrange(key, start, "+", "COUNT", 2000)
    for (const [id, fields] of rows) each(id, fields)
    if (rows.length < 2000) return
    start = `(${rows[rows.length - 1]![0]}`
  }
}

/** Checks every stored envelope against the run's records (see the module comment). */
export const verifyStreams = async (redis: Redis, prefix: string, run: RunResult, expectedIp = "127.0.0.1"): Promise<StreamReport> => {
  const violations: Array<Violation> = []
  const undecodableReasons = new Map<string, number>()
  const stored = new Map<number, { count: number; eventIds: Set<string> }>()
  const byCategory = new Map<string, number>()
  let decoded = 0
  let undecodable = 0
  const recordOf = (id: number) => run.records.get(id)
  const v = (id: number, reason: string, check = "count") => {
    const r = recordOf(id)
    violations.push({ id, category: r?.category ?? "?", label: r?.label ?? "(no such case in this run)", reason, check })
  }
  const each = (streamKey: string) => (entryId: string, fields: Array<string>) => {
    const json = fieldValue(fields)
    let ua: unknown
    let rawEventId: unknown
    try {
      const raw = JSON.parse(json)
      ua = raw?.edge?.ua
      rawEventId = raw?.eventId
    } catch {}
    const m = typeof ua === "string" ? /^fuzz\/(\d+)$/.exec(ua) : null
    const id = m ? Number(m[1]) : -1
    const exit = decodeEnvelopeJson(json)
    if (exit._tag !== "Success") {
      undecodable++
      const msg = String(exit.cause).replace(/\s+/g, " ").replace(/^.*SchemaError\(/, "").slice(0, 160)
      undecodableReasons.set(msg, (undecodableReasons.get(msg) ?? 0) + 1)
      v(id, `stored envelope ${streamKey} ${entryId} does not decode with the shared Schema: ${msg}`, "undecodable")
    } else {
      decoded++
      const env = exit.value
      if (env.edge.ip !== expectedIp) v(id, `envelope ${env.eventId}: edge.ip = ${JSON.stringify(env.edge.ip)}, expected the socket peer ${expectedIp}`, "edge-ip")
      if (env.payload.isView !== (env.kind === "view")) v(id, `envelope ${env.eventId}: kind ${env.kind} with isView ${env.payload.isView}`, "kind")
      const rec = recordOf(id)
      if (rec?.endpoint !== undefined && rec.endpoint !== env.kind) v(id, `envelope ${env.eventId}: kind ${env.kind}, request went to ${rec.endpoint}`, "kind")
    }
    if (id < 0) {
      v(id, `envelope ${streamKey} ${entryId} without a fuzz/<id> user agent: ${json.slice(0, 200)}`)
      return
    }
    const cat = recordOf(id)?.category ?? "?"
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + 1)
    const s = stored.get(id) ?? { count: 0, eventIds: new Set<string>() }
    s.count++
    if (exit._tag === "Success") s.eventIds.add(exit.value.eventId)
    else if (typeof rawEventId === "string") s.eventIds.add(rawEventId)
    stored.set(id, s)
  }
  const primaryKey = primaryStreamKey(prefix)
  const spoolKey = spoolStreamKey(prefix)
  await readAll(redis, primaryKey, each(primaryKey))
  await readAll(redis, spoolKey, each(spoolKey))
  const primary = await redis.xlen(primaryKey)
  const spool = await redis.xlen(spoolKey)
  const answerLost: Array<Violation> = []
  let lostEvents = 0
  for (const [id, s] of stored) {
    const r = recordOf(id)
    if (r === undefined) v(id, `${s.count} envelope(s) from a case that was not run`)
    else if (s.count > r.accepted && s.count <= r.accepted + r.mayStore) {
      lostEvents += s.count - r.accepted
      answerLost.push({ id, category: r.category, label: r.label, reason: `${s.count} envelope(s) stored, the client got no 202 for ${s.count - r.accepted} of them (the answer to the malformed bytes that followed cut the connection)`,
        check: "answer-lost"
      })
    } else if (s.count !== r.accepted) v(id, `${s.count} envelope(s) stored, the 202 answers accepted ${r.accepted}`)
  }
  for (const [id, r] of run.records) {
    if (r.accepted > 0 && !stored.has(id)) v(id, `202 answers accepted ${r.accepted} event(s), none stored`)
    const s = stored.get(id)
    for (const eventId of r.eventIds) if (s !== undefined && !s.eventIds.has(eventId)) v(id, `202 eventId ${eventId} not in the stream`)
  }
  if (primary + spool !== run.acceptedEvents + lostEvents) {
    violations.push({
      id: -1,
      category: "(all)",
      label: "stream totals",
      check: "count",
      reason: `primary ${primary} + spool ${spool} envelopes, 202 answers accepted ${run.acceptedEvents} (+ ${lostEvents} with a lost answer)`
    })
  }
  return { primary, spool, decoded, undecodable, violations, answerLost, undecodableReasons, byCategory }
}

// ---------------------------------------------------------------------------
// report

const pad = (s: string | number, n: number, left = false) => (left ? String(s).padEnd(n) : String(s).padStart(n))

export const formatTable = (run: RunResult): string => {
  const cols = ["category", "cases", "requests", "202", "400", "401", "413", "415", "429", "other status", "5xx", "non-JSON", "conn err", "violations", "events"]
  const widths = [17, 7, 8, 7, 7, 6, 6, 6, 5, 27, 5, 8, 8, 10, 7]
  const rows: Array<Array<string | number>> = []
  const total = newTally()
  for (const [name, t] of run.tally) {
    if (t.cases === 0) continue
    const other = [...t.statuses].filter(([s]) => s < 500 && ![202, 400, 401, 413, 415, 429].includes(s)).map(([s, n]) => `${s}:${n}`).join(" ")
    rows.push([name, t.cases, t.requests, t.statuses.get(202) ?? 0, t.statuses.get(400) ?? 0, t.statuses.get(401) ?? 0, t.statuses.get(413) ?? 0, t.statuses.get(415) ?? 0, t.statuses.get(429) ?? 0, other || "-", t.s5xx, t.nonJson, t.connErrors, t.violations, t.acceptedEvents])
    total.cases += t.cases
    total.requests += t.requests
    total.s2xx += t.s2xx
    total.s5xx += t.s5xx
    total.nonJson += t.nonJson
    total.connErrors += t.connErrors
    total.violations += t.violations
    total.acceptedEvents += t.acceptedEvents
    for (const [s, n] of t.statuses) total.statuses.set(s, (total.statuses.get(s) ?? 0) + n)
  }
  const otherTotal = [...total.statuses].filter(([s]) => s < 500 && ![202, 400, 401, 413, 415, 429].includes(s)).sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(" ")
  rows.push(["TOTAL", total.cases, total.requests, total.statuses.get(202) ?? 0, total.statuses.get(400) ?? 0, total.statuses.get(401) ?? 0, total.statuses.get(413) ?? 0, total.statuses.get(415) ?? 0, total.statuses.get(429) ?? 0, otherTotal || "-", total.s5xx, total.nonJson, total.connErrors, total.violations, total.acceptedEvents])
  const line = (cells: Array<string | number>) => cells.map((c, i) => pad(c, widths[i]!, i === 0 || i === 9)).join(" ")
  const sep = widths.map((w) => "-".repeat(w)).join(" ")
  return [line(cols), sep, ...rows.slice(0, -1).map(line), sep, line(rows[rows.length - 1]!)].join("\n")
}

/** One example answer per category and status. */
export const formatExamples = (run: RunResult): string =>
  [...run.examples].sort(([a], [b]) => a.localeCompare(b)).map(([key, text]) => `  ${key}: ${text.replace(/\s+/g, " ")}`).join("\n")

export const connErrorSummary = (run: RunResult): string => {
  const lines: Array<string> = []
  for (const [name, t] of run.tally) {
    if (t.connErrorKinds.size === 0) continue
    lines.push(`  ${name}: ${[...t.connErrorKinds].map(([k, n]) => `${k} ${n}`).join(", ")}`)
    for (const [variant, example] of [...t.connErrorExamples].slice(0, 12)) lines.push(`      ${variant} (e.g. ${example})`)
  }
  return lines.length === 0 ? "  none" : lines.join("\n")
}

/** Groups violations by reason (numbers and ids blanked) and shows examples with the request bytes. */
export const formatViolations = (all: ReadonlyArray<Violation>, cfg: FuzzConfig, pools: Pools, maxExamples = 12): string => {
  if (all.length === 0) return "none"
  const groups = new Map<string, Array<Violation>>()
  for (const v of all) {
    const key = `${v.category}: ${v.reason.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<uuid>").replace(/\d+/g, "N").slice(0, 140)}`
    const g = groups.get(key) ?? []
    g.push(v)
    groups.set(key, g)
  }
  const out: Array<string> = [`${all.length} violation(s) in ${groups.size} group(s):`]
  let shown = 0
  for (const [key, g] of [...groups].sort((a, b) => b[1].length - a[1].length)) {
    out.push(`\n- ${g.length}× ${key}`)
    const ids = [...new Set(g.map((v) => v.id))].filter((id) => id >= 0)
    out.push(`  case ids: ${ids.slice(0, 15).join(", ")}${ids.length > 15 ? ", …" : ""}`)
    const first = g[0]!
    out.push(`  e.g. case ${first.id} (${first.label}): ${first.reason}`)
    if (shown < maxExamples && first.id >= 0) {
      shown++
      const fc = makeCase(cfg, pools, first.id)
      out.push(`  request bytes of case ${first.id} (${fc.bytes.length} bytes; replay: --seed ${cfg.seed} --only ${first.id}):`)
      out.push(printable(fc.bytes, 600).split("\n").map((l) => `    ${l}`).join("\n"))
    }
  }
  return out.join("\n")
}
