/**
 * Cookie-free visitor identity (docs/architecture.md, visitor id). The module is
 * a stable contract: other code and the acceptance tests import its exports by name.
 *
 * - `hashIp(salt, ip)` = lower-case hex HMAC-SHA256(key = salt, message = ip, UTF-8).
 *   No IP (absent, empty or whitespace-only) → null. Otherwise the IP string is hashed exactly
 *   as captured by the edge (normalising IPv4-mapped IPv6 etc. is the edge's job).
 * - `visitorIdDaily(salt, ip, ua, lang)` = SHA-256 over
 *     salt ‖ 0x00 ‖ ip ‖ 0x00 ‖ ua ‖ 0x00 ‖ lang        (fields UTF-8, missing → "")
 *   i.e. the salt and the three fields, NUL-separated. The separators make the encoding
 *   unambiguous: ("a", "bc") and ("ab", "c") hash differently. 32 bytes.
 *   `lang` is the request's Accept-Language as captured at the edge.
 * - The salt is the one of the event's `receivedAt` UTC day ({@link saltDay}).
 */
import { createHash, createHmac, createSecretKey, type KeyObject } from "node:crypto"
import { utcDay } from "./Time.ts"

const NUL = Buffer.of(0)

/**
 * `createHmac` with raw key bytes re-imports the key on every call (~8 µs with OpenSSL 3);
 * with a KeyObject it is ~1 µs. The writer uses one salt per day, so the key of the last salt
 * is kept (matched by content, so a caller mutating or re-creating the array is safe).
 */
let lastSalt: Buffer | undefined
let lastKey: KeyObject | undefined
const hmacKey = (salt: Uint8Array): KeyObject => {
  if (lastKey !== undefined && lastSalt !== undefined && lastSalt.equals(salt)) return lastKey
  lastSalt = Buffer.from(salt) // a copy
  lastKey = createSecretKey(lastSalt)
  return lastKey
}

/** Hex HMAC-SHA256 of the IP keyed by the day's salt; null without an IP. */
export const hashIp = (salt: Uint8Array, ip: string | undefined): string | null => {
  if (ip === undefined || ip.trim().length === 0) return null
  // an empty salt cannot be a KeyObject; HMAC with an empty key is still well defined
  const key = salt.length === 0 ? salt : hmacKey(salt)
  return createHmac("sha256", key).update(ip, "utf8").digest("hex")
}

/** `sha256(salt ‖ NUL ‖ ip ‖ NUL ‖ ua ‖ NUL ‖ lang)`, 32 bytes; missing fields are "". */
export const visitorIdDaily = (
  salt: Uint8Array,
  ip: string | undefined,
  ua: string | undefined,
  lang: string | undefined
): Uint8Array => {
  const digest = createHash("sha256")
    .update(salt)
    .update(NUL)
    .update(ip ?? "", "utf8")
    .update(NUL)
    .update(ua ?? "", "utf8")
    .update(NUL)
    .update(lang ?? "", "utf8")
    .digest()
  // a plain, unshared 32-byte Uint8Array (not a Buffer view into a pool)
  return new Uint8Array(digest)
}

/**
 * The UTC day (`YYYY-MM-DD`) whose salt applies to an event: the day of its edge `receivedAt`,
 * so envelopes drained from the spool after midnight keep their own day's salt.
 * Returns null for an unparseable date.
 */
export const saltDay = (receivedAt: string | Date): string | null => {
  const time = typeof receivedAt === "string" ? Date.parse(receivedAt) : receivedAt.getTime()
  return Number.isFinite(time) ? utcDay(time) : null
}

/** The two salted identity values of a view. */
export interface VisitorIdentity {
  /** {@link hashIp} */
  readonly ipHash: string | null
  /** {@link visitorIdDaily} (shared between the calls that hit the cache: do not mutate) */
  readonly visitorIdDaily: Uint8Array
}

/** Inputs longer than this (a pathological UA) are hashed without being cached. */
const MAX_CACHED_KEY = 1024

/**
 * `{ hashIp, visitorIdDaily }` memoised per salt and (ip, ua, lang): a visitor's later views on
 * the same day cost a map lookup instead of an HMAC and a SHA-256 (≈ 2–3 µs). The results are
 * exactly those of the two functions (missing and empty fields hash alike, as there). Salts
 * are matched by content; the caches of the two most recent salts are kept (a batch around
 * midnight holds two days) and each is emptied when it reaches `capacity`.
 */
export const makeVisitorIdentityCache = (capacity = 20_000) => {
  interface PerSalt {
    readonly salt: Uint8Array // a copy
    readonly ref: Uint8Array // the caller's array, for a fast identity check
    readonly map: Map<string, VisitorIdentity>
  }
  let recent: Array<PerSalt> = []
  const sameBytes = (a: Uint8Array, b: Uint8Array) => {
    if (a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
    return true
  }
  const cacheOf = (salt: Uint8Array): PerSalt => {
    for (const entry of recent) if (entry.ref === salt && sameBytes(entry.salt, salt)) return entry
    for (const entry of recent) if (sameBytes(entry.salt, salt)) return entry
    const entry: PerSalt = { salt: Uint8Array.from(salt), ref: salt, map: new Map() }
    recent = [entry, ...recent.slice(0, 1)]
    return entry
  }
  return (salt: Uint8Array, ip: string | undefined, ua: string | undefined, lang: string | undefined): VisitorIdentity => {
    const i = ip ?? ""
    const l = lang ?? ""
    const u = ua ?? ""
    if (capacity <= 0 || i.length + l.length + u.length > MAX_CACHED_KEY) {
      return { ipHash: hashIp(salt, ip), visitorIdDaily: visitorIdDaily(salt, ip, ua, lang) }
    }
    // unambiguous: the lengths of ip and lang delimit the three fields
    const key = `${i.length},${l.length},${i}${l}${u}`
    const { map } = cacheOf(salt)
    const hit = map.get(key)
    if (hit !== undefined) return hit
    const identity: VisitorIdentity = { ipHash: hashIp(salt, ip), visitorIdDaily: visitorIdDaily(salt, ip, ua, lang) }
    if (map.size >= capacity) map.clear()
    map.set(key, identity)
    return identity
  }
}

/** The process-wide cache the writer's enrichment uses. */
export const visitorIdentity: (
  salt: Uint8Array,
  ip: string | undefined,
  ua: string | undefined,
  lang: string | undefined
) => VisitorIdentity = makeVisitorIdentityCache()
