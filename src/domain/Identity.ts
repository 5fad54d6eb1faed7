/**
 * Cookie-free visitor identity (SPEC §5 "IP hash", "Visitor id"; §8 contract).
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
  if (!Number.isFinite(time)) return null
  const iso = new Date(time).toISOString()
  // years outside 0000–9999 are written as ±YYYYYY-…; keep the date part in either case
  return iso.slice(0, iso.indexOf("T"))
}
