/**
 * IP addresses as numbers, for range look-ups without allocating (`AsnTable`, `Network`).
 *
 * `parseIp` writes the address into a caller-owned `Uint32Array(4)`: an IPv4 address as one
 * unsigned word (`out[0]`), an IPv6 address as four big-endian words (`out[0..3]`). It accepts
 * what `node:net`'s `isIP` accepts (no leading zeros in IPv4 parts, `::` at most once, an
 * embedded IPv4 tail), after trimming and dropping an IPv6 zone id (`fe80::1%eth0`), like
 * `publicIp` in `Geo.ts`. IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:102:304`) comes back as
 * the IPv4 address.
 *
 * `isPublicV4` / `isPublicV6` check the very range lists `publicIp` uses
 * (`NON_PUBLIC_IPV4`/`NON_PUBLIC_IPV6`), on numbers.
 */
import { NON_PUBLIC_IPV4, NON_PUBLIC_IPV6 } from "./Geo.ts"

/** Dotted quad in `s[from, to)` → unsigned 32-bit number, or -1. */
export const parseIpv4 = (s: string, from = 0, to = s.length): number => {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1 // a leading zero ("01") is ambiguous (octal): rejected like isIP
      part = part * 10 + (c - 48)
      if (part > 255 || ++digits > 3) return -1
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
    } else {
      return -1
    }
  }
  if (digits === 0 || dots !== 3) return -1
  return value * 256 + part
}

/** character code → hex digit value, -1 for anything else */
const HEX = new Int8Array(128).fill(-1)
for (let d = 0; d < 10; d++) HEX[48 + d] = d
for (let d = 0; d < 6; d++) HEX[65 + d] = HEX[97 + d] = 10 + d

/** scratch for the 16-bit groups of one IPv6 address (parsing never re-enters) */
const groups = new Uint16Array(8)

/** IPv6 text in `s[from, to)` → four big-endian words in `out[0..3]`; false when malformed. */
export const parseIpv6 = (s: string, from: number, to: number, out: Uint32Array): boolean => {
  let count = 0
  let gap = -1
  let i = from
  if (to - from < 2) return false
  if (s.charCodeAt(i) === 58) {
    if (s.charCodeAt(i + 1) !== 58) return false
    gap = 0
    i += 2
  }
  while (i < to) {
    const start = i
    let value = 0
    while (i < to && i - start < 5) {
      const c = s.charCodeAt(i)
      const h = c < 128 ? HEX[c]! : -1
      if (h < 0) break
      value = value * 16 + h
      i++
    }
    if (i < to && s.charCodeAt(i) === 46) {
      // an IPv4 tail: the last 32 bits
      if (count > 6) return false
      const v4 = parseIpv4(s, start, to)
      if (v4 < 0) return false
      groups[count++] = v4 >>> 16
      groups[count++] = v4 & 0xffff
      i = to
      break
    }
    const digits = i - start
    if (digits === 0 || digits > 4 || count === 8) return false
    groups[count++] = value
    if (i === to) break
    if (s.charCodeAt(i) !== 58) return false
    i++
    if (i < to && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false
      gap = count
      i++
    } else if (i === to) {
      return false // a single trailing colon
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return false
  // expand "::" and pack into words
  const zeros = 8 - count
  for (let w = 0; w < 4; w++) {
    let word = 0
    for (let half = 0; half < 2; half++) {
      const g = w * 2 + half
      const group = gap < 0 || g < gap ? groups[g]! : g < gap + zeros ? 0 : groups[g - zeros]!
      word = word * 65536 + group
    }
    out[w] = word
  }
  return true
}

/**
 * Parses `ip` into `out` (see the module comment): 4 → `out[0]` is the IPv4 address, 6 →
 * `out[0..3]` the IPv6 words, 0 → not an IP address. IPv4-mapped IPv6 gives 4.
 */
export const parseIp = (ip: string, out: Uint32Array): 0 | 4 | 6 => {
  const text = ip.trim()
  const zone = text.indexOf("%")
  const to = zone >= 0 ? zone : text.length
  const colon = text.indexOf(":")
  if (colon < 0 || colon > to) {
    const v4 = parseIpv4(text, 0, to)
    if (v4 < 0) return 0
    out[0] = v4
    return 4
  }
  if (!parseIpv6(text, 0, to, out)) return 0
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!
    return 4
  }
  return 6
}

/** first and last address of each non-public IPv4 block, flat: [first0, last0, first1, last1, …] */
const v4Blocks = Float64Array.from(NON_PUBLIC_IPV4.flatMap(([network, prefix]) => {
  const first = parseIpv4(network)
  return [first, first + 2 ** (32 - prefix) - 1]
}))

/** False for the private, reserved, loopback, documentation, multicast … ranges of `Geo.ts`. */
export const isPublicV4 = (address: number): boolean => {
  for (let i = 0; i < v4Blocks.length; i += 2) if (address >= v4Blocks[i]! && address <= v4Blocks[i + 1]!) return false
  return true
}

const v6Blocks: ReadonlyArray<{ readonly words: Uint32Array; readonly masks: Uint32Array }> = NON_PUBLIC_IPV6.map(
  ([network, prefix]) => {
    const words = new Uint32Array(4)
    if (!parseIpv6(network, 0, network.length, words)) throw new Error(`bad network ${network}`)
    const masks = new Uint32Array(4)
    for (let w = 0; w < 4; w++) {
      const bits = Math.max(0, Math.min(32, prefix - w * 32))
      masks[w] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    }
    return { words, masks }
  }
)

/** False for the ULA, link-local, loopback, unspecified, documentation, multicast … ranges of `Geo.ts`. */
export const isPublicV6 = (address: Uint32Array): boolean => {
  for (const { masks, words } of v6Blocks) {
    if (
      ((address[0]! & masks[0]!) >>> 0) === words[0] &&
      ((address[1]! & masks[1]!) >>> 0) === words[1] &&
      ((address[2]! & masks[2]!) >>> 0) === words[2] &&
      ((address[3]! & masks[3]!) >>> 0) === words[3]
    ) return false
  }
  return true
}

/** `out[0..3]` (IPv6 words) as a canonical key: 32 lower-case hex digits. */
export const ipv6Key = (words: Uint32Array): string =>
  words[0]!.toString(16).padStart(8, "0") + words[1]!.toString(16).padStart(8, "0") +
  words[2]!.toString(16).padStart(8, "0") + words[3]!.toString(16).padStart(8, "0")
