/**
 * The rows of the rollup tables (`aggregated_metrics`, `daily_metrics`) and the accumulators
 * that sum counters into them per bucket and tenant scope (Rollups.ts says what is counted).
 * Rows come out sorted by their table's conflict key (the PostgreSQL sink's lock order).
 */
import type { Scope } from "./Tenant.ts"
import { dayStart, hourStart } from "./Time.ts"

export type Granularity = "hour" | "day"

export interface MetricRow {
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly metric: string
  readonly corpId: number | null
  readonly domainId: number | null
  readonly dimension: string
  readonly dimensionValue: string | null
  value: number
}

/**
 * A (metric, dimension) pair. `rollsUp`: its day bucket is the sum of its hour buckets (every
 * additive counter); not so for unique visitors, whose hour and day seen-sets differ.
 */
export interface Series {
  readonly key: string
  readonly metric: string
  readonly dimension: string
  readonly rollsUp: boolean
}

export const series = (metric: string, dimension: string, rollsUp = true): Series => ({
  key: `${metric}\u0001${dimension}`,
  metric,
  dimension,
  rollsUp
})


/** The counters of one (bucket, granularity, scope): series → dimension value → row. */
export class BucketCounters {
  readonly series = new Map<string, { readonly series: Series; readonly rows: Map<string | null, MetricRow> }>()
  readonly bucketStart: number
  readonly granularity: Granularity
  readonly scope: Scope

  constructor(bucketStart: number, granularity: Granularity, scope: Scope) {
    this.bucketStart = bucketStart
    this.granularity = granularity
    this.scope = scope
  }

  add(s: Series, dimensionValue: string | null, value: number): void {
    let entry = this.series.get(s.key)
    if (entry === undefined) {
      entry = { series: s, rows: new Map() }
      this.series.set(s.key, entry)
    }
    const hit = entry.rows.get(dimensionValue)
    if (hit !== undefined) {
      hit.value += value
      return
    }
    entry.rows.set(dimensionValue, {
      bucketStart: this.bucketStart,
      granularity: this.granularity,
      metric: s.metric,
      corpId: this.scope.corpId,
      domainId: this.scope.domainId,
      dimension: s.dimension,
      dimensionValue,
      value
    })
  }
}

const bucketKey = (bucketStart: number, granularity: Granularity, scope: Scope) =>
  `${bucketStart}\u0001${granularity}\u0001${scope.corpId}\u0001${scope.domainId}`

const compareValues = (a: string | null, b: string | null) =>
  a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1

/**
 * (bucket start, corp, domain) → value through nested maps on the numbers themselves: the
 * per-event lookups build no key strings (scopes are compared by value, not by identity).
 */
class ScopedIndex<T> {
  private readonly map = new Map<number, Map<number | null, Map<number | null, T>>>()
  readonly values: Array<T> = []

  getOrCreate(bucketStart: number, scope: Scope, make: () => T): T {
    let byCorp = this.map.get(bucketStart)
    if (byCorp === undefined) {
      byCorp = new Map()
      this.map.set(bucketStart, byCorp)
    }
    let byDomain = byCorp.get(scope.corpId)
    if (byDomain === undefined) {
      byDomain = new Map()
      byCorp.set(scope.corpId, byDomain)
    }
    let value = byDomain.get(scope.domainId)
    if (value === undefined) {
      value = make()
      byDomain.set(scope.domainId, value)
      this.values.push(value)
    }
    return value
  }
}

/**
 * Additive counters keyed by (bucket, granularity, scope, metric, dimension, value). Counters
 * are kept per hour; day buckets of rolling-up series are derived when the rows are taken.
 */
export class MetricAccumulator {
  private readonly hours = new ScopedIndex<BucketCounters>()
  private readonly days = new ScopedIndex<BucketCounters>()

  /** The counters of one bucket and scope (created on first use). */
  bucket(bucketStart: number, granularity: Granularity, scope: Scope): BucketCounters {
    return (granularity === "hour" ? this.hours : this.days).getOrCreate(
      bucketStart,
      scope,
      () => new BucketCounters(bucketStart, granularity, scope)
    )
  }

  /** The hour bucket of `epochMs` (its day bucket follows for rolling-up series). */
  hourOf(epochMs: number, scope: Scope): BucketCounters {
    return this.bucket(hourStart(epochMs), "hour", scope)
  }

  get size(): number {
    return this.rows().length
  }

  /** Rows (hour buckets, derived day buckets, explicit buckets) in a stable key order. */
  rows(): Array<MetricRow> {
    const all = new Map<string, BucketCounters>()
    for (const counters of [...this.hours.values, ...this.days.values]) {
      const copy = new BucketCounters(counters.bucketStart, counters.granularity, counters.scope)
      for (const { rows, series: s } of counters.series.values()) {
        for (const row of rows.values()) copy.add(s, row.dimensionValue, row.value)
      }
      all.set(bucketKey(counters.bucketStart, counters.granularity, counters.scope), copy)
    }
    for (const counters of this.hours.values) {
      const day = dayStart(counters.bucketStart)
      const key = bucketKey(day, "day", counters.scope)
      let target = all.get(key)
      if (target === undefined) {
        target = new BucketCounters(day, "day", counters.scope)
        all.set(key, target)
      }
      for (const { rows, series: s } of counters.series.values()) {
        if (!s.rollsUp) continue
        for (const row of rows.values()) target.add(s, row.dimensionValue, row.value)
      }
    }
    const out: Array<MetricRow> = []
    for (const key of [...all.keys()].sort()) {
      const counters = all.get(key)!
      for (const seriesKey of [...counters.series.keys()].sort()) {
        const rows = counters.series.get(seriesKey)!.rows
        for (const value of [...rows.keys()].sort(compareValues)) out.push(rows.get(value)!)
      }
    }
    return out
  }
}

export interface DailyRow {
  readonly day: number
  readonly corpId: number | null
  readonly domainId: number | null
  pageviews: number
  uniqueVisitors: number
  sessions: number
  events: number
  conversions: number
  conversionValue: number
  botEvents: number
}

export type DailyField = Exclude<keyof DailyRow, "day" | "corpId" | "domainId">

const DAILY_FIELDS: ReadonlyArray<DailyField> = [
  "pageviews",
  "uniqueVisitors",
  "sessions",
  "events",
  "conversions",
  "conversionValue",
  "botEvents"
]

/** `daily_metrics` counters per (UTC day, corp, domain). */
export class DailyAccumulator {
  private readonly entries = new ScopedIndex<DailyRow>()

  add(epochMs: number, scope: Scope, field: DailyField, value: number): void {
    const day = dayStart(epochMs)
    const row = this.entries.getOrCreate(day, scope, () => ({
      day,
      corpId: scope.corpId,
      domainId: scope.domainId,
      pageviews: 0,
      uniqueVisitors: 0,
      sessions: 0,
      events: 0,
      conversions: 0,
      conversionValue: 0,
      botEvents: 0
    }))
    row[field] += value
  }

  /** Adds every counter of `row` (same day and scope). */
  addRow(row: DailyRow): void {
    const scope = { corpId: row.corpId, domainId: row.domainId }
    for (const field of DAILY_FIELDS) if (row[field] !== 0) this.add(row.day, scope, field, row[field])
  }

  get size(): number {
    return this.entries.values.length
  }

  rows(): ReadonlyArray<DailyRow> {
    return this.entries.values
      .map((row) => [`${row.day}\u0001${row.corpId}\u0001${row.domainId}`, row] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, row]) => row)
  }
}
