/**
 * Sites (issue 13): the tenants of Spoolway. Pure code: names, keys, the registry the
 * collector enforces, and the admission rule of a tracking request.
 *
 * A site is one or more hostnames (the first is its primary hostname; the others are aliases
 * such as `www.`), an optional corp, a timezone, its allowed origins and two keys:
 * - the **write key** (`sw_pub_…`) is public: it goes in the page. With it a request must
 *   also come from one of the site's origins (`Origin`, else the `Referer`'s origin);
 * - the **server key** (`sw_sec_…`) is secret: server-side tracking (no origin check) and
 *   reading the stats of the site.
 * A site's id is the `domains.id` of its primary hostname, so every table keyed by
 * `domain_id` is per site.
 *
 * Keys are random (32 bytes) and stored only as their SHA-256 digest. A fast digest is the
 * right tool for random keys (a slow password hash protects guessable secrets); a request's
 * key is looked up by its digest, so the lookup's timing depends on the digest alone, which
 * tells an attacker nothing about any key.
 *
 * Allowed origins: by default every hostname of the site over http or https, on any port
 * (`http://example.com:8080` is allowed for `example.com`). An explicit list (`--origin`)
 * replaces the default; its entries match exactly (scheme, host and port).
 */
import { hash } from "node:crypto"
import { Schema } from "effect"
import { memoizeString } from "./Memo.ts"

// ---------------------------------------------------------------------------------------------
// names, timezones, origins

/** A hostname has no scheme, port, path, userinfo, query or whitespace. */
const NOT_IN_HOSTNAME = /[\s/\\?#@]/

/**
 * The canonical form of a site hostname: lower case, IDN as punycode, no trailing dot, IPv6
 * without brackets (what `tenantHost` derives from a request); undefined when it is not one.
 */
export const normalizeHostname = (input: string): string | undefined => {
  const trimmed = input.trim()
  if (trimmed.length === 0 || trimmed.length > 253 || NOT_IN_HOSTNAME.test(trimmed)) return undefined
  const bracketed = trimmed.startsWith("[") && trimmed.endsWith("]")
  if (!bracketed && trimmed.includes(":")) return undefined // a port, or an IPv6 literal without brackets
  const url = webUrl(`http://${trimmed}`)
  return url === undefined ? undefined : hostnameOf(url)
}

/** `value` as an http(s) URL, or undefined. */
const webUrl = (value: string): URL | undefined => {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return undefined
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url : undefined
}

/** A URL's hostname as sites store it: no IPv6 brackets, no trailing dots; undefined when empty. */
const hostnameOf = (url: URL): string | undefined => {
  let host = url.hostname
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1)
  while (host.endsWith(".")) host = host.slice(0, -1)
  return host.length === 0 ? undefined : host
}

/** The canonical IANA name of `tz` (`europe/berlin` → `Europe/Berlin`), or undefined when unknown. */
export const normalizeTimezone = (tz: string): string | undefined => {
  const trimmed = tz.trim()
  if (trimmed.length === 0 || trimmed.length > 64) return undefined
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: trimmed }).resolvedOptions().timeZone
  } catch {
    return undefined
  }
}

/**
 * An origin as configured (`https://example.com`, `http://127.0.0.1:8080`): its serialized
 * form (`URL.origin`: lower-case host, default port dropped), or undefined when it is not a bare
 * http(s) origin (a path, query, fragment or userinfo makes it something else).
 */
export const normalizeOrigin = (input: string): string | undefined => {
  const url = webUrl(input)
  if (url === undefined) return undefined
  if (url.username !== "" || url.password !== "" || url.pathname !== "/" || url.search !== "" || url.hash !== "") return undefined
  return url.origin
}

/** Where a request comes from: the serialized origin and its hostname (as `normalizeHostname` gives it). */
export interface RequestOrigin {
  readonly origin: string
  readonly hostname: string
}

const requestOriginOf = (value: string): RequestOrigin | null => {
  const url = webUrl(value)
  const hostname = url === undefined ? undefined : hostnameOf(url)
  return url === undefined || hostname === undefined ? null : { origin: url.origin, hostname }
}

/** (memoised: a site's Origin repeats on every request; Referers repeat per page) */
const originOfHeader = memoizeString(requestOriginOf)

/**
 * The origin of a request: its `Origin` header when present (`null` and other opaque origins
 * give null), else the origin of its `Referer`, else null.
 */
export const requestOrigin = (origin: string | undefined, referer: string | undefined): RequestOrigin | null => {
  if (origin !== undefined) return originOfHeader(origin)
  if (referer !== undefined) return originOfHeader(referer)
  return null
}

// ---------------------------------------------------------------------------------------------
// keys

export type KeyKind = "write" | "server"

export const KEY_PREFIX: Readonly<Record<KeyKind, string>> = { write: "sw_pub_", server: "sw_sec_" }

/** Random bytes in a key (256 bits). */
export const KEY_BYTES = 32

/** A key of `kind` from `random` (KEY_BYTES random bytes). */
export const formatKey = (kind: KeyKind, random: Uint8Array): string =>
  KEY_PREFIX[kind] + Buffer.from(random.buffer, random.byteOffset, random.byteLength).toString("base64url")

/** A view-only share token of a site's dashboard (read-only: the query API only). */
export const SHARE_PREFIX = "sw_shr_"

export const formatShareToken = (random: Uint8Array): string =>
  SHARE_PREFIX + Buffer.from(random.buffer, random.byteOffset, random.byteLength).toString("base64url")

/** The stored form of a key (and of a share token): hex SHA-256. */
export const hashKey = (key: string): string => hash("sha256", key, "hex")

// ---------------------------------------------------------------------------------------------
// the registry the collector enforces (published to the primary Redis by the writer and the CLI)

const SnapshotKey = Schema.Struct({
  kind: Schema.Literals(["write", "server"]),
  /** hashKey(key) */
  hash: Schema.String,
  /** epoch ms after which the key stops working (a rotated-out key in its grace period) */
  expiresAt: Schema.optionalKey(Schema.Finite)
})

const SnapshotSite = Schema.Struct({
  id: Schema.Int,
  /** the primary hostname first, then the aliases */
  hostnames: Schema.Array(Schema.String),
  /** explicit allowed origins; null = every hostname over http(s), any port */
  origins: Schema.NullOr(Schema.Array(Schema.String)),
  keys: Schema.Array(SnapshotKey)
})

/**
 * Every active site with its hostnames, origins and key digests — never a key itself. `version`
 * grows with every change made through the CLI (`site_registry.version`): a publisher never
 * replaces a newer snapshot with an older one, and a collector keeps the newest it has seen.
 */
export const SiteSnapshot = Schema.Struct({
  v: Schema.Literal(1),
  version: Schema.Int,
  sites: Schema.Array(SnapshotSite)
})
export type SiteSnapshot = typeof SiteSnapshot.Type

export const decodeSnapshotJson = Schema.decodeUnknownExit(Schema.fromJsonString(SiteSnapshot))
export const encodeSnapshotJson = (snapshot: SiteSnapshot): string => JSON.stringify(snapshot)

/** A site as the collector knows it. */
export interface IndexedSite {
  readonly id: number
  readonly hostname: string
  readonly hostnames: ReadonlySet<string>
  /** explicit origins, or null for the default (every hostname over http/https) */
  readonly origins: ReadonlySet<string> | null
}

/** A request that passed the key (and origin) check. */
export interface Admitted {
  readonly ok: true
  /** the site the request belongs to (undefined: no site decides it — open mode, legacy key) */
  readonly site: number | undefined
  /** authenticated with the site's server key: no origin check, forwarded client IP believed */
  readonly server: boolean
}

export interface Rejected {
  readonly ok: false
  readonly status: 401 | 403
  readonly error: "unauthorized" | "origin_not_allowed"
  readonly message: string
}

export type Admission = Admitted | Rejected

interface IndexedKey {
  readonly site: IndexedSite
  readonly expiresAt: number | undefined
  readonly admitted: Admitted
}

/** What the collector enforces, built once per snapshot: lookups only on the request path. */
export interface SiteIndex {
  readonly version: number
  /** no site defined: open mode (only the legacy global keys, if any, are checked) */
  readonly open: boolean
  readonly sites: ReadonlyArray<IndexedSite>
  /** the key with this digest that still works at `nowMs` */
  readonly keyOf: (digest: string, nowMs: number) => IndexedKey | undefined
  /** `origin` is allowed for at least one site (CORS, legacy keys) */
  readonly anySiteAllows: (origin: RequestOrigin) => boolean
}

export const siteAllows = (site: IndexedSite, origin: RequestOrigin): boolean =>
  site.origins === null ? site.hostnames.has(origin.hostname) : site.origins.has(origin.origin)

export const indexSnapshot = (snapshot: SiteSnapshot): SiteIndex => {
  const keys = new Map<string, IndexedKey>()
  const anyOrigin = new Set<string>()
  const anyHost = new Set<string>()
  const sites: Array<IndexedSite> = []
  for (const s of snapshot.sites) {
    const hostnames = new Set(s.hostnames)
    const site: IndexedSite = {
      id: s.id,
      hostname: s.hostnames[0] ?? "",
      hostnames,
      origins: s.origins === null ? null : new Set(s.origins)
    }
    sites.push(site)
    if (s.origins === null) for (const h of hostnames) anyHost.add(h)
    else for (const o of s.origins) anyOrigin.add(o)
    for (const k of s.keys) {
      keys.set(k.hash, { site, expiresAt: k.expiresAt, admitted: { ok: true, site: s.id, server: k.kind === "server" } })
    }
  }
  return {
    version: snapshot.version,
    open: sites.length === 0,
    sites,
    keyOf: (digest, nowMs) => {
      const key = keys.get(digest)
      return key === undefined || (key.expiresAt !== undefined && key.expiresAt <= nowMs) ? undefined : key
    },
    anySiteAllows: (origin) => anyOrigin.has(origin.origin) || anyHost.has(origin.hostname)
  }
}

/** The index before any snapshot arrived (nothing published yet): open mode. */
export const EMPTY_INDEX: SiteIndex = indexSnapshot({ v: 1, version: -1, sites: [] })

/** The global legacy keys (COLLECTOR_WRITE_KEYS). */
export interface LegacyKeys {
  /** no legacy key configured */
  readonly open: boolean
  readonly accepts: (candidate: string | undefined) => boolean
}

export interface AdmissionRequest {
  /** X-Write-Key, `Authorization: Bearer`, or ?writeKey= */
  readonly key: string | undefined
  readonly origin: string | undefined
  readonly referer: string | undefined
  readonly nowMs: number
}

const OPEN: Admitted = { ok: true, site: undefined, server: false }
const NO_KEY: Rejected = { ok: false, status: 401, error: "unauthorized", message: "missing or invalid write key" }
const NO_ORIGIN: Rejected = {
  ok: false,
  status: 403,
  error: "origin_not_allowed",
  message: "the request has no Origin (or Referer) of this site; server-side calls use the site's server key"
}
const WRONG_ORIGIN: Rejected = {
  ok: false,
  status: 403,
  error: "origin_not_allowed",
  message: "this origin is not allowed for the site of this write key"
}

/**
 * The admission rule of a tracking request:
 * - no site defined: open, or a legacy key when COLLECTOR_WRITE_KEYS is set (401 without);
 * - a site's server key: admitted, no origin check;
 * - a site's write key: admitted when the request's origin is one of that site's (403 else);
 * - a legacy global key: admitted when the request's origin is one of any site's (403 else);
 * - anything else: 401.
 * Synchronous and allocation-free on success (the request path runs it for every request).
 */
export const admit = (index: SiteIndex, legacy: LegacyKeys, request: AdmissionRequest): Admission => {
  if (index.open) return legacy.open || legacy.accepts(request.key) ? OPEN : NO_KEY
  const candidate = request.key
  if (candidate === undefined || candidate === "") return NO_KEY
  const key = index.keyOf(hashKey(candidate), request.nowMs)
  if (key !== undefined) {
    if (key.admitted.server) return key.admitted
    const origin = requestOrigin(request.origin, request.referer)
    if (origin === null) return NO_ORIGIN
    return siteAllows(key.site, origin) ? key.admitted : WRONG_ORIGIN
  }
  if (!legacy.open && legacy.accepts(candidate)) {
    const origin = requestOrigin(request.origin, request.referer)
    if (origin === null) return NO_ORIGIN
    return index.anySiteAllows(origin) ? OPEN : WRONG_ORIGIN
  }
  return NO_KEY
}

// ---------------------------------------------------------------------------------------------
// settings

/**
 * What a site does with traffic from datacenter networks (hosting and VPN, docs/network.md):
 * - `count`: counted like any traffic (the network columns are still stored);
 * - `flag` (default): the same, and the network columns mark it, so it can be filtered;
 * - `exclude`: every event whose own address is a datacenter's is a bot event (`is_bot`, counted
 *   only in `bot_events`), and so is every event of a session that started from one.
 */
export const DATACENTER_TRAFFIC = ["count", "flag", "exclude"] as const
export type DatacenterTraffic = typeof DATACENTER_TRAFFIC[number]
export const DEFAULT_DATACENTER_TRAFFIC: DatacenterTraffic = "flag"

export const isDatacenterTraffic = (value: string): value is DatacenterTraffic =>
  (DATACENTER_TRAFFIC as ReadonlyArray<string>).includes(value)

// ---------------------------------------------------------------------------------------------
// errors of the site commands

export class SiteNotFound extends Schema.TaggedError<SiteNotFound>()("SiteNotFound", {
  hostname: Schema.String,
  message: Schema.String
}) {
  static readonly of = (hostname: string) =>
    new SiteNotFound({ hostname, message: `no site has the hostname '${hostname}' (see: spoolway sites list)` })
}

export class DuplicateHostname extends Schema.TaggedError<DuplicateHostname>()("DuplicateHostname", {
  hostname: Schema.String,
  message: Schema.String
}) {
  static readonly of = (hostname: string, reason: string) => new DuplicateHostname({ hostname, message: `hostname '${hostname}' ${reason}` })
}

export class InvalidSiteInput extends Schema.TaggedError<InvalidSiteInput>()("InvalidSiteInput", {
  field: Schema.String,
  message: Schema.String
}) {
  static readonly of = (field: string, value: string, reason: string) =>
    new InvalidSiteInput({ field, message: `invalid ${field} '${value}': ${reason}` })
}

/** A missing, unknown, expired or removed site's server key (→ 401). */
export class InvalidServerKey extends Schema.TaggedError<InvalidServerKey>()("InvalidServerKey", {
  message: Schema.String
}) {}
