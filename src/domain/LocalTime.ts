/**
 * Wall-clock time in a site's time zone, for the stats query API (date ranges, time buckets).
 *
 * A "local" value here is a naive wall-clock time encoded as epoch milliseconds *as if it were
 * UTC* (`Date.UTC(y, m, d, h)`): calendar arithmetic on it (next day, first of the month,
 * Monday of the week) is plain UTC arithmetic, and `toInstant` maps it back to a real instant in
 * the zone. Pure: uses only `Intl`.
 */
import { DAY_MS, HOUR_MS } from "./Time.ts"

const formatters = new Map<string, Intl.DateTimeFormat>()

const formatterOf = (tz: string): Intl.DateTimeFormat => {
  let f = formatters.get(tz)
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit"
    })
    formatters.set(tz, f)
  }
  return f
}

/** The wall-clock time of `instantMs` in `tz`, as a local value (milliseconds dropped). */
export const toLocal = (instantMs: number, tz: string): number => {
  const parts: Record<string, number> = {}
  for (const part of formatterOf(tz).formatToParts(new Date(instantMs))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value)
  }
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour! % 24, parts.minute!, parts.second!)
}

/** Offset of `tz` from UTC at `instantMs` (local − UTC), in milliseconds. */
export const offsetAt = (instantMs: number, tz: string): number => {
  const whole = Math.floor(instantMs / 1000) * 1000
  return toLocal(whole, tz) - whole
}

/**
 * The instant of the local value `localMs` in `tz`. In a DST gap (a wall time that does not
 * exist) it is the instant the clock would show with the earlier offset; in an overlap, the
 * earlier of the two instants.
 */
export const toInstant = (localMs: number, tz: string): number => {
  const first = localMs - offsetAt(localMs, tz)
  const second = localMs - offsetAt(first, tz)
  if (first === second) return first
  // overlap or gap: take the earlier instant that shows this wall time, else the first guess
  return toLocal(Math.min(first, second), tz) === localMs ? Math.min(first, second) : Math.max(first, second)
}

/** Local midnight of the local value's day. */
export const startOfDay = (localMs: number): number => Math.floor(localMs / DAY_MS) * DAY_MS

/** Local start of the month of `localMs`, shifted by `months`. */
export const startOfMonth = (localMs: number, months = 0): number => {
  const d = new Date(localMs)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1)
}

/** Local Monday 00:00 of the ISO week of `localMs`. */
export const startOfWeek = (localMs: number): number => {
  const day = startOfDay(localMs)
  const weekday = (new Date(day).getUTCDay() + 6) % 7 // Monday = 0
  return day - weekday * DAY_MS
}

export type TimeGrain = "hour" | "day" | "week" | "month"

/** Start of the bucket of `grain` holding the local value. */
export const bucketStart = (localMs: number, grain: TimeGrain): number => {
  switch (grain) {
    case "hour":
      return Math.floor(localMs / HOUR_MS) * HOUR_MS
    case "day":
      return startOfDay(localMs)
    case "week":
      return startOfWeek(localMs)
    case "month":
      return startOfMonth(localMs)
  }
}

/** Start of the bucket after the one starting at `localMs`. */
export const nextBucket = (localMs: number, grain: TimeGrain): number => {
  switch (grain) {
    case "hour":
      return localMs + HOUR_MS
    case "day":
      return localMs + DAY_MS
    case "week":
      return localMs + 7 * DAY_MS
    case "month":
      return startOfMonth(localMs, 1)
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** `YYYY-MM-DD` of a local value. */
export const formatDate = (localMs: number): string => {
  const d = new Date(localMs)
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`
}

/**
 * The name of a time bucket (the API's time dimension values): hour `YYYY-MM-DD HH:00`, day
 * `YYYY-MM-DD`, week the date of its Monday, month `YYYY-MM-01`.
 */
export const bucketLabel = (bucketLocalMs: number, grain: TimeGrain): string =>
  grain === "hour" ? `${formatDate(bucketLocalMs)} ${pad(new Date(bucketLocalMs).getUTCHours())}:00` : formatDate(bucketLocalMs)

/** Every bucket label of `grain` overlapping the instants [fromMs, toMs), in order. */
export const bucketLabels = (fromMs: number, toMs: number, tz: string, grain: TimeGrain): Array<string> => {
  const out: Array<string> = []
  if (toMs <= fromMs) return out
  const last = toLocal(toMs - 1, tz)
  for (let b = bucketStart(toLocal(fromMs, tz), grain); b <= last; b = nextBucket(b, grain)) out.push(bucketLabel(b, grain))
  return out
}

/** ISO-8601 of an instant with the zone's offset at that instant (`2026-12-01T00:00:00+01:00`). */
export const formatInstant = (instantMs: number, tz: string): string => {
  const offset = offsetAt(instantMs, tz)
  const local = new Date(Math.floor(instantMs / 1000) * 1000 + offset).toISOString().slice(0, 19)
  if (offset === 0) return `${local}Z`
  const abs = Math.abs(offset) / 60_000
  return `${local}${offset < 0 ? "-" : "+"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
}
