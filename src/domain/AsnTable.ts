/**
 * IP range → autonomous system (ASN and organisation name), held in sorted typed arrays and
 * searched by binary search. No I/O: `buildAsnTable` takes the bytes of the two numeric CSV
 * files of `@ip-location-db/asn` (`asn-ipv4-num.csv`, `asn-ipv6-num.csv`, rows
 * `range_start,range_end,asn,organisation` with inclusive decimal bounds); the
 * `NetworkLookup` layer reads them.
 *
 * Layout (no JS object per range):
 * - IPv4: `v4Starts`, `v4Ends` (one unsigned word per address) and `v4Entries`, one row per range;
 * - IPv6: `v6Starts`, `v6Ends` (four big-endian words per address) and `v6Entries`;
 * - an *entry* is one autonomous system: `asns[entry]` and `orgs[entry]`, shared by every range
 *   of that AS in both families (the data gives every ASN one name; should a later release give
 *   one ASN two names, the first one read is kept).
 *
 * Ranges are sorted by start; a range overlapping the one before it is clipped to begin after
 * it (the earlier row wins; release 2.3.2026061719 has one such row: 215.0.0.0/16 inside a
 * DoD range). Malformed rows are counted in `skipped` and left out.
 */
import { parseIp } from "./IpAddress.ts"

export interface AsnTable {
  readonly v4Starts: Uint32Array
  readonly v4Ends: Uint32Array
  readonly v4Entries: Uint32Array
  readonly v6Starts: Uint32Array
  readonly v6Ends: Uint32Array
  readonly v6Entries: Uint32Array
  /**
   * Search indexes, so a lookup touches a few cache lines instead of ~19 scattered ones:
   * `v4Index[p]` = number of IPv4 ranges starting before `p << 16` (65,537 slots);
   * `v6Sample` = the start of every {@link V6_SAMPLE}th IPv6 range (four words each).
   */
  readonly v4Index: Uint32Array
  readonly v6Sample: Uint32Array
  /** entry → autonomous system number */
  readonly asns: Uint32Array
  /** entry → organisation name as published (e.g. `Google LLC`) */
  readonly orgs: ReadonlyArray<string>
  /** rows left out: unparseable, end before start, or wholly inside the range before them */
  readonly skipped: number
  /** rows whose start was moved past an overlapping range before them */
  readonly clipped: number
}

/** A range given as text, for small tables (tests, fixtures). */
export interface AsnRange {
  readonly start: string
  readonly end: string
  readonly asn: number
  readonly org: string
}

const TWO_32 = 4294967296

/** Three-way comparison of `stride`-word addresses `a[ai…]` and `b[bi…]`. */
const compareWords = (a: Uint32Array, ai: number, b: Uint32Array, bi: number, stride: number): number => {
  for (let w = 0; w < stride; w++) {
    const x = a[ai + w]!
    const y = b[bi + w]!
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/** Sets `to[ti…]` = `from[fi…]` + 1; false when `from` is the last address of the family. */
const incrementInto = (from: Uint32Array, fi: number, to: Uint32Array, ti: number, stride: number): boolean => {
  let carry = 1
  for (let w = stride - 1; w >= 0; w--) {
    const sum = from[fi + w]! + carry
    to[ti + w] = sum % TWO_32
    carry = sum >= TWO_32 ? 1 : 0
  }
  return carry === 0
}

/** Ranges of one family, appended in file order, then sorted and de-overlapped by `finish`. */
class RangeBuilder {
  starts: Uint32Array
  ends: Uint32Array
  entries: Uint32Array
  count = 0
  skipped = 0
  clipped = 0
  readonly stride: 1 | 4

  constructor(stride: 1 | 4, capacity: number) {
    this.stride = stride
    this.starts = new Uint32Array(capacity * stride)
    this.ends = new Uint32Array(capacity * stride)
    this.entries = new Uint32Array(capacity)
  }

  push(start: Uint32Array, end: Uint32Array, entry: number): void {
    const { stride } = this
    if (compareWords(start, 0, end, 0, stride) > 0) {
      this.skipped++
      return
    }
    if (this.count === this.entries.length) this.grow()
    const at = this.count * stride
    for (let w = 0; w < stride; w++) {
      this.starts[at + w] = start[w]!
      this.ends[at + w] = end[w]!
    }
    this.entries[this.count++] = entry
  }

  private grow(): void {
    const capacity = Math.max(16, this.entries.length * 2)
    const resize = (array: Uint32Array, length: number) => {
      const next = new Uint32Array(length)
      next.set(array)
      return next
    }
    this.starts = resize(this.starts, capacity * this.stride)
    this.ends = resize(this.ends, capacity * this.stride)
    this.entries = resize(this.entries, capacity)
  }

  finish(): { readonly starts: Uint32Array; readonly ends: Uint32Array; readonly entries: Uint32Array } {
    const { count, stride } = this
    let { ends, entries, starts } = this
    let sorted = true
    for (let i = 1; i < count && sorted; i++) sorted = compareWords(starts, (i - 1) * stride, starts, i * stride, stride) <= 0
    if (!sorted) {
      // rare (the published files are sorted): reorder by start, ties in file order
      const order = Array.from({ length: count }, (_, i) => i)
      order.sort((x, y) => compareWords(starts, x * stride, starts, y * stride, stride) || x - y)
      const s = new Uint32Array(count * stride)
      const e = new Uint32Array(count * stride)
      const n = new Uint32Array(count)
      order.forEach((from, to) => {
        s.set(starts.subarray(from * stride, (from + 1) * stride), to * stride)
        e.set(ends.subarray(from * stride, (from + 1) * stride), to * stride)
        n[to] = entries[from]!
      })
      starts = s
      ends = e
      entries = n
    }
    // drop or clip ranges overlapping the kept range before them (in place: kept ≤ read)
    let kept = 0
    for (let i = 0; i < count; i++) {
      const at = i * stride
      if (kept > 0) {
        const last = (kept - 1) * stride
        if (compareWords(starts, at, ends, last, stride) <= 0) {
          if (compareWords(ends, at, ends, last, stride) <= 0 || !incrementInto(ends, last, starts, at, stride)) {
            this.skipped++
            continue
          }
          this.clipped++
        }
      }
      const to = kept * stride
      if (to !== at) {
        starts.copyWithin(to, at, at + stride)
        ends.copyWithin(to, at, at + stride)
        entries[kept] = entries[i]!
      }
      kept++
    }
    return {
      starts: starts.slice(0, kept * stride),
      ends: ends.slice(0, kept * stride),
      entries: entries.slice(0, kept)
    }
  }
}

/** Entries (autonomous systems) shared by both families: ASN → entry, first name kept. */
class Entries {
  readonly byAsn = new Map<number, number>()
  readonly asns: Array<number> = []
  readonly orgs: Array<string> = []

  get(asn: number): number | undefined {
    return this.byAsn.get(asn)
  }

  add(asn: number, org: string): number {
    const entry = this.asns.length
    this.byAsn.set(asn, entry)
    this.asns.push(asn)
    this.orgs.push(org)
    return entry
  }
}

const countLines = (bytes: Uint8Array): number => {
  let lines = 1
  for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) lines++
  return lines
}

const utf8 = new TextDecoder("utf-8")

/** The organisation field `bytes[from, to)`: unquoted, `""` → `"`, trimmed. */
const decodeOrg = (bytes: Uint8Array, from: number, to: number): string => {
  const text = utf8.decode(bytes.subarray(from, to))
  if (text.length >= 2 && text.startsWith("\"") && text.endsWith("\"")) return text.slice(1, -1).replaceAll("\"\"", "\"").trim()
  return text.trim()
}

/**
 * Parses an unsigned decimal at `bytes[from…]` into `out[0..stride)` (big-endian words), up to a
 * comma or the line end. Returns the index after the comma, or -1 (no digits, overflow, or no comma
 * when `comma` is required).
 */
const readDecimal = (bytes: Uint8Array, from: number, lineEnd: number, out: Uint32Array, stride: number): number => {
  let i = from
  if (stride === 1) {
    let value = 0
    for (; i < lineEnd; i++) {
      const digit = bytes[i]! - 48
      if (digit < 0 || digit > 9) break
      value = value * 10 + digit
    }
    if (value >= TWO_32) return -1
    out[0] = value
  } else {
    out.fill(0, 0, stride)
    // up to 6 digits at a time: a word × 10^6 + carry stays below 2^53
    while (i < lineEnd) {
      let chunk = 0
      let scale = 1
      const chunkStart = i
      for (; i < lineEnd && i - chunkStart < 6; i++) {
        const digit = bytes[i]! - 48
        if (digit < 0 || digit > 9) break
        chunk = chunk * 10 + digit
        scale *= 10
      }
      if (i === chunkStart) break
      let carry = chunk
      for (let w = stride - 1; w >= 0; w--) {
        const x = out[w]! * scale + carry
        carry = Math.floor(x / TWO_32)
        out[w] = x - carry * TWO_32
      }
      if (carry !== 0) return -1
      if (i - chunkStart < 6) break
    }
  }
  if (i === from || i >= lineEnd || bytes[i] !== 44) return -1
  return i + 1
}

const parseNumericCsv = (bytes: Uint8Array, stride: 1 | 4, entries: Entries) => {
  const ranges = new RangeBuilder(stride, countLines(bytes))
  const start = new Uint32Array(4)
  const end = new Uint32Array(4)
  const asnWords = new Uint32Array(1)
  let pos = 0
  while (pos < bytes.length) {
    let lineEnd = bytes.indexOf(10, pos)
    if (lineEnd < 0) lineEnd = bytes.length
    let contentEnd = lineEnd
    if (contentEnd > pos && bytes[contentEnd - 1] === 13) contentEnd--
    if (contentEnd > pos) {
      const afterStart = readDecimal(bytes, pos, contentEnd, start, stride)
      const afterEnd = afterStart < 0 ? -1 : readDecimal(bytes, afterStart, contentEnd, end, stride)
      const afterAsn = afterEnd < 0 ? -1 : readDecimal(bytes, afterEnd, contentEnd, asnWords, 1)
      if (afterAsn < 0) {
        ranges.skipped++
      } else {
        const asn = asnWords[0]!
        const entry = entries.get(asn) ?? entries.add(asn, decodeOrg(bytes, afterAsn, contentEnd))
        ranges.push(start, end, entry)
      }
    }
    pos = lineEnd + 1
  }
  return ranges
}

/** IPv6 ranges per sample of `v6Sample` (a block of 16 ranges = 256 bytes of starts) */
export const V6_SAMPLE = 16

const indexV4 = (starts: Uint32Array): Uint32Array => {
  const index = new Uint32Array(65537)
  let i = 0
  for (let prefix = 0; prefix <= 65536; prefix++) {
    const first = prefix * 65536
    while (i < starts.length && starts[i]! < first) i++
    index[prefix] = i
  }
  return index
}

const sampleV6 = (starts: Uint32Array): Uint32Array => {
  const ranges = starts.length >>> 2
  const sample = new Uint32Array(Math.ceil(ranges / V6_SAMPLE) * 4)
  for (let block = 0; block * V6_SAMPLE < ranges; block++) sample.set(starts.subarray(block * V6_SAMPLE * 4, block * V6_SAMPLE * 4 + 4), block * 4)
  return sample
}

const assemble = (v4: RangeBuilder, v6: RangeBuilder, entries: Entries): AsnTable => {
  const four = v4.finish()
  const six = v6.finish()
  return {
    v4Starts: four.starts,
    v4Ends: four.ends,
    v4Entries: four.entries,
    v6Starts: six.starts,
    v6Ends: six.ends,
    v6Entries: six.entries,
    v4Index: indexV4(four.starts),
    v6Sample: sampleV6(six.starts),
    asns: Uint32Array.from(entries.asns),
    orgs: entries.orgs,
    skipped: v4.skipped + v6.skipped,
    clipped: v4.clipped + v6.clipped
  }
}

/** The table from the bytes of `asn-ipv4-num.csv` and `asn-ipv6-num.csv`. */
export const buildAsnTable = (input: { readonly ipv4: Uint8Array; readonly ipv6: Uint8Array }): AsnTable => {
  const entries = new Entries()
  const v4 = parseNumericCsv(input.ipv4, 1, entries)
  const v6 = parseNumericCsv(input.ipv6, 4, entries)
  return assemble(v4, v6, entries)
}

/**
 * A table from ranges given as IP text (each range within one family; IPv4-mapped IPv6 counts
 * as IPv4), for tests and small fixed tables. Malformed or mixed-family ranges are skipped.
 */
export const asnTableFromRanges = (ranges: Iterable<AsnRange>): AsnTable => {
  const entries = new Entries()
  const v4 = new RangeBuilder(1, 16)
  const v6 = new RangeBuilder(4, 16)
  const start = new Uint32Array(4)
  const end = new Uint32Array(4)
  for (const range of ranges) {
    const family = parseIp(range.start, start)
    if (family === 0 || parseIp(range.end, end) !== family || !Number.isSafeInteger(range.asn) || range.asn < 0 || range.asn >= TWO_32) {
      v4.skipped++
      continue
    }
    const entry = entries.get(range.asn) ?? entries.add(range.asn, range.org)
    ;(family === 4 ? v4 : v6).push(start, end, entry)
  }
  return assemble(v4, v6, entries)
}

/** Entry of the IPv4 range holding `address` (unsigned 32-bit), or -1. */
export const findV4 = (table: AsnTable, address: number): number => {
  const starts = table.v4Starts
  const prefix = address >>> 16
  // the answer is the last range starting at or before `address`: the last one starting before
  // this /16, or one of those starting inside it
  let found = table.v4Index[prefix]! - 1
  let lo = found + 1
  let hi = table.v4Index[prefix + 1]! - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (starts[mid]! <= address) {
      found = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found >= 0 && table.v4Ends[found]! >= address ? table.v4Entries[found]! : -1
}

/** Whether the four-word address at `words[at…]` is ≤ k0:k1:k2:k3. */
const atOrBefore = (words: Uint32Array, at: number, k0: number, k1: number, k2: number, k3: number): boolean => {
  const w0 = words[at]!
  if (w0 !== k0) return w0 < k0
  const w1 = words[at + 1]!
  if (w1 !== k1) return w1 < k1
  const w2 = words[at + 2]!
  if (w2 !== k2) return w2 < k2
  return words[at + 3]! <= k3
}

/** Last index in [lo, hi] whose start (4 words) is ≤ the key, or `found` when none is. */
const lastAtOrBefore = (starts: Uint32Array, lo: number, hi: number, found: number, k0: number, k1: number, k2: number, k3: number): number => {
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (atOrBefore(starts, mid << 2, k0, k1, k2, k3)) {
      found = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found
}

/** Entry of the IPv6 range holding `address` (four big-endian words), or -1. */
export const findV6 = (table: AsnTable, address: Uint32Array): number => {
  const k0 = address[0]!
  const k1 = address[1]!
  const k2 = address[2]!
  const k3 = address[3]!
  // the block (of V6_SAMPLE ranges) whose first range is the last to start at or before the address
  const block = lastAtOrBefore(table.v6Sample, 0, (table.v6Sample.length >>> 2) - 1, -1, k0, k1, k2, k3)
  if (block < 0) return -1
  const first = block * V6_SAMPLE
  const last = Math.min(first + V6_SAMPLE, table.v6Entries.length) - 1
  const found = lastAtOrBefore(table.v6Starts, first + 1, last, first, k0, k1, k2, k3)
  return compareWords(address, 0, table.v6Ends, found << 2, 4) <= 0 ? table.v6Entries[found]! : -1
}

const scratch = new Uint32Array(4)

/** Entry for an IP address string (any address, public or not), or -1 (not an IP, or in no range). */
export const findEntry = (table: AsnTable, ip: string): number => {
  const family = parseIp(ip, scratch)
  if (family === 4) return findV4(table, scratch[0]!)
  if (family === 6) return findV6(table, scratch)
  return -1
}

/** Number of ranges per family. */
export const rangeCounts = (table: AsnTable): { readonly ipv4: number; readonly ipv6: number } => ({
  ipv4: table.v4Entries.length,
  ipv6: table.v6Entries.length
})

/** Bytes held by the table: the typed arrays plus an estimate for the organisation strings. */
export const tableBytes = (table: AsnTable): number => {
  let bytes = table.v4Starts.byteLength + table.v4Ends.byteLength + table.v4Entries.byteLength + table.v4Index.byteLength +
    table.v6Starts.byteLength + table.v6Ends.byteLength + table.v6Entries.byteLength + table.v6Sample.byteLength + table.asns.byteLength
  // a string is ~16 bytes of header plus one (Latin-1) or two bytes per character; 8 per array slot
  for (const org of table.orgs) bytes += 24 + org.length * (/[^\u0000-\u00ff]/.test(org) ? 2 : 1)
  return bytes
}
