/**
 * Fuzz inputs for the collector's HTTP tracking API (docs/api.md), shared by `fuzz/http.ts`
 * (100K requests against a collector child process) and `test/fuzz.test.ts` (a short,
 * fixed-seed run against an in-process collector).
 *
 * Every case is generated from (seed, id) alone — `caseRng(seed, id)` plus pools of
 * Schema-derived bodies sampled once from the seed — so any single case can be rebuilt
 * and replayed (`npx node fuzz/http.ts --seed S --dump ID`). A case is the exact request
 * bytes plus what the answer must be:
 *
 * - `accept`   — well-formed and valid: every answer 202, `events` envelopes stored
 * - `status`   — well-formed: the answer's status is one of `statuses` (JSON body)
 * - `any`      — well-formed: any API answer (202/400/401/413/415/429, JSON body)
 * - `protocol` — malformed at the HTTP level: Node's parser may answer without a JSON
 *                body or close the connection; still never a 5xx, never a stored
 *                event without a 202
 *
 * Every request carries `User-Agent: fuzz/<id>`; the collector stores the user agent in
 * the envelope (`edge.ua`), which ties each stored event back to the request that made it.
 */
import { Arbitrary, Effect, Exit, Schema } from "effect"
import type { EventKind } from "../src/domain/Envelope.ts"
import {
  BatchRequest,
  ConversionRequest,
  EngagementRequest,
  EventRequest,
  FunnelRequest,
  InteractionItem,
  InteractionRequest,
  RegistrationFunnelRequest,
  ViewRequest
} from "../src/domain/Requests.ts"

// ---------------------------------------------------------------------------
// seeded PRNG (sfc32, seeded through splitmix32)

const splitmix32 = (state: number) => () => {
  state = (state + 0x9e3779b9) | 0
  let z = state
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    const sm = splitmix32(seed | 0)
    this.a = sm()
    this.b = sm()
    this.c = sm()
    this.d = sm()
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296
  }

  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(xs: ReadonlyArray<T>): T {
    if (xs.length === 0) throw new Error("pick from an empty list")
    return xs[Math.floor(this.float() * xs.length)]!
  }

  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    let total = 0
    for (const [, w] of entries) total += w
    let r = this.float() * total
    for (const [v, w] of entries) {
      r -= w
      if (r < 0) return v
    }
    return entries[entries.length - 1]![0]
  }
}

/** The PRNG of case `id`: independent of generation order and concurrency. */
export const caseRng = (seed: number, id: number) => new Rng((Math.imul(seed | 0, 0x2545f491) ^ Math.imul(id + 1, 0x9e3779b1)) | 0)

// ---------------------------------------------------------------------------
// configuration, pools

export interface FuzzConfig {
  readonly seed: number
  /** the key the collector accepts (COLLECTOR_WRITE_KEYS) */
  readonly writeKey: string
  readonly maxBodyBytes: number
  readonly maxBatchEvents: number
  /** Host header value, e.g. "127.0.0.1:8787" */
  readonly host: string
}

export const defaultConfig = (seed: number, host: string): FuzzConfig => ({
  seed,
  writeKey: "fuzz-key",
  maxBodyBytes: 262_144,
  maxBatchEvents: 500,
  host
})

export const PATHS: Record<EventKind, string> = {
  view: "/track/view",
  engagement: "/track/engagement",
  interaction: "/track/interaction",
  event: "/track/event",
  batch: "/track/batch",
  conversion: "/track/conversion",
  funnel: "/track/funnel",
  "registration-funnel": "/track/registration-funnel"
}
export const KINDS = Object.keys(PATHS) as ReadonlyArray<EventKind>
export const SINGLE_KINDS: ReadonlyArray<EventKind> = ["view", "engagement", "event", "conversion", "funnel", "registration-funnel"]
export const BATCH_KINDS: ReadonlyArray<EventKind> = ["batch", "interaction"]
const isBatch = (kind: EventKind) => kind === "batch" || kind === "interaction"

const SCHEMAS: Record<EventKind, Schema.Top> = {
  view: ViewRequest,
  engagement: EngagementRequest,
  interaction: InteractionRequest,
  event: EventRequest,
  batch: BatchRequest,
  conversion: ConversionRequest,
  funnel: FunnelRequest,
  "registration-funnel": RegistrationFunnelRequest
}

export interface Pools {
  /** JSON texts of Schema-valid bodies (valid after the JSON round trip too), per endpoint */
  readonly valid: Record<EventKind, ReadonlyArray<string>>
  /** JSON texts of valid batch items: `/track/event` bodies and interaction items */
  readonly eventItems: ReadonlyArray<string>
  readonly interactionItems: ReadonlyArray<string>
  /** arbitrary JSON values (Schema.Json) */
  readonly json: ReadonlyArray<string>
}

const sample = <A>(schema: Schema.Top, count: number, seed: number, size: number) =>
  Effect.runPromise(Arbitrary.sampleEffect(Arbitrary.schema(schema as Schema.Codec<A>) as Arbitrary.Arbitrary<A>, { count, seed, size }))

/** JSON texts of `values` that still decode with `schema` after JSON.stringify → JSON.parse. */
const validTexts = (schema: Schema.Top | undefined, values: ReadonlyArray<unknown>, maxBytes: number): Array<string> => {
  const decode = schema === undefined ? undefined : Schema.decodeUnknownExit(schema as Schema.Codec<unknown>)
  const out: Array<string> = []
  for (const v of values) {
    let text: string | undefined
    try {
      text = JSON.stringify(v)
    } catch {
      continue
    }
    if (text === undefined || Buffer.byteLength(text) > maxBytes) continue
    if (decode !== undefined && !Exit.isSuccess(decode(JSON.parse(text)))) continue
    out.push(text)
  }
  return out
}

/**
 * Samples the pools from the seed with effect's Schema-derived arbitraries
 * (`Arbitrary.schema`), small and large `size` each.
 */
export const makePools = async (seed: number, perKind = 200): Promise<Pools> => {
  const valid = {} as Record<EventKind, ReadonlyArray<string>>
  let k = 0
  for (const kind of KINDS) {
    k++
    const values = [
      ...(await sample(SCHEMAS[kind], perKind, seed * 31 + k, 4)),
      ...(await sample(SCHEMAS[kind], perKind, seed * 37 + k, 24))
    ]
    const texts = validTexts(SCHEMAS[kind], values, 64 * 1024).filter((t) => !isBatch(kind) || (JSON.parse(t).events as Array<unknown>).length <= 500)
    if (texts.length < 10) throw new Error(`pool for ${kind}: only ${texts.length} valid samples`)
    valid[kind] = texts
  }
  const eventItems = validTexts(EventRequest, [
    ...(await sample(EventRequest, perKind, seed * 41 + 1, 4)),
    ...(await sample(EventRequest, perKind, seed * 43 + 1, 16))
  ], 4096)
  const interactionItems = validTexts(InteractionItem, [
    ...(await sample(InteractionItem, perKind, seed * 47 + 1, 4)),
    ...(await sample(InteractionItem, perKind, seed * 53 + 1, 16))
  ], 4096)
  const json = validTexts(undefined, [
    ...(await sample(Schema.Json, perKind * 2, seed * 59 + 1, 8)),
    ...(await sample(Schema.Json, perKind, seed * 61 + 1, 40))
  ], 128 * 1024)
  return { valid, eventItems, interactionItems, json }
}

// ---------------------------------------------------------------------------
// cases

export type Expect =
  | { readonly kind: "accept"; readonly events: number }
  | { readonly kind: "status"; readonly statuses: ReadonlyArray<number> }
  | { readonly kind: "any" }
  | { readonly kind: "protocol"; readonly allowTimeout?: boolean }

export interface FuzzCase {
  readonly id: number
  readonly category: string
  /** the variant, for the report and reproduction */
  readonly label: string
  /** the exact bytes written to the socket (several requests when pipelined) */
  readonly bytes: Buffer
  /** own connection, closed afterwards (malformed framing, early answers) */
  readonly fresh: boolean
  /** non-1xx answers expected; 0 = unknown (read until close / idle) */
  readonly responses: number
  readonly timeoutMs: number
  readonly expect: Expect
  /** the endpoint, when the request targets one (envelopes of this case must have this kind) */
  readonly endpoint?: EventKind
  /**
   * envelopes that may be stored although no 202 reaches the client: a complete, valid
   * request precedes malformed bytes on the same connection, and the answer to the
   * malformed part can overtake (and cut off) the 202
   */
  readonly mayStore?: number
}

/** The answers the API itself gives (docs/api.md, "Errors"); 503 only when Redis is down. */
export const API_STATUSES: ReadonlyArray<number> = [202, 400, 401, 413, 415, 429]

type Headers = Array<readonly [string, string]>

interface RequestSpec {
  readonly method?: string
  readonly target: string
  readonly version?: string
  readonly headers: Headers
  readonly body?: Uint8Array | undefined
  /** "length" (default): Content-Length; "chunked"; "none": neither header */
  readonly framing?: "length" | "chunked" | "none"
  readonly chunks?: ReadonlyArray<number>
  readonly chunkExt?: string
  readonly trailers?: Headers
  /** lines written verbatim after the headers (malformed header lines) */
  readonly rawLines?: ReadonlyArray<string>
}

/** Header names and values are written as latin1, so any byte 0–255 can be sent. */
export const serialize = (r: RequestSpec): Buffer => {
  const body = r.body ?? new Uint8Array(0)
  const framing = r.framing ?? "length"
  const lines = [`${r.method ?? "POST"} ${r.target} ${r.version ?? "HTTP/1.1"}`]
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`)
  for (const line of r.rawLines ?? []) lines.push(line)
  if (framing === "length") lines.push(`Content-Length: ${body.length}`)
  if (framing === "chunked") lines.push("Transfer-Encoding: chunked")
  const head = Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1")
  if (framing !== "chunked") return Buffer.concat([head, body])
  const parts: Array<Buffer> = [head]
  let pos = 0
  let i = 0
  const sizes = r.chunks ?? [body.length]
  while (pos < body.length) {
    const size = Math.max(1, Math.min(sizes[i % sizes.length]!, body.length - pos))
    i++
    parts.push(Buffer.from(`${size.toString(16)}${r.chunkExt ?? ""}\r\n`, "latin1"), Buffer.from(body.subarray(pos, pos + size)), Buffer.from("\r\n"))
    pos += size
  }
  parts.push(Buffer.from("0\r\n", "latin1"))
  for (const [k, v] of r.trailers ?? []) parts.push(Buffer.from(`${k}: ${v}\r\n`, "latin1"))
  parts.push(Buffer.from("\r\n"))
  return Buffer.concat(parts)
}

const utf8 = (s: string) => Buffer.from(s, "utf8")
/** a UTF-8 string as the latin1 "byte string" a raw header line is written with */
const headerBytes = (s: string) => Buffer.from(s, "utf8").toString("latin1")

interface Ctx {
  readonly cfg: FuzzConfig
  readonly pools: Pools
  readonly rng: Rng
  readonly id: number
}

interface StdOptions {
  /** null = no Content-Type header */
  readonly ct?: string | null
  /** null = no X-Write-Key header */
  readonly key?: string | null
  readonly extra?: Headers
}

/** Host, User-Agent (the attribution tag), Content-Type, X-Write-Key, extras. */
const stdHeaders = (c: Ctx, o: StdOptions = {}): Headers => {
  const h: Headers = [["Host", c.cfg.host], ["User-Agent", `fuzz/${c.id}`]]
  if (o.ct !== null) h.push(["Content-Type", o.ct ?? "application/json"])
  if (o.key !== null) h.push(["X-Write-Key", o.key ?? c.cfg.writeKey])
  for (const e of o.extra ?? []) h.push(e)
  return h
}

interface Draft {
  readonly label: string
  readonly bytes: Buffer
  readonly expect: Expect
  readonly fresh?: boolean
  readonly responses?: number
  readonly timeoutMs?: number
  readonly endpoint?: EventKind
  readonly mayStore?: number
}

/** A well-formed POST of `body` to `kind`'s endpoint (Content-Length framing unless told). */
const post = (c: Ctx, kind: EventKind, body: Uint8Array | string, o: StdOptions & {
  readonly query?: string
  readonly framing?: "length" | "chunked"
  readonly chunks?: ReadonlyArray<number>
  readonly chunkExt?: string
  readonly trailers?: Headers
} = {}): Buffer =>
  serialize({
    target: PATHS[kind] + (o.query ?? ""),
    headers: stdHeaders(c, o),
    body: typeof body === "string" ? utf8(body) : body,
    framing: o.framing ?? "length",
    ...(o.chunks !== undefined ? { chunks: o.chunks } : {}),
    ...(o.chunkExt !== undefined ? { chunkExt: o.chunkExt } : {}),
    ...(o.trailers !== undefined ? { trailers: o.trailers } : {})
  })

const accept = (events: number): Expect => ({ kind: "accept", events })
const status = (...statuses: Array<number>): Expect => ({ kind: "status", statuses })
const ANY: Expect = { kind: "any" }
const PROTOCOL: Expect = { kind: "protocol" }
const eventsOf = (kind: EventKind, body: unknown) => isBatch(kind) ? ((body as { events: Array<unknown> }).events.length) : 1

/** A valid body of `kind` from the pool, parsed (a fresh object each time). */
const validBody = (c: Ctx, kind: EventKind): Record<string, unknown> => JSON.parse(c.rng.pick(c.pools.valid[kind]))

/** Minimal valid bodies per endpoint. */
const base = (kind: EventKind): Record<string, unknown> => {
  switch (kind) {
    case "view":
      return { sessionId: "s-view" }
    case "engagement":
      return { userId: "u-1", metricType: "like" }
    case "event":
      return { eventType: "click", sessionId: "s-event" }
    case "conversion":
      return { conversionType: "purchase", sessionId: "s-conv" }
    case "funnel":
      return { funnelId: "f-1", stepId: "step-1", stepOrder: 0, sessionId: "s-funnel" }
    case "registration-funnel":
      return { event: "visit", sessionId: "s-reg", timestamp: "2026-01-01T00:00:00Z" }
    case "batch":
      return { events: [{ eventType: "click", sessionId: "s-b" }] }
    case "interaction":
      return { events: [{ type: "click", sessionId: "s-i" }] }
  }
}

/** Sets an own enumerable key even when it is `__proto__` (so JSON.stringify writes it). */
const setKey = (obj: Record<string, unknown>, key: string, value: unknown) => {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  return obj
}

/** JSON text of `value` with placeholder strings replaced by raw JSON text (tokens JSON.stringify cannot write). */
const withRaw = (value: unknown, raw: Record<string, string>): string => {
  let text = JSON.stringify(value)
  for (const [placeholder, token] of Object.entries(raw)) text = text.split(JSON.stringify(placeholder)).join(token)
  return text
}

/** JSON bytes of `value` with `marker` (inside some string) replaced by raw `bytes`. */
const withBytes = (value: unknown, marker: string, bytes: ReadonlyArray<number>): Buffer => {
  const text = JSON.stringify(value)
  const at = text.indexOf(marker)
  if (at < 0) throw new Error(`marker ${marker} not in ${text.slice(0, 100)}`)
  return Buffer.concat([utf8(text.slice(0, at)), Buffer.from(bytes), utf8(text.slice(at + marker.length))])
}

// -- random strings and JSON -------------------------------------------------

const WEIRD_CHARS = [
  "\u0000", "\u0001", "\u001f", "\u007f", "\u0080", "\u00a0", "\u00ff", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff",
  "\ud800", "\udbff", "\udc00", "\udfff", "😀", "𝕏", "é", "ß", "中", "ع", "\u202e", "\u200b", "\\", "\"", "/", "<", ">", "'", "%", "&", "{", "}", "\n", "\r", "\t"
]
const PROTO_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "__defineGetter__", "__lookupGetter__", "isPrototypeOf"]

const randomString = (rng: Rng, maxLen: number): string => {
  const len = rng.weighted<number>([[0, 1], [rng.int(1, 8), 6], [rng.int(1, maxLen), 3]])
  let s = ""
  const mode = rng.int(0, 3)
  for (let i = 0; i < len; i++) {
    if (mode === 0) s += String.fromCharCode(rng.int(0x20, 0x7e))
    else if (mode === 1) s += rng.pick(WEIRD_CHARS)
    else if (mode === 2) s += String.fromCharCode(rng.int(0, 0xffff))
    else s += rng.chance(0.5) ? String.fromCharCode(rng.int(0x61, 0x7a)) : rng.pick(WEIRD_CHARS)
  }
  return s
}

const FIELD_NAMES = [
  "sessionId", "userId", "pageUrl", "contentId", "eventType", "metricType", "events", "metadata", "timestamp", "type", "data",
  "conversionType", "value", "currency", "funnelId", "stepId", "stepOrder", "event", "clientDevice", "attribution", "referrer",
  "targetId", "targetType", "duration", "app", "contentType", "route", "audience"
]

const randomNumber = (rng: Rng): number =>
  rng.pick([0, -0, 1, -1, 0.5, 1e21, -1e21, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, Number.MAX_VALUE, Number.MIN_VALUE, rng.int(-1e6, 1e6), rng.float() * 1e10])

const randomJson = (rng: Rng, depth: number): unknown => {
  const t = depth <= 0 ? rng.int(0, 3) : rng.int(0, 5)
  switch (t) {
    case 0:
      return null
    case 1:
      return rng.chance(0.5)
    case 2:
      return randomNumber(rng)
    case 3:
      return randomString(rng, 40)
    case 4: {
      const n = rng.int(0, 6)
      const a: Array<unknown> = []
      for (let i = 0; i < n; i++) a.push(randomJson(rng, depth - 1))
      return a
    }
    default: {
      const n = rng.int(0, 6)
      const o: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) {
        const key = rng.weighted<string>([[rng.pick(FIELD_NAMES), 5], [rng.pick(PROTO_KEYS), 1], [randomString(rng, 12), 2]])
        setKey(o, key, randomJson(rng, depth - 1))
      }
      return o
    }
  }
}

// -- field tables --------------------------------------------------------------

type FieldType = "id" | "str" | "num" | "int" | "obj" | "ts" | "lit" | "cur" | "arr"
interface Field {
  readonly name: string
  readonly type: FieldType
  readonly required: boolean
  /** max length in UTF-16 code units (string fields) */
  readonly cap?: number
}
const F = (name: string, type: FieldType, required: boolean, cap?: number): Field => cap === undefined ? { name, type, required } : { name, type, required, cap }

const FIELDS: Record<EventKind, ReadonlyArray<Field>> = {
  view: [
    F("sessionId", "id", false, 128), F("pageUrl", "str", false, 4096), F("contentId", "id", false, 128), F("contentType", "str", false, 512),
    F("app", "str", false, 512), F("duration", "num", false), F("referrer", "str", false, 4096), F("userId", "id", false, 128),
    F("metadata", "obj", false), F("clientDevice", "obj", false), F("attribution", "obj", false)
  ],
  engagement: [F("userId", "id", true, 128), F("metricType", "id", true, 89 /* engagement_<metricType> ≤ 100 */), F("targetId", "id", false, 128), F("targetType", "str", false, 512), F("metadata", "obj", false)],
  event: [F("eventType", "id", true, 100), F("sessionId", "id", false, 128), F("userId", "id", false, 128), F("pageUrl", "str", false, 4096), F("metadata", "obj", false), F("timestamp", "ts", false, 64)],
  conversion: [F("conversionType", "id", true, 100), F("sessionId", "id", false, 128), F("userId", "id", false, 128), F("value", "num", false), F("currency", "cur", false), F("metadata", "obj", false)],
  funnel: [F("funnelId", "id", true, 128), F("stepId", "id", true, 128), F("stepOrder", "int", true), F("sessionId", "id", false, 128), F("userId", "id", false, 128), F("metadata", "obj", false)],
  "registration-funnel": [
    F("event", "lit", true), F("sessionId", "id", false, 128), F("timestamp", "str", true, 64), F("userId", "id", false, 128), F("route", "str", false, 4096),
    F("audience", "str", false, 512), F("userType", "str", false, 512), F("registrationPath", "str", false, 512), F("registrationType", "str", false, 512),
    F("entryReferrer", "str", false, 4096), F("referrer", "str", false, 4096)
  ],
  batch: [F("events", "arr", true)],
  interaction: [F("events", "arr", true)]
}
/** The field a case corrupts or duplicates: the first required one (of `type`), else `sessionId`, optional since the visits model but still checked when sent. */
const keyField = (kind: EventKind, type?: FieldType): Field =>
  FIELDS[kind].find((f) => f.required && (type === undefined || f.type === type)) ?? FIELDS[kind].find((f) => f.name === "sessionId")!

const ITEM_FIELDS: Record<"batch" | "interaction", ReadonlyArray<Field>> = {
  batch: FIELDS.event,
  interaction: [F("type", "id", true, 100), F("sessionId", "id", false, 128), F("userId", "id", false, 128), F("data", "obj", false), F("timestamp", "ts", false, 64)]
}

/** A value that is certainly not of `type`. */
const wrongValue = (rng: Rng, type: FieldType): unknown => {
  switch (type) {
    case "id":
    case "str":
      return rng.pick<unknown>([1, 0, -1.5, true, false, null, [], {}, ["x"], { toString: "x" }, { length: 3 }, [[[]]]])
    case "num":
      return rng.pick<unknown>(["1", "", "NaN", true, null, [], {}, [1], { valueOf: 1 }])
    case "int":
      return rng.pick<unknown>([1.5, -1, -0.5, "1", "", true, null, [], {}, [0]])
    case "obj":
      return rng.pick<unknown>(["x", "", 1, 0, true, false, null])
    case "ts":
      return rng.pick<unknown>([true, false, null, [], {}, [1], { t: 1 }, "x".repeat(65)])
    case "lit":
      return rng.pick<unknown>(["VISIT", "", "visit ", " visit", "signup\u0000", "Signup", "register", 1, null, true, ["visit"], {}])
    case "cur":
      return rng.pick<unknown>(["US", "USDD", "U$D", "12A", "", "us d", "€€€", 840, null, true, ["USD"]])
    case "arr":
      return rng.pick<unknown>(["x", "", 1, true, null, {}, { length: 1, 0: {} }, { events: [] }])
  }
}

// -- content types ---------------------------------------------------------------

/** docs/api.md: application/json or text/plain (any +json type too); parameters and case ignored. */
export const acceptsContentType = (value: string | undefined): boolean => {
  if (value === undefined) return false
  const mime = value.split(";")[0]!.trim().toLowerCase()
  return mime === "application/json" || mime === "text/plain" || (mime.startsWith("application/") && mime.endsWith("+json"))
}

const CONTENT_TYPES: ReadonlyArray<string> = [
  "", "application/json", "APPLICATION/JSON", "Application/Json; Charset=UTF-8", "application/json;charset=utf-16", "application/json; charset=utf-16le",
  "text/plain", "text/plain; charset=us-ascii", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=fuzzbnd",
  "application/xml", "text/xml", "text/html", "application/ld+json", "application/vnd.api+json", "application/+json", "application/jsonp",
  "application/json5", "json", "application/*", "*/*", "application/json, text/plain", "text/json", "application/javascript", "image/png",
  "garbage;;;;", ";application/json", "application/json\t", "application/ json", "application /json", "\u00e9\u00ff", "application/octet-stream",
  "application/json;", "application/json; boundary=x; charset=\"utf-8\"", "text/plain ; x=y", "text/plainx", "application/jsonx", "x-application/json",
  "application/x-json", "application/csp-report", "application/reports+json", "text/event-stream", "application/json\u0000"
]

// -- categories --------------------------------------------------------------

type Gen = (c: Ctx) => Draft

const QUERY_KEY = (c: Ctx) => `?writeKey=${encodeURIComponent(c.cfg.writeKey)}`

/** valid body, right key (mostly as header), accepted content type */
const validSingle: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const ct = c.rng.weighted<string>([["application/json", 70], ["text/plain", 10], ["text/plain;charset=UTF-8", 5], ["application/json; charset=utf-8", 10], ["application/vnd.fuzz+json", 5]])
  const inQuery = c.rng.chance(0.1)
  return {
    label: `${kind} ct=${ct}${inQuery ? " key=query" : ""}`,
    bytes: post(c, kind, c.rng.pick(c.pools.valid[kind]), { ct, ...(inQuery ? { key: null, query: QUERY_KEY(c) } : {}) }),
    expect: accept(1),
    endpoint: kind
  }
}

const validBatch: Gen = (c) => {
  const kind = c.rng.pick(BATCH_KINDS)
  if (c.rng.chance(0.4)) {
    const text = c.rng.pick(c.pools.valid[kind])
    return { label: `${kind} pool`, bytes: post(c, kind, text), expect: accept(eventsOf(kind, JSON.parse(text))), endpoint: kind }
  }
  const n = c.rng.weighted<number>([[0, 5], [c.rng.int(1, 10), 50], [c.rng.int(11, 100), 30], [c.rng.int(101, 499), 5]])
  const items = kind === "batch" ? c.pools.eventItems : c.pools.interactionItems
  const chosen: Array<string> = []
  let size = 20
  for (let i = 0; i < n; i++) {
    const t = c.rng.pick(items)
    if (size + t.length + 1 > c.cfg.maxBodyBytes * 0.8) break
    chosen.push(t)
    size += t.length + 1
  }
  return { label: `${kind} n=${chosen.length}`, bytes: post(c, kind, `{"events":[${chosen.join(",")}]}`), expect: accept(chosen.length), endpoint: kind }
}

const batchLimit: Gen = (c) => {
  const kind = c.rng.pick(BATCH_KINDS)
  const n = c.rng.pick([c.cfg.maxBatchEvents, c.cfg.maxBatchEvents, c.cfg.maxBatchEvents + 1, c.cfg.maxBatchEvents + 2, 1000, 5000])
  const invalidItems = n > c.cfg.maxBatchEvents && c.rng.chance(0.3)
  const item = (i: number) =>
    invalidItems ? { nope: i } : kind === "batch" ? { eventType: "bulk", sessionId: `s${i}` } : { type: "scroll", sessionId: `s${i}` }
  const body = JSON.stringify({ events: Array.from({ length: n }, (_, i) => item(i)) })
  const bytes = Buffer.byteLength(body)
  return {
    label: `${kind} n=${n}${invalidItems ? " invalid-items" : ""}`,
    bytes: post(c, kind, body),
    expect: bytes > c.cfg.maxBodyBytes ? status(413) : n <= c.cfg.maxBatchEvents ? accept(n) : status(400),
    endpoint: kind
  }
}

const randomJsonGen: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  let value: unknown = c.rng.chance(0.5) ? JSON.parse(c.rng.pick(c.pools.json)) : randomJson(c.rng, c.rng.int(0, 5))
  if (c.rng.chance(0.3)) value = { events: [value, randomJson(c.rng, 2)] }
  return { label: `${kind} random json`, bytes: post(c, kind, JSON.stringify(value) ?? "null"), expect: ANY, endpoint: kind }
}

const wrongTypes: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const body = validBody(c, kind)
  if (c.rng.chance(0.15)) {
    // unknown extra fields are ignored
    for (let i = c.rng.int(1, 5); i > 0; i--) {
      const key = c.rng.chance(0.5) ? `x_${randomString(c.rng, 10)}` : `extra${i}`
      if (!FIELDS[kind].some((f) => f.name === key)) setKey(body, key, randomJson(c.rng, 3))
    }
    return { label: `${kind} unknown extra fields`, bytes: post(c, kind, JSON.stringify(body)), expect: accept(eventsOf(kind, body)), endpoint: kind }
  }
  const changed: Array<string> = []
  if (isBatch(kind) && c.rng.chance(0.6) && (body.events as Array<unknown>).length > 0) {
    const events = body.events as Array<Record<string, unknown>>
    const idx = c.rng.int(0, events.length - 1)
    const f = c.rng.pick(ITEM_FIELDS[kind as "batch" | "interaction"])
    events[idx]![f.name] = wrongValue(c.rng, f.type)
    changed.push(`events[${idx}].${f.name}`)
  } else {
    for (let i = c.rng.int(1, 3); i > 0; i--) {
      const f = c.rng.pick(FIELDS[kind])
      body[f.name] = wrongValue(c.rng, f.type)
      changed.push(f.name)
    }
  }
  return { label: `${kind} wrong type: ${changed.join(",")}`, bytes: post(c, kind, JSON.stringify(body)), expect: status(400), endpoint: kind }
}

/** strings at, under and over their caps (docs/api.md: ids ≤ 128, URLs ≤ 4096, event types ≤ 100, texts ≤ 512, timestamps ≤ 64) */
const stringCaps: Gen = (c) => {
  const nested = c.rng.chance(0.15)
  if (nested) {
    const which = c.rng.pick(["utmSource", "utmCampaign", "referrer", "language", "languages"])
    const body = base("view")
    if (which === "languages") {
      const n = c.rng.pick([0, 1, 31, 32, 33, 100])
      body.clientDevice = { languages: Array.from({ length: n }, () => "en") }
      return { label: `view clientDevice.languages n=${n}`, bytes: post(c, "view", JSON.stringify(body)), expect: n <= 32 ? accept(1) : status(400), endpoint: "view" }
    }
    const cap = which === "referrer" ? 4096 : 512
    const len = c.rng.pick([0, cap - 1, cap, cap + 1])
    if (which === "language") body.clientDevice = { language: "a".repeat(len) }
    else body.attribution = { [which]: "a".repeat(len) }
    return { label: `view ${which} len=${len}`, bytes: post(c, "view", JSON.stringify(body)), expect: len <= cap ? accept(1) : status(400), endpoint: "view" }
  }
  const kind = c.rng.pick(KINDS)
  const inItem = isBatch(kind)
  const fields = (inItem ? ITEM_FIELDS[kind as "batch" | "interaction"] : FIELDS[kind]).filter((f) => f.cap !== undefined)
  const f = c.rng.pick(fields)
  const cap = f.cap!
  const unit = c.rng.weighted<string>([["a", 8], ["é", 1], ["😀", 1]])
  const unitLen = unit.length // UTF-16 code units
  const target = c.rng.pick([0, 1, cap - 1, cap, cap + 1, cap * 2, 100_000])
  const count = Math.max(0, Math.floor(target / unitLen))
  const value = unit.repeat(count)
  const body = base(kind)
  if (inItem) (body.events as Array<Record<string, unknown>>)[0]![f.name] = value
  else body[f.name] = value
  const text = JSON.stringify(body)
  const units = value.length
  const ok = units <= cap && !(f.type === "id" && units === 0)
  const expect = Buffer.byteLength(text) > c.cfg.maxBodyBytes ? status(413) : ok ? accept(1) : status(400)
  return { label: `${kind} ${inItem ? "events[0]." : ""}${f.name} ${JSON.stringify(unit)}×${count} (${units} units, cap ${cap})`, bytes: post(c, kind, text), expect, endpoint: kind }
}

/**
 * metadata around its 16 KiB cap (serialized UTF-8 bytes), on every endpoint that takes it;
 * views, engagements, conversions and funnel steps also get the fields the collector
 * merges into metadata, so the stored metadata may be larger than the one sent.
 */
/** The metadata docs/api.md says is stored for `body` on `kind` (sent metadata + merged fields). */
const storedMetadata = (kind: EventKind, body: Record<string, unknown>, meta: Record<string, unknown>): Record<string, unknown> => {
  const pick = (...keys: Array<string>) => Object.fromEntries(keys.filter((k) => body[k] !== undefined).map((k) => [k, body[k]]))
  switch (kind) {
    case "view":
      return { ...meta, ...pick("contentType", "app", "duration") }
    case "engagement":
      return { ...meta, ...pick("metricType", "targetId", "targetType") }
    case "conversion":
      return {
        ...meta,
        ...pick("conversionType", "value"),
        ...(typeof body.currency === "string" ? { currency: body.currency.toUpperCase() } : {})
      }
    case "funnel":
      return { ...meta, ...pick("funnelId", "stepId", "stepOrder") }
    default:
      return meta
  }
}

const metadataCaps: Gen = (c) => {
  const kind = c.rng.pick<EventKind>(["view", "engagement", "event", "conversion", "funnel", "batch", "interaction"])
  const target = c.rng.pick([16_384 - 200, 16_383, 16_384, 16_384, 16_385, 20_000])
  const unit = c.rng.weighted<string>([["x", 6], ["é", 2], ["\u0000", 1], ["😀", 1]])
  const unitBytes = Buffer.byteLength(JSON.stringify(unit)) - 2
  const meta: Record<string, string> = { p: "" }
  const room = target - Buffer.byteLength(JSON.stringify(meta))
  meta.p = unit.repeat(Math.floor(room / unitBytes)) + "x".repeat(room % unitBytes)
  const size = Buffer.byteLength(JSON.stringify(meta))
  const body = base(kind)
  const merged = c.rng.chance(0.5)
  if (kind === "batch") (body.events as Array<Record<string, unknown>>)[0]!.metadata = meta
  else if (kind === "interaction") (body.events as Array<Record<string, unknown>>)[0]!.data = meta
  else body.metadata = meta
  if (merged) {
    if (kind === "view") Object.assign(body, { app: "fuzz-app", contentType: "article", duration: 12.5 })
    if (kind === "engagement") Object.assign(body, { targetId: "t-1", targetType: "post" })
    if (kind === "conversion") Object.assign(body, { value: 9.99, currency: "eur" })
  }
  // docs/api.md: the stored metadata is the sent one plus the endpoint's merged fields; the
  // envelope caps the stored one, so the collector must refuse what would not fit
  const stored = Buffer.byteLength(JSON.stringify(storedMetadata(kind, body, meta)))
  return {
    label: `${kind} metadata ${size} bytes (${JSON.stringify(unit)})${merged ? " + merged fields" : ""}, ${stored} stored`,
    bytes: post(c, kind, JSON.stringify(body)),
    expect: size <= 16_384 && stored <= 16_384 ? accept(1) : status(400),
    endpoint: kind
  }
}

const deepText = (rng: Rng, depth: number): string => {
  const shape = rng.int(0, 2)
  if (shape === 0) return "[".repeat(depth) + "]".repeat(depth)
  if (shape === 1) return "{\"a\":".repeat(depth) + "null" + "}".repeat(depth)
  const half = Math.floor(depth / 2)
  return "[{\"a\":".repeat(half) + "0" + "}]".repeat(half)
}

const deepNesting: Gen = (c) => {
  const depth = c.rng.pick([64, 1000, 8000, 10_000, 50_000, 130_000])
  const deep = deepText(c.rng, depth)
  const where = c.rng.pick(["top", "field", "metadata", "events", "event-item", "extra"])
  // a deep body at the top must lack a required field to be a 400: not a view, which has none
  const kind = where === "events" || where === "event-item"
    ? c.rng.pick(BATCH_KINDS)
    : c.rng.pick(SINGLE_KINDS.filter((k) => k !== "registration-funnel" && (where !== "top" || k !== "view")))
  const b = base(kind)
  const P = "\u0001DEEP\u0001"
  let text: string
  let ok = false
  if (where === "top") text = deep
  else if (where === "field") {
    b[keyField(kind).name] = P
    text = withRaw(b, { [P]: deep })
  } else if (where === "metadata") {
    b.metadata = { d: P }
    text = withRaw(b, { [P]: deep })
    ok = Buffer.byteLength(`{"d":${deep}}`) <= 16_384
    // small but thousands deep: the collector's size check serializes it, which may run
    // out of stack and reject it — a 400 is fine there, a 202 too
    if (ok && depth > 1000) {
      return { label: `${kind} depth ${depth} in metadata (${deep.slice(0, 6)}…, ≤ 16 KiB)`, bytes: post(c, kind, text), expect: status(202, 400), endpoint: kind }
    }
  } else if (where === "events") text = withRaw({ events: P }, { [P]: deep })
  else if (where === "event-item") text = withRaw({ events: [P] }, { [P]: deep })
  else {
    b.extra = P
    text = withRaw(b, { [P]: deep })
    ok = true
  }
  const tooBig = Buffer.byteLength(text) > c.cfg.maxBodyBytes
  return {
    label: `${kind} depth ${depth} in ${where} (${deep.slice(0, 6)}…)`,
    bytes: post(c, kind, text),
    expect: tooBig ? status(413) : ok ? accept(1) : status(400),
    endpoint: kind
  }
}

const BAD_UTF8: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
  ["0xFF", [0xff]], ["0xFE", [0xfe]], ["lone continuation 0x80", [0x80]], ["0xBF", [0xbf]], ["overlong '/' C0 AF", [0xc0, 0xaf]],
  ["overlong NUL C0 80", [0xc0, 0x80]], ["overlong E0 80 AF", [0xe0, 0x80, 0xaf]], ["UTF-8 of lone surrogate U+D800 (ED A0 80)", [0xed, 0xa0, 0x80]],
  ["UTF-8 of lone surrogate U+DFFF (ED BF BF)", [0xed, 0xbf, 0xbf]], ["surrogate pair as CESU-8", [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]],
  ["above U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80]], ["F5 80 80 80", [0xf5, 0x80, 0x80, 0x80]], ["truncated emoji F0 9F 98", [0xf0, 0x9f, 0x98]],
  ["truncated 2-byte C3", [0xc3]], ["5-byte F8 88 80 80 80", [0xf8, 0x88, 0x80, 0x80, 0x80]], ["latin1 é (E9)", [0xe9]], ["C2 followed by ASCII", [0xc2, 0x41]]
]

const badUtf8: Gen = (c) => {
  const variant = c.rng.int(0, 9)
  if (variant === 0) {
    // the whole body in UTF-16 (with or without BOM), declared or not
    const kind = c.rng.pick(SINGLE_KINDS)
    const text = JSON.stringify(base(kind))
    const be = c.rng.chance(0.5)
    const bom = c.rng.chance(0.5)
    const le = Buffer.from(text, "utf16le")
    const body = be ? Buffer.from(le).swap16() : le
    const withBom = bom ? Buffer.concat([Buffer.from(be ? [0xfe, 0xff] : [0xff, 0xfe]), body]) : body
    return {
      label: `${kind} UTF-16${be ? "BE" : "LE"}${bom ? " BOM" : ""} body`,
      bytes: post(c, kind, withBom, { ct: c.rng.pick(["application/json; charset=utf-16", "application/json", "text/plain; charset=utf-16"]) }),
      expect: status(400),
      endpoint: kind
    }
  }
  const [name, seq] = c.rng.pick(BAD_UTF8)
  const kind = c.rng.pick(KINDS)
  const b = base(kind)
  const M = "\u0001M\u0001"
  const where = c.rng.pick(["value", "key", "metadata", "between-tokens", "end"])
  if (where === "value" || where === "between-tokens" || where === "end") {
    if (isBatch(kind)) (b.events as Array<Record<string, unknown>>)[0]!.sessionId = `a${M}b`
    else b[FIELDS[kind].find((f) => f.type === "id")!.name] = `a${M}b`
  } else if (where === "key") setKey(b, `k${M}`, 1)
  else b.metadata = { [`m${M}`]: `v${M}` }
  let body: Buffer
  if (where === "between-tokens") {
    // drop the marker from the string; put the bytes after the first '{'
    const text = JSON.stringify(b).replace(JSON.stringify(M).slice(1, -1), "")
    body = Buffer.concat([utf8("{"), Buffer.from(seq), utf8(text.slice(1))])
  } else if (where === "end") {
    const text = JSON.stringify(b).replace(JSON.stringify(M).slice(1, -1), "")
    body = Buffer.concat([utf8(text), Buffer.from(seq)])
  } else {
    body = withBytes(b, JSON.stringify(M).slice(1, -1), seq)
    // metadata has the marker twice (key and value); replace the second too
    const second = body.indexOf(utf8(JSON.stringify(M).slice(1, -1)))
    if (second >= 0) body = Buffer.concat([body.subarray(0, second), Buffer.from(seq), body.subarray(second + Buffer.byteLength(JSON.stringify(M).slice(1, -1)))])
  }
  return { label: `${kind} ${name} in ${where}`, bytes: post(c, kind, body), expect: status(400), endpoint: kind }
}

const nulBytes: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const b = base(kind)
  const variant = c.rng.int(0, 4)
  const idField = FIELDS[kind].find((f) => f.type === "id")!.name
  if (variant === 0) {
    // escaped \u0000 in strings: valid JSON, valid strings
    b[idField] = `\u0000nul\u0000`
    if (kind !== "registration-funnel") b.metadata = { "\u0000": "\u0000", k: "a\u0000b" }
    return { label: `${kind} escaped \\u0000 in ${idField} and metadata`, bytes: post(c, kind, JSON.stringify(b)), expect: accept(1), endpoint: kind }
  }
  if (variant === 1) {
    b[idField] = "a\u0001M\u0001b"
    return { label: `${kind} raw NUL inside ${idField}`, bytes: post(c, kind, withBytes(b, "\\u0001M\\u0001", [0])), expect: status(400), endpoint: kind }
  }
  if (variant === 2) {
    const text = utf8(JSON.stringify(b))
    const at = c.rng.int(0, text.length)
    return { label: `${kind} raw NUL at byte ${at}`, bytes: post(c, kind, Buffer.concat([text.subarray(0, at), Buffer.from([0]), text.subarray(at)])), expect: status(400), endpoint: kind }
  }
  if (variant === 3) {
    const n = c.rng.pick([1, 16, 4096])
    return { label: `${kind} body of ${n} NUL bytes`, bytes: post(c, kind, Buffer.alloc(n)), expect: status(400), endpoint: kind }
  }
  // a NUL in a (non-tag) header value — Node's parser rejects it
  return {
    label: `${kind} NUL in a header value`,
    bytes: post(c, kind, JSON.stringify(b), { extra: [["X-Note", "a\u0000b"]] }),
    expect: PROTOCOL,
    fresh: true,
    responses: 0,
    endpoint: kind
  }
}

const LONE = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud800\ud800", "\udc00\ud800", "x\ud83d", "\ude00y", "\ud83d\ude00\ud800"]

const loneSurrogates: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const b = base(kind)
  const s = c.rng.pick(LONE)
  const where = c.rng.pick(["id", "metadata-key", "metadata-value", "all"])
  const target = isBatch(kind) ? (b.events as Array<Record<string, unknown>>)[0]! : b
  const fields = isBatch(kind) ? ITEM_FIELDS[kind as "batch" | "interaction"] : FIELDS[kind]
  if (where === "id" || where === "all") for (const f of fields.filter((f) => f.type === "id")) target[f.name] = `${f.name}${s}`
  const metaKey = kind === "interaction" ? "data" : "metadata"
  if (kind !== "registration-funnel" && (where === "metadata-key" || where === "all")) target[metaKey] = { [s]: 1, [`k${s}`]: [s] }
  if (kind !== "registration-funnel" && where === "metadata-value") target[metaKey] = { v: s, nested: { deeper: [s, `${s}${s}`] } }
  if (kind === "view" && where === "all") Object.assign(b, { pageUrl: `/p${s}`, referrer: `r${s}`, attribution: { utmSource: s } })
  return { label: `${kind} ${JSON.stringify(s)} in ${where}`, bytes: post(c, kind, JSON.stringify(b)), expect: accept(1), endpoint: kind }
}

type NumField = { readonly kind: EventKind; readonly path: ReadonlyArray<string | number>; readonly type: "num" | "int" | "ts" | "meta" }
const NUM_FIELDS: ReadonlyArray<NumField> = [
  { kind: "view", path: ["duration"], type: "num" },
  { kind: "view", path: ["clientDevice", "screenWidth"], type: "num" },
  { kind: "view", path: ["clientDevice", "pixelRatio"], type: "num" },
  { kind: "conversion", path: ["value"], type: "num" },
  { kind: "funnel", path: ["stepOrder"], type: "int" },
  { kind: "event", path: ["timestamp"], type: "ts" },
  { kind: "interaction", path: ["events", 0, "timestamp"], type: "ts" },
  { kind: "batch", path: ["events", 0, "timestamp"], type: "ts" },
  { kind: "event", path: ["metadata", "n"], type: "meta" },
  { kind: "conversion", path: ["metadata", "n"], type: "meta" }
]

/** [token, JSON.parse accepts it, value] */
const NUMBER_TOKENS: ReadonlyArray<readonly [string, boolean, number]> = [
  ["1e400", true, Infinity], ["-1e400", true, -Infinity], ["1.8e308", true, Infinity], ["-0", true, -0], ["-0.0", true, -0], ["1e-400", true, 0],
  ["5e-324", true, 5e-324], ["1.7976931348623157e308", true, 1.7976931348623157e308], ["123456789012345678901234567890", true, 1.2345678901234568e29],
  ["9007199254740993", true, 9007199254740992], ["-9007199254740993", true, -9007199254740992], ["0.1e1", true, 1], ["1E5", true, 1e5], ["1e+5", true, 1e5],
  ["-1", true, -1], ["1.5", true, 1.5], ["0", true, 0], ["42", true, 42], ["1700000000000", true, 1700000000000],
  ["NaN", false, NaN], ["Infinity", false, NaN], ["-Infinity", false, NaN], ["0x10", false, NaN], ["01", false, NaN], ["1.", false, NaN], [".5", false, NaN],
  ["+1", false, NaN], ["1e", false, NaN], ["--1", false, NaN], ["1_000", false, NaN], ["\u0661", false, NaN], ["1 2", false, NaN], ["0.0.1", false, NaN]
]

const numbers: Gen = (c) => {
  const field = c.rng.pick(NUM_FIELDS)
  const [token, parses, value] = c.rng.pick(NUMBER_TOKENS)
  const b = base(field.kind)
  const P = "\u0001NUM\u0001"
  let target: Record<string, unknown> | Array<unknown> = b
  for (const seg of field.path.slice(0, -1)) {
    const next = (target as Record<string, unknown>)[seg as string] ?? {}
    ;(target as Record<string, unknown>)[seg as string] = next
    target = next as Record<string, unknown>
  }
  ;(target as Record<string | number, unknown>)[field.path[field.path.length - 1]!] = P
  let expect: Expect
  if (!parses) expect = status(400)
  else if (field.type === "meta") expect = accept(1)
  else if (!Number.isFinite(value)) expect = status(400)
  else if (field.type === "int") {
    // integer ≥ 0: -0 and integers beyond 2^53 are debatable, so either answer is fine
    if (Object.is(value, -0) || !Number.isSafeInteger(value)) expect = Number.isInteger(value) && value >= 0 ? status(202, 400) : status(400)
    else expect = value >= 0 ? accept(1) : status(400)
  } else expect = accept(1)
  return { label: `${field.kind} ${field.path.join(".")} = ${token}`, bytes: post(c, field.kind, withRaw(b, { [P]: token })), expect, endpoint: field.kind }
}

const protoKeys: Gen = (c) => {
  const variant = c.rng.int(0, 6)
  const kind = c.rng.pick(SINGLE_KINDS)
  const b = validBody(c, kind)
  const key = c.rng.pick(PROTO_KEYS)
  switch (variant) {
    case 0: {
      setKey(b, key, c.rng.pick<unknown>([{ isView: true, admin: true, eventType: "pwned" }, "x", 1, null, [], { prototype: { polluted: "yes" } }]))
      return { label: `${kind} top-level ${key}`, bytes: post(c, kind, JSON.stringify(b)), expect: accept(1), endpoint: kind }
    }
    case 1: {
      // a required field present only inside __proto__: must not be found through the prototype
      if (!FIELDS[kind].some((f) => f.required)) return protoKeys({ ...c, rng: new Rng(c.rng.u32()) })
      const f = FIELDS[kind].find((f) => f.required)!
      const value = b[f.name]
      delete b[f.name]
      setKey(b, "__proto__", { [f.name]: value })
      return { label: `${kind} required ${f.name} only under __proto__`, bytes: post(c, kind, JSON.stringify(b)), expect: status(400), endpoint: kind }
    }
    case 2: {
      if (kind === "registration-funnel") return protoKeys({ ...c, rng: new Rng(c.rng.u32()) })
      const meta: Record<string, unknown> = {}
      setKey(meta, "__proto__", { polluted: "yes", toString: "x" })
      setKey(meta, "constructor", { prototype: { polluted: "yes" } })
      setKey(meta, key, { [key]: { [key]: 1 } })
      b.metadata = meta
      return { label: `${kind} metadata with __proto__/constructor/${key}`, bytes: post(c, kind, JSON.stringify(b)), expect: accept(1), endpoint: kind }
    }
    case 3: {
      const bk = c.rng.pick(BATCH_KINDS)
      const body = JSON.parse(c.rng.pick(c.pools.valid[bk]))
      const item = JSON.parse(c.rng.pick(bk === "batch" ? c.pools.eventItems : c.pools.interactionItems))
      setKey(item, "__proto__", { type: "x", eventType: "x", isView: true })
      setKey(item, "constructor", "x")
      body.events.push(item)
      return { label: `${bk} item with __proto__`, bytes: post(c, bk, JSON.stringify(body)), expect: accept(body.events.length), endpoint: bk }
    }
    case 4: {
      const vb = validBody(c, "view")
      const cd: Record<string, unknown> = (vb.clientDevice as Record<string, unknown> | undefined) ?? {}
      setKey(cd, "__proto__", { screenWidth: "not a number" })
      const at: Record<string, unknown> = (vb.attribution as Record<string, unknown> | undefined) ?? {}
      setKey(at, "constructor", { name: "x" })
      setKey(at, "__proto__", null)
      vb.clientDevice = cd
      vb.attribution = at
      return { label: "view clientDevice/attribution with __proto__/constructor", bytes: post(c, "view", JSON.stringify(vb)), expect: accept(1), endpoint: "view" }
    }
    case 5: {
      const bk = c.rng.pick(BATCH_KINDS)
      const events: Record<string, unknown> = { length: 1, 0: JSON.parse(c.rng.pick(bk === "batch" ? c.pools.eventItems : c.pools.interactionItems)) }
      setKey(events, "__proto__", [])
      return { label: `${bk} events = array-like object with __proto__`, bytes: post(c, bk, JSON.stringify({ events })), expect: status(400), endpoint: bk }
    }
    default: {
      // duplicate keys: the last one wins in JSON.parse
      const f = keyField(kind, "id")
      b[f.name] ??= `dup-${f.name}`
      const good = JSON.stringify(b[f.name])
      const lastGood = c.rng.chance(0.5)
      const text = JSON.stringify(b).replace(/^\{/, lastGood ? `{${JSON.stringify(f.name)}:5,` : "{").replace(/\}$/, lastGood ? "}" : `,${JSON.stringify(f.name)}:5}`)
      return {
        label: `${kind} duplicate key ${f.name} (${lastGood ? "valid" : "invalid"} last, ${good.length} chars)`,
        bytes: post(c, kind, text),
        expect: lastGood ? accept(1) : status(400),
        endpoint: kind
      }
    }
  }
}

const contentTypes: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const valid = c.rng.pick(c.pools.valid[kind])
  const ct = c.rng.weighted<string | undefined>([[undefined, 2], [c.rng.pick(CONTENT_TYPES), 12], [randomString(c.rng, 30).replace(/[^\u0000-\u00ff]/g, "?"), 2], ["application/json;" + " p=v;".repeat(1500), 1]])
  const ok = acceptsContentType(ct?.trim())
  const lower = (ct ?? "").toLowerCase()
  let body: Buffer = utf8(valid)
  let bodyOk = true
  if (lower.startsWith("multipart/form-data")) {
    body = utf8(`--fuzzbnd\r\nContent-Disposition: form-data; name="data"\r\nContent-Type: application/json\r\n\r\n${valid}\r\n--fuzzbnd--\r\n`)
    bodyOk = false
  } else if (lower.startsWith("application/x-www-form-urlencoded")) {
    const fields = Object.entries(JSON.parse(valid) as Record<string, unknown>).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)] as [string, string])
    body = utf8(new URLSearchParams(fields).toString())
    bodyOk = false
  } else if (lower.includes("xml")) {
    body = utf8(`<?xml version="1.0"?><event><sessionId>s</sessionId></event>`)
    bodyOk = false
  } else if (lower.includes("utf-16") && c.rng.chance(0.5)) {
    body = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(valid, "utf16le")])
    bodyOk = false
  }
  const headerValue = ct === undefined ? null : ct
  // control characters (other than HTAB) in a header value are an HTTP-level error
  if (ct !== undefined && /[\u0000-\u0008\u000a-\u001f\u007f]/.test(ct)) {
    return { label: `${kind} ct=${JSON.stringify(ct)}`, bytes: post(c, kind, body, { ct: headerValue }), expect: PROTOCOL, fresh: true, responses: 0, endpoint: kind }
  }
  return {
    label: `${kind} ct=${JSON.stringify(ct === undefined ? "(none)" : ct.slice(0, 60))}${bodyOk ? "" : " (non-JSON body)"}`,
    bytes: post(c, kind, body, { ct: headerValue }),
    expect: !ok ? status(415) : bodyOk ? accept(1) : status(400),
    endpoint: kind
  }
}

const writeKeys: Gen = (c) => {
  const k = c.cfg.writeKey
  type V = { readonly label: string; readonly header: string | null; readonly query?: string; readonly ok: boolean }
  const variants: ReadonlyArray<V> = [
    { label: "right header", header: k, ok: true },
    { label: "no key", header: null, ok: false },
    { label: "wrong header", header: randomString(c.rng, 20).replace(/[^\u0021-\u007e]/g, "x") + "!", ok: false },
    { label: "empty header", header: "", ok: false },
    { label: "padded header (OWS trimmed)", header: ` ${k}\t`, ok: true },
    { label: "upper-case header", header: k.toUpperCase(), ok: false },
    { label: "key + 10KB padding", header: k + "x".repeat(10_000), ok: false },
    { label: "key,key", header: `${k},${k}`, ok: false },
    { label: "key + NBSP", header: `${k}\u00a0`, ok: false },
    { label: "prefix of key", header: k.slice(0, -1), ok: false },
    { label: "query only", header: null, query: `?writeKey=${k}`, ok: true },
    { label: "query right, header wrong", header: "nope", query: `?writeKey=${k}`, ok: false },
    { label: "query right, header empty", header: "", query: `?writeKey=${k}`, ok: false },
    { label: "query wrong", header: null, query: "?writeKey=nope", ok: false },
    { label: "query percent-encoded", header: null, query: `?writeKey=${[...k].map((ch) => "%" + ch.charCodeAt(0).toString(16).padStart(2, "0")).join("")}`, ok: true },
    { label: "query plus for dash", header: null, query: `?writeKey=${k.replace("-", "+")}`, ok: false },
    { label: "query lower-case name", header: null, query: `?writekey=${k}`, ok: false },
    { label: "query twice, right first", header: null, query: `?writeKey=${k}&writeKey=nope`, ok: true },
    { label: "query twice, wrong first", header: null, query: `?writeKey=nope&writeKey=${k}`, ok: false },
    { label: "query empty", header: null, query: "?writeKey=", ok: false },
    { label: "query name only", header: null, query: "?writeKey", ok: false },
    { label: "query malformed escape before", header: null, query: `?%zz&writeKey=${k}`, ok: true },
    { label: "query trailing %", header: null, query: `?writeKey=${k}%`, ok: false }
  ]
  const v = c.rng.pick(variants)
  const kind = c.rng.pick(KINDS)
  const bodyKind = c.rng.weighted<"valid" | "invalid" | "badct">([["valid", 7], ["invalid", 2], ["badct", 1]])
  const body = bodyKind === "invalid" ? JSON.stringify(randomJson(c.rng, 2)) : c.rng.pick(c.pools.valid[kind])
  const expect = !v.ok ? status(401) : bodyKind === "badct" ? status(415) : bodyKind === "valid" ? accept(eventsOf(kind, JSON.parse(body))) : ANY
  return {
    label: `${kind} ${v.label} (${bodyKind} body)`,
    bytes: post(c, kind, body, { key: v.header, ...(v.query !== undefined ? { query: v.query } : {}), ...(bodyKind === "badct" ? { ct: "application/xml" } : {}) }),
    expect,
    endpoint: kind
  }
}

const randomIp = (rng: Rng): string =>
  rng.weighted<string>([
    [`${rng.int(1, 223)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`, 6],
    [`10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`, 2],
    [`2001:db8:${rng.int(0, 0xffff).toString(16)}::${rng.int(1, 0xffff).toString(16)}`, 2],
    ["127.0.0.1", 1], ["::1", 1], ["::ffff:8.8.8.8", 1], ["[2001:db8::1]:443", 1], ["unknown", 1], ["", 1], ["8.8.8.8:80", 1],
    ["999.1.1.1", 1], ["fe80::1%eth0", 1], [randomString(rng, 20).replace(/[^\u0020-\u007e]/g, "x"), 1]
  ])

const forgedXff: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const extra: Headers = []
  const hops = Array.from({ length: c.rng.weighted<number>([[1, 5], [c.rng.int(2, 5), 4], [c.rng.int(6, 50), 1]]) }, () => randomIp(c.rng))
  if (c.rng.chance(0.85)) extra.push(["X-Forwarded-For", hops.join(c.rng.pick([", ", ",", " , "]))])
  if (c.rng.chance(0.1)) extra.push(["X-Forwarded-For", randomIp(c.rng)])
  if (c.rng.chance(0.05)) extra.push(["X-Forwarded-For", Array.from({ length: 600 }, () => "1.2.3.4").join(",")])
  if (c.rng.chance(0.5)) extra.push(["X-Real-IP", randomIp(c.rng)])
  if (c.rng.chance(0.3)) extra.push(["Forwarded", `for=${randomIp(c.rng)};proto=https`])
  if (c.rng.chance(0.2)) extra.push(["CF-Connecting-IP", randomIp(c.rng)], ["True-Client-IP", randomIp(c.rng)], ["X-Client-IP", randomIp(c.rng)])
  if (extra.length === 0) extra.push(["X-Real-IP", "6.6.6.6"])
  return {
    label: `${kind} ${extra.map(([k, v]) => `${k}: ${v.length > 40 ? v.slice(0, 40) + "…" : v}`).join("; ")}`,
    bytes: post(c, kind, text, { extra }),
    expect: accept(eventsOf(kind, JSON.parse(text))),
    endpoint: kind
  }
}

/** raw header tricks: CR/LF injection, NUL, huge headers, duplicates, malformed lines */
const headerInjection: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const variant = c.rng.int(0, 19)
  const raw = (label: string, headers: Headers, expect: Expect = PROTOCOL, body: string | Buffer = text, extraOpts: { framing?: "length" | "chunked" | "none"; method?: string; version?: string; target?: string } = {}): Draft => ({
    label: `${kind} ${label}`,
    bytes: serialize({
      method: extraOpts.method ?? "POST",
      target: extraOpts.target ?? PATHS[kind],
      version: extraOpts.version ?? "HTTP/1.1",
      headers,
      body: typeof body === "string" ? utf8(body) : body,
      framing: extraOpts.framing ?? "length"
    }),
    expect,
    fresh: true,
    responses: expect.kind === "protocol" ? 0 : 1,
    endpoint: kind
  })
  switch (variant) {
    case 0:
      // CRLF inside a header value: on the wire that is simply another header
      return raw("CRLF-injected X-Forwarded-For", stdHeaders(c, { extra: [["X-Note", "a\r\nX-Forwarded-For: 6.6.6.6"]] }), accept(1))
    case 1:
      return raw("CRLF-injected second X-Write-Key", stdHeaders(c, { extra: [["X-Note", `a\r\nX-Write-Key: ${c.cfg.writeKey}`]] }), status(401))
    case 2:
      return raw("bare LF in a header value", stdHeaders(c, { extra: [["X-Note", "a\nX-Forwarded-For: 6.6.6.6"]] }))
    case 3:
      return raw("bare CR in a header value", stdHeaders(c, { extra: [["X-Note", "a\rb"]] }))
    case 4:
      return raw("CRLFCRLF in a header value (request split)", stdHeaders(c, { extra: [["X-Note", `a\r\n\r\nGARBAGE ${randomString(c.rng, 20).replace(/[^\u0020-\u007e]/g, "x")}`]] }))
    case 5: {
      const len = c.rng.pick([4000, 8000, 15_500, 17_000, 65_000, 200_000])
      const name = c.rng.pick(["X-Note", "Referer", "Origin", "Accept-Language", "Cookie"])
      return raw(`${name} of ${len} bytes`, stdHeaders(c, { extra: [[name, "a".repeat(len)]] }), len <= 8000 ? accept(1) : PROTOCOL)
    }
    case 6: {
      // Node's 16 KiB header limit counts some overhead per header: 500 short ones pass, 1000 get a 431
      const n = c.rng.pick([100, 500, 1000, 3000])
      return raw(`${n} extra headers`, stdHeaders(c, { extra: Array.from({ length: n }, (_, i) => [`X-H${i}`, "v"] as const) }), n <= 500 ? accept(1) : PROTOCOL)
    }
    case 7: {
      const [first, second] = c.rng.pick([["application/json", "application/xml"], ["application/xml", "application/json"], ["application/json", "application/json"]] as const)
      return raw(`duplicate Content-Type ${first} then ${second}`, [...stdHeaders(c, { ct: null }), ["Content-Type", first], ["Content-Type", second]], status(202, 415))
    }
    case 8: {
      const second = c.rng.pick([c.cfg.writeKey, "nope"])
      return raw(`duplicate X-Write-Key (right, ${second === "nope" ? "wrong" : "right"})`, [...stdHeaders(c), ["X-Write-Key", second]], status(401))
    }
    case 9: {
      const body = utf8(text)
      const same = c.rng.chance(0.5)
      return raw(`duplicate Content-Length (${same ? "same" : "different"})`, [...stdHeaders(c), ["Content-Length", String(body.length)], ["Content-Length", String(same ? body.length : body.length + 1)]], PROTOCOL, body, { framing: "none" })
    }
    case 10: {
      const body = utf8(text)
      return raw("Content-Length and Transfer-Encoding: chunked", [...stdHeaders(c), ["Content-Length", String(body.length)], ["Transfer-Encoding", "chunked"]], PROTOCOL, body, { framing: "none" })
    }
    case 11: {
      const te = c.rng.pick(["gzip", "chunked, gzip", "identity", "Chunked", "chunked\u000b", "x-chunked", "chunked, chunked"])
      return raw(`Transfer-Encoding: ${JSON.stringify(te)}`, [...stdHeaders(c), ["Transfer-Encoding", te]], PROTOCOL, utf8(`${utf8(text).length.toString(16)}\r\n${text}\r\n0\r\n\r\n`), { framing: "none" })
    }
    case 12: {
      const line = c.rng.pick(["X-Write-Key : x", "NoColonHere", ": empty-name", "X(Key): v", "X Key: v", "X-Key:\u0007bell", " Leading-Space: v", "X-Key: v\r\n folded"])
      return {
        label: `${kind} malformed header line ${JSON.stringify(line)}`,
        bytes: serialize({ target: PATHS[kind], headers: stdHeaders(c), rawLines: [line], body: utf8(text) }),
        expect: PROTOCOL,
        fresh: true,
        responses: 0,
        endpoint: kind
      }
    }
    case 13: {
      const value = headerBytes(c.rng.pick(["é", "中文", "😀", "\u00ff\u00fe", "\u00a0nbsp\u00a0", "\u2028"]))
      const name = c.rng.pick(["X-Note", "Referer", "Origin", "Accept-Language"])
      return raw(`non-ASCII bytes in ${name}`, stdHeaders(c, { extra: [[name, `v-${value}-v`]] }), accept(1))
    }
    case 14: {
      const host = c.rng.pick(["", "evil.example\u00ff:99999", "a".repeat(5000), "[::1", "127.0.0.1:0", "x y"])
      return raw(`Host ${JSON.stringify(host.slice(0, 30))}`, [["Host", host], ...stdHeaders(c).slice(1)], { kind: "protocol" })
    }
    case 15:
      return raw("no Host header", stdHeaders(c).slice(1))
    case 16:
      return raw("two Host headers", [...stdHeaders(c), ["Host", "other.example"]])
    case 17: {
      const [method, target, version] = c.rng.pick([
        ["POST", PATHS[kind] + " extra", "HTTP/1.1"], ["post", PATHS[kind], "HTTP/1.1"], ["POST", PATHS[kind], "HTTP/2.0"], ["POST", PATHS[kind], "HTTP/1.2"],
        ["POST", PATHS[kind], "HTTP/1"], ["P\u00d6ST", PATHS[kind], "HTTP/1.1"], ["POST", `${PATHS[kind]}\u0000`, "HTTP/1.1"], ["POST", `${PATHS[kind]}\tx`, "HTTP/1.1"]
      ] as const)
      return raw(`request line ${JSON.stringify(`${method} ${target} ${version}`)}`, stdHeaders(c), PROTOCOL, text, { method, target, version })
    }
    case 18: {
      const garbage = c.rng.pick([
        Buffer.from("16030100a5010000a10303", "hex"), // TLS ClientHello start
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), // HTTP/2 preface
        Buffer.from(Array.from({ length: c.rng.int(1, 512) }, () => c.rng.int(0, 255))),
        Buffer.from("\r\n\r\n\r\n"),
        Buffer.from("GET / HTTP/1.1\n\n")
      ])
      // a prefix of a request line (or blank lines) leaves the server waiting for the rest
      return { label: `raw garbage (${garbage.length} bytes)`, bytes: garbage, expect: { kind: "protocol", allowTimeout: true }, fresh: true, responses: 0, timeoutMs: 1000 }
    }
    default: {
      // LF-only line endings everywhere
      const bytes = Buffer.from(serialize({ target: PATHS[kind], headers: stdHeaders(c), body: utf8(text) }).toString("latin1").replace(/\r\n/g, "\n"), "latin1")
      return { label: `${kind} LF-only line endings`, bytes, expect: PROTOCOL, fresh: true, responses: 0, endpoint: kind }
    }
  }
}

const contentLength: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const body = utf8(text)
  const variant = c.rng.int(0, 5)
  const withCl = (cl: string, b: Buffer, expect: Expect, label: string, timeoutMs?: number): Draft => ({
    label: `${kind} ${label}`,
    bytes: serialize({ target: PATHS[kind], headers: [...stdHeaders(c), ["Content-Length", cl]], body: b, framing: "none" }),
    expect,
    fresh: true,
    responses: expect.kind === "protocol" ? 0 : 1,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    endpoint: kind
  })
  switch (variant) {
    case 0:
    case 1: {
      const cl = c.rng.pick([c.cfg.maxBodyBytes + 1, 1_000_000, 1e9, 2 ** 40])
      return withCl(String(cl), body, status(413), `declared Content-Length ${cl}, ${body.length}-byte body`)
    }
    case 2: {
      const cl = c.rng.pick(["9007199254740991", "9007199254740993", "18446744073709551615", "18446744073709551616", "99999999999999999999999999"])
      return withCl(cl, body, PROTOCOL, `declared Content-Length ${cl}`)
    }
    case 3: {
      const cl = Math.max(0, body.length - c.rng.int(1, Math.min(20, body.length)))
      return withCl(String(cl), body, PROTOCOL, `Content-Length ${cl} < body ${body.length}`)
    }
    case 4: {
      // more declared than sent, under the limit: the server waits for the rest; we give up
      const cl = body.length + c.rng.int(1, 100)
      return withCl(String(cl), body, { kind: "protocol", allowTimeout: true }, `Content-Length ${cl} > body ${body.length} (truncated)`, 600)
    }
    default: {
      const cl = c.rng.pick(["-1", "abc", "1 2", "0x10", "+5", "5.0", "", "1e3", "0"])
      return withCl(cl, body, PROTOCOL, `Content-Length ${JSON.stringify(cl)}`)
    }
  }
}

/** valid bodies padded (unknown field) to just under / at / over MAX_BODY_BYTES; Content-Length or chunked */
const sizeBoundary: Gen = (c) => {
  const max = c.cfg.maxBodyBytes
  const target = c.rng.weighted<number>([[max - 1, 3], [max, 3], [max + 1, 3], [max + 64, 1], [2 * max, 1], [1024 * 1024, 1], [4 * 1024 * 1024, 0.2]])
  const kind = c.rng.pick(SINGLE_KINDS)
  const b = base(kind)
  b.pad = ""
  const overhead = Buffer.byteLength(JSON.stringify(b))
  b.pad = "p".repeat(Math.max(0, target - overhead))
  const text = JSON.stringify(b)
  const size = Buffer.byteLength(text)
  const chunked = c.rng.chance(0.4)
  const chunks = chunked ? [c.rng.pick([16_384, 65_536, c.rng.int(1000, 100_000)])] : undefined
  return {
    label: `${kind} ${size}-byte body (max ${max}) ${chunked ? `chunked ${chunks![0]}` : "Content-Length"}`,
    bytes: post(c, kind, text, chunked ? { framing: "chunked", chunks: chunks! } : {}),
    expect: size <= max ? accept(1) : status(413),
    fresh: size > max,
    responses: 1,
    timeoutMs: 30_000,
    endpoint: kind
  }
}

const chunked: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const body = utf8(text)
  const variant = c.rng.int(0, 11)
  if (variant <= 4) {
    const chunks = variant === 0 ? [1] : Array.from({ length: 8 }, () => c.rng.int(1, 64))
    const ext = variant === 2 ? c.rng.pick([";a=b", ";x", ";name=\"quoted\""]) : undefined
    const trailers: Headers | undefined = variant === 3 ? [["X-Trailer", "t"]] : undefined
    return {
      label: `${kind} chunked ${variant === 0 ? "1-byte chunks" : "random chunks"}${ext ? ` ext ${ext}` : ""}${trailers ? " + trailer" : ""}`,
      bytes: post(c, kind, body, { framing: "chunked", chunks, ...(ext !== undefined ? { chunkExt: ext } : {}), ...(trailers ? { trailers } : {}) }),
      expect: accept(eventsOf(kind, JSON.parse(text))),
      endpoint: kind
    }
  }
  const head = serialize({ target: PATHS[kind], headers: [...stdHeaders(c), ["Transfer-Encoding", "chunked"]], body: new Uint8Array(0), framing: "none" })
  const hex = body.length.toString(16)
  const [label, tail, allowTimeout, mayStore] = c.rng.pick<readonly [string, Buffer, boolean, number?]>([
    ["bad hex size", Buffer.concat([utf8(`zz\r\n`), body, utf8("\r\n0\r\n\r\n")]), false],
    ["size larger than data", Buffer.concat([utf8(`${(body.length + 50).toString(16)}\r\n`), body, utf8("\r\n0\r\n\r\n")]), true],
    ["size smaller than data", Buffer.concat([utf8(`${Math.max(1, body.length - 5).toString(16)}\r\n`), body, utf8("\r\n0\r\n\r\n")]), false],
    ["missing CRLF after data", Buffer.concat([utf8(`${hex}\r\n`), body, utf8("0\r\n\r\n")]), false],
    ["negative size", Buffer.concat([utf8(`-${hex}\r\n`), body, utf8("\r\n0\r\n\r\n")]), false],
    ["overflowing size", Buffer.concat([utf8(`ffffffffffffffffffff\r\n`), body, utf8("\r\n0\r\n\r\n")]), false],
    ["LF-only chunk lines", Buffer.concat([utf8(`${hex}\n`), body, utf8("\n0\n\n")]), true],
    ["no terminating chunk", Buffer.concat([utf8(`${hex}\r\n`), body, utf8("\r\n")]), true],
    ["garbage after last chunk", Buffer.concat([utf8(`${hex}\r\n`), body, utf8("\r\n0\r\n\r\nGARBAGE\r\n\r\n")]), false, eventsOf(kind, JSON.parse(text))],
    ["space in size", Buffer.concat([utf8(` ${hex} \r\n`), body, utf8("\r\n0\r\n\r\n")]), false]
  ])
  return {
    label: `${kind} malformed chunked: ${label}`,
    bytes: Buffer.concat([head, tail]),
    expect: { kind: "protocol", allowTimeout },
    fresh: true,
    responses: 0,
    timeoutMs: allowTimeout ? 600 : 5000,
    endpoint: kind,
    ...(mayStore !== undefined ? { mayStore } : {})
  }
}

/** Empty, scalar and almost-JSON bodies: all 400, except `{}` to /track/view (every field of a view is optional). */
const emptyAndScalars: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const valid = c.rng.pick(c.pools.valid[kind])
  const n = eventsOf(kind, JSON.parse(valid))
  const [label, body, expect] = c.rng.pick<readonly [string, Buffer, Expect]>([
    ["empty body", Buffer.alloc(0), status(400)], ["space", utf8(" "), status(400)], ["newline", utf8("\n"), status(400)], ["null", utf8("null"), status(400)],
    ["true", utf8("true"), status(400)], ["0", utf8("0"), status(400)], ["[]", utf8("[]"), status(400)], ["[{}]", utf8("[{}]"), status(400)],
    ["\"\"", utf8("\"\""), status(400)], ["{}", utf8("{}"), kind === "view" ? accept(1) : status(400)], ["{", utf8("{"), status(400)], ["}", utf8("}"), status(400)],
    ["{}}", utf8("{}}"), status(400)], ["{}{}", utf8("{}{}"), status(400)], ["{\"a\":}", utf8("{\"a\":}"), status(400)],
    ["UTF-8 BOM + valid", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(valid)]), status(202, 400)],
    ["valid + trailing garbage", utf8(`${valid} x`), status(400)], ["whitespace around valid", utf8(`  \n\t${valid}\r\n `), accept(n)],
    ["comment + valid", utf8(`/*c*/${valid}`), status(400)], ["single quotes", utf8(valid.replace(/"/g, "'")), valid.includes("\"") ? status(400) : accept(n)],
    ["trailing comma", utf8(valid.replace(/\}$/, ",}")), status(400)], ["valid twice", utf8(valid + valid), status(400)]
  ])
  return { label: `${kind} ${label}`, bytes: post(c, kind, body), expect, endpoint: kind }
}

const routing: Gen = (c) => {
  const kind = c.rng.pick(KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const p = PATHS[kind]
  const [method, target] = c.rng.pick<readonly [string, string]>([
    ["GET", p], ["PUT", p], ["DELETE", p], ["PATCH", p], ["OPTIONS", p], ["POST", `${p}/`], ["POST", p.toUpperCase()], ["POST", `/${p}`],
    ["POST", p.replace("/track/", "/track/./")], ["POST", `/track/../${p.slice(1)}`], ["POST", `${p};x`], ["POST", `${p}%00`], ["POST", p.replace(/k\//, "%6B/")],
    ["POST", `${p}?`], ["POST", `${p}?&&&=&`], ["POST", `${p}#frag`], ["POST", "/track/"], ["POST", "/track"], ["POST", "/"], ["POST", "*"],
    ["POST", `http://${c.cfg.host}${p}`], ["POST", `${p}?q=${"x".repeat(10_000)}`], ["POST", "/track/nope"], ["POST", "/health/live"]
  ])
  const headers = stdHeaders(c, method === "OPTIONS" ? { extra: [["Origin", "https://site.example"], ["Access-Control-Request-Method", "POST"]] } : {})
  return {
    label: `${method} ${target.length > 60 ? target.slice(0, 60) + "…" : target}`,
    bytes: serialize({ method, target, headers, body: utf8(text) }),
    expect: PROTOCOL,
    fresh: true,
    responses: 1,
    endpoint: kind
  }
}

const expectContinue: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const value = c.rng.pick(["100-continue", "100-continue", "100-Continue", "200-ok", "x"])
  const normal = value.toLowerCase() === "100-continue"
  return {
    label: `${kind} Expect: ${value}`,
    bytes: post(c, kind, text, { extra: [["Expect", value]] }),
    expect: normal ? accept(1) : PROTOCOL,
    fresh: !normal,
    responses: normal ? 1 : 0,
    endpoint: kind
  }
}

const pipelined: Gen = (c) => {
  const k = c.rng.int(2, 5)
  const allValid = c.rng.chance(0.6)
  const parts: Array<Buffer> = []
  let events = 0
  for (let i = 0; i < k; i++) {
    const kind = c.rng.pick(KINDS)
    if (allValid || c.rng.chance(0.5)) {
      const text = c.rng.pick(c.pools.valid[kind])
      events += eventsOf(kind, JSON.parse(text))
      parts.push(post(c, kind, text))
    } else parts.push(post(c, kind, JSON.stringify(randomJson(c.rng, 2)), { key: c.rng.pick([null, c.cfg.writeKey]) }))
  }
  return { label: `${k} pipelined requests${allValid ? " (all valid)" : " (mixed)"}`, bytes: Buffer.concat(parts), expect: allValid ? accept(events) : ANY, fresh: true, responses: k }
}

const http10: Gen = (c) => {
  const kind = c.rng.pick(SINGLE_KINDS)
  const text = c.rng.pick(c.pools.valid[kind])
  const noHost = c.rng.chance(0.5)
  const headers = noHost ? stdHeaders(c).slice(1) : stdHeaders(c)
  return {
    label: `${kind} HTTP/1.0${noHost ? " without Host" : ""}`,
    bytes: serialize({ target: PATHS[kind], version: "HTTP/1.0", headers, body: utf8(text) }),
    expect: PROTOCOL,
    fresh: true,
    responses: 1,
    endpoint: kind
  }
}

export const CATEGORIES: ReadonlyArray<readonly [string, Gen, number]> = [
  ["valid-single", validSingle, 130],
  ["valid-batch", validBatch, 45],
  ["batch-limit", batchLimit, 3],
  ["random-json", randomJsonGen, 110],
  ["wrong-types", wrongTypes, 110],
  ["string-caps", stringCaps, 50],
  ["metadata-caps", metadataCaps, 25],
  ["deep-nesting", deepNesting, 20],
  ["bad-utf8", badUtf8, 40],
  ["nul-bytes", nulBytes, 25],
  ["lone-surrogates", loneSurrogates, 25],
  ["numbers", numbers, 45],
  ["proto-keys", protoKeys, 35],
  ["content-type", contentTypes, 60],
  ["write-key", writeKeys, 60],
  ["forged-xff", forgedXff, 60],
  ["header-injection", headerInjection, 40],
  ["content-length", contentLength, 20],
  ["size-boundary", sizeBoundary, 8],
  ["chunked", chunked, 35],
  ["empty-scalars", emptyAndScalars, 20],
  ["routing", routing, 12],
  ["expect-continue", expectContinue, 5],
  ["pipelined", pipelined, 10],
  ["http-1.0", http10, 7]
]
const WEIGHTED = CATEGORIES.map(([name, gen, w]) => [[name, gen] as const, w] as const)

/**
 * Case `id` of the run with `cfg.seed`. The first ids walk every category twice, so
 * even a short run covers them all; the rest are drawn by weight.
 */
export const makeCase = (cfg: FuzzConfig, pools: Pools, id: number): FuzzCase => {
  const rng = caseRng(cfg.seed, id)
  const [category, gen] = id < CATEGORIES.length * 2 ? CATEGORIES[id % CATEGORIES.length]!.slice(0, 2) as [string, Gen] : rng.weighted(WEIGHTED)
  const draft = gen({ cfg, pools, rng, id })
  const result: FuzzCase = {
    id,
    category,
    label: draft.label,
    bytes: draft.bytes,
    fresh: draft.fresh ?? false,
    responses: draft.responses ?? 1,
    timeoutMs: draft.timeoutMs ?? (draft.fresh ? 5000 : 15_000),
    expect: draft.expect,
    ...(draft.endpoint !== undefined ? { endpoint: draft.endpoint } : {}),
    ...(draft.mayStore !== undefined ? { mayStore: draft.mayStore } : {})
  }
  return result
}

/** The request bytes, printable: escapes everything but printable ASCII (CRLF shown as \r\n + newline). */
export const printable = (bytes: Uint8Array, max = 2000): string => {
  let out = ""
  const n = Math.min(bytes.length, max)
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!
    if (b === 0x0d) out += "\\r"
    else if (b === 0x0a) out += "\\n\n"
    else if (b === 0x5c) out += "\\\\"
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b)
    else out += `\\x${b.toString(16).padStart(2, "0")}`
  }
  if (bytes.length > max) out += `… (${bytes.length - max} more bytes)`
  return out
}
