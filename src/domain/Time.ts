/**
 * UTC hours and days on epoch milliseconds: the one home of `DAY_MS` and of the `YYYY-MM-DD`
 * day name (salt day, partition day, rollup day).
 */

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000

/** Start of the UTC hour of `epochMs`. */
export const hourStart = (epochMs: number): number => Math.floor(epochMs / HOUR_MS) * HOUR_MS

/** Start of the UTC day of `epochMs`. */
export const dayStart = (epochMs: number): number => Math.floor(epochMs / DAY_MS) * DAY_MS

const dayNames = new Map<number, string>()

/**
 * `YYYY-MM-DD` of the UTC day of `epochMs` (years outside 0000–9999 keep ISO's `±YYYYYY` form).
 * Cached per day: the writer names the salt day of every view.
 */
export const utcDay = (epochMs: number): string => {
  const day = Math.floor(epochMs / DAY_MS)
  let name = dayNames.get(day)
  if (name === undefined) {
    const iso = new Date(day * DAY_MS).toISOString()
    name = iso.slice(0, iso.indexOf("T"))
    if (dayNames.size > 64) dayNames.clear()
    dayNames.set(day, name)
  }
  return name
}
