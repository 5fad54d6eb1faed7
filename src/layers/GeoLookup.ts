/**
 * IP → geo lookup (docs/architecture.md, enrichment) as a service, so the writer's programs can run with the real
 * geoip-lite database or with a fixed table in tests.
 *
 * `lookup` is synchronous and total: private / reserved / loopback / malformed / unknown IPs
 * give {@link emptyGeo} (all nulls); empty strings in the database (geoip-lite reports `""`
 * for an unknown region or city) become null. `isEu` is derived from the country (EU-27
 * list) because the data's own `eu` flag is stale.
 *
 * The real layer imports geoip-lite lazily when the layer is built — the module reads its
 * ~110 MB data files synchronously at load — so importing this file (e.g. for `layerTest`)
 * costs nothing, and building the layer once loads the data once per process (Node caches
 * the module).
 */
import { Context, Effect, Layer, Schema } from "effect"
import type * as GeoipLite from "geoip-lite"
import { emptyGeo, type GeoInfo, isEuCountry, publicIp } from "../domain/Geo.ts"

export class GeoDataUnavailable extends Schema.TaggedError<GeoDataUnavailable>()("GeoDataUnavailable", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

type GeoipModule = Pick<typeof GeoipLite, "lookup">

const nonEmpty = (value: string | undefined | null): string | null =>
  typeof value === "string" && value.length > 0 ? value : null

/** Map one geoip-lite record to {@link GeoInfo}. */
export const fromGeoipRecord = (record: GeoipLite.Lookup | null): GeoInfo => {
  if (record === null) return emptyGeo
  const country = nonEmpty(record.country)
  if (country === null) return emptyGeo
  return {
    country,
    region: nonEmpty(record.region),
    city: nonEmpty(record.city),
    // not `record.eu`: the bundled data's flag is stale (it still marks GB as EU)
    isEu: isEuCountry(country),
    timezone: nonEmpty(record.timezone)
  }
}

/** A total lookup function over a geoip-lite-like module. */
export const makeGeoipLookup = (geoip: GeoipModule) => (ip: string | undefined): GeoInfo => {
  const target = publicIp(ip)
  if (target === null) return emptyGeo
  try {
    return fromGeoipRecord(geoip.lookup(target.address))
  } catch {
    return emptyGeo
  }
}

export class GeoLookup extends Context.Service<GeoLookup, {
  lookup(ip: string | undefined): GeoInfo
}>()("spoolway/layers/GeoLookup") {
  /** geoip-lite's bundled database, loaded once when the layer is built. */
  static readonly layer: Layer.Layer<GeoLookup, GeoDataUnavailable> = Layer.effect(
    GeoLookup,
    Effect.tryPromise({
      try: () => import("geoip-lite"),
      catch: (cause) => new GeoDataUnavailable({ message: "could not load the geoip-lite database", cause })
    }).pipe(
      Effect.map((module) => {
        const geoip: GeoipModule = (module as { default?: GeoipModule }).default ?? module
        return GeoLookup.of({ lookup: makeGeoipLookup(geoip) })
      })
    )
  )

  /**
   * A fixed table: exact IP string → geo; anything not in the table is {@link emptyGeo}.
   * The table is taken literally (it may map documentation addresses such as 203.0.113.7,
   * which the real layer treats as non-public).
   */
  static readonly layerTest = (table: Readonly<Record<string, GeoInfo>>): Layer.Layer<GeoLookup> =>
    Layer.succeed(
      GeoLookup,
      GeoLookup.of({
        lookup: (ip) => {
          if (ip === undefined || !Object.hasOwn(table, ip)) return emptyGeo
          return table[ip] ?? emptyGeo
        }
      })
    )
}
