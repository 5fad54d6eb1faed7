/**
 * IP → network (ASN, organisation, kind of network, Tor) as a service, for the writer's
 * enrichment (docs/network.md). The real layer reads the ASN ranges of `@ip-location-db/asn`
 * once when it is built (no network access, ~0.3 s) and, when `TOR_EXIT_LIST` names a file,
 * the Tor exit list, which it re-reads whenever the file changes (checked every 60 s).
 *
 * `lookup` is synchronous and total (see `makeNetworkOf` in `src/domain/Network.ts`) and
 * memoised per IP string (`memoizeString`, {@link NETWORK_CACHE_SIZE} entries): the writer sees a
 * visitor's address once per event. The cache is in memory only and starts empty when the Tor
 * list is reloaded.
 *
 * Settings (environment):
 * - `NETWORK_DATA_DIR`: a directory holding `asn-ipv4-num.csv` and `asn-ipv6-num.csv` in the
 *   package's format, to use a newer download than the installed package (default: the package);
 * - `TOR_EXIT_LIST`: path of a Tor exit list (one IP per line); unset → `isTor` is null.
 */
import { readFile, stat } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { Config, Context, Duration, Effect, Layer, Schema } from "effect"
import { type AsnRange, asnTableFromRanges, buildAsnTable, type AsnTable, rangeCounts, tableBytes } from "../domain/AsnTable.ts"
import { memoizeString } from "../domain/Memo.ts"
import { emptyNetwork, makeNetworkOf, type NetworkInfo, parseTorExitList, torExitCount, type TorExitList } from "../domain/Network.ts"

export class NetworkDataUnavailable extends Schema.TaggedError<NetworkDataUnavailable>()("NetworkDataUnavailable", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export const ASN_PACKAGE = "@ip-location-db/asn"

/**
 * Addresses the lookup cache holds (then it starts over), as many as the writer's geo cache: a
 * visitor's events are spread over its visit, so with fewer entries than concurrent visitors the
 * cache is cleared before an address comes back and every lookup pays the miss on top of the
 * search (in the writer benchmark's workload, 20,000 visitors: 0.33 µs per view with 10,000
 * entries, 0.13 µs with these; bench/README.md). ≈7 MB when full.
 */
export const NETWORK_CACHE_SIZE = 100_000
export const ASN_FILES = { ipv4: "asn-ipv4-num.csv", ipv6: "asn-ipv6-num.csv" } as const

/** Where the installed `@ip-location-db/asn` package lives. */
export const packageDirectory = (): string => dirname(createRequire(import.meta.url).resolve(`${ASN_PACKAGE}/package.json`))

/**
 * The build time encoded in the package version (`2.3.YYYYMMDDHH`), as an ISO timestamp, or
 * null for another version scheme.
 */
export const versionDate = (version: string): string | null => {
  const match = /^\d+\.\d+\.(\d{4})(\d{2})(\d{2})(\d{2})$/.exec(version)
  if (match === null) return null
  const [, year, month, day, hour] = match
  return `${year}-${month}-${day}T${hour}:00:00Z`
}

export interface AsnDataInfo {
  /** the npm package, or `directory` when NETWORK_DATA_DIR points elsewhere */
  readonly source: string
  readonly directory: string
  readonly version: string | null
  /** from the version: when the package was built */
  readonly date: string | null
  readonly ipv4Ranges: number
  readonly ipv6Ranges: number
  readonly autonomousSystems: number
  /** rows left out / clipped (see AsnTable) */
  readonly skipped: number
  readonly clipped: number
  /** bytes of the typed arrays plus an estimate for the organisation names */
  readonly tableBytes: number
  /** reading and building, ms */
  readonly loadMs: number
}

export interface TorListInfo {
  readonly path: string
  /** addresses in the list, or null while the file could not be read */
  readonly addresses: number | null
  readonly invalidLines: number
  readonly loadedAt: string | null
  readonly error: string | null
}

export interface NetworkDataInfo extends AsnDataInfo {
  readonly torExitList: TorListInfo | null
}

const describeTable = (table: AsnTable): Pick<AsnDataInfo, "ipv4Ranges" | "ipv6Ranges" | "autonomousSystems" | "skipped" | "clipped" | "tableBytes"> => {
  const counts = rangeCounts(table)
  return {
    ipv4Ranges: counts.ipv4,
    ipv6Ranges: counts.ipv6,
    autonomousSystems: table.asns.length,
    skipped: table.skipped,
    clipped: table.clipped,
    tableBytes: tableBytes(table)
  }
}

/** Reads and builds the ASN table from `directory` (default: the installed package). */
export const loadAsnData = Effect.fn("loadAsnData")(function*(directory?: string) {
  const started = performance.now()
  const dir = directory ?? packageDirectory()
  const fail = (message: string) => (cause: unknown) => new NetworkDataUnavailable({ message, cause })
  const [ipv4, ipv6] = yield* Effect.tryPromise({
    try: () => Promise.all([readFile(join(dir, ASN_FILES.ipv4)), readFile(join(dir, ASN_FILES.ipv6))]),
    catch: fail(`could not read ${ASN_FILES.ipv4} and ${ASN_FILES.ipv6} in ${dir}`)
  })
  const table = yield* Effect.try({ try: () => buildAsnTable({ ipv4, ipv6 }), catch: fail(`could not parse the ASN data in ${dir}`) })
  if (table.v4Entries.length === 0) return yield* new NetworkDataUnavailable({ message: `no IPv4 ranges in ${join(dir, ASN_FILES.ipv4)}`, cause: null })
  const version = yield* Effect.tryPromise(() => readFile(join(dir, "package.json"), "utf8")).pipe(
    Effect.map((text) => {
      const parsed: unknown = JSON.parse(text)
      return typeof parsed === "object" && parsed !== null && "version" in parsed && typeof parsed.version === "string" ? parsed.version : null
    }),
    Effect.orElseSucceed(() => null)
  )
  const info: AsnDataInfo = {
    source: directory === undefined ? ASN_PACKAGE : dir,
    directory: dir,
    version,
    date: version === null ? null : versionDate(version),
    ...describeTable(table),
    loadMs: Math.round(performance.now() - started)
  }
  return { table, info }
})

export class NetworkLookup extends Context.Service<NetworkLookup, {
  lookup(ip: string | undefined): NetworkInfo
  /** the data set, its size and load time, and the Tor list's state */
  info(): NetworkDataInfo
  /** re-reads the Tor exit list now if it changed (the layer also does this every `torCheckEvery`) */
  readonly checkTorList: Effect.Effect<void>
  /** the loaded ranges (read-only) */
  readonly table: AsnTable
}>()("spoolway/layers/NetworkLookup") {
  static readonly layerWith = (options: {
    /** directory with the two CSV files; default: the installed package */
    readonly dataDir?: string | undefined
    readonly torExitList?: string | undefined
    readonly torCheckEvery?: Duration.Input
    readonly cacheSize?: number
  } = {}): Layer.Layer<NetworkLookup, NetworkDataUnavailable> =>
    Layer.effect(
      NetworkLookup,
      Effect.gen(function*() {
        const { info: asnInfo, table } = yield* loadAsnData(options.dataDir)
        const cacheSize = options.cacheSize ?? NETWORK_CACHE_SIZE
        const torPath = options.torExitList
        let lookup = memoizeString(makeNetworkOf(table), cacheSize)
        let torInfo: TorListInfo | null = null
        let torVersion = ""

        const install = (tor: TorExitList | null) => {
          lookup = memoizeString(makeNetworkOf(table, { tor }), cacheSize)
        }

        const checkTorList: Effect.Effect<void> = torPath === undefined ? Effect.void : Effect.gen(function*() {
          const result = yield* Effect.tryPromise(async () => {
            const before = await stat(torPath)
            const version = `${before.ino}:${before.size}:${before.mtimeMs}`
            if (version === torVersion) return null
            return { version, text: await readFile(torPath, "utf8") }
          }).pipe(Effect.result)
          if (result._tag === "Failure") {
            // keep the list loaded before (a file being replaced may be missing for a moment)
            const error = String(result.failure.cause)
            if (torInfo?.error !== error) {
              const effect = torInfo?.addresses == null ? "isTor stays null until it can be read" : "isTor keeps the list read before"
              yield* Effect.logWarning(`TOR_EXIT_LIST ${torPath} could not be read; ${effect}`, error)
            }
            torInfo = { path: torPath, addresses: torInfo?.addresses ?? null, invalidLines: torInfo?.invalidLines ?? 0, loadedAt: torInfo?.loadedAt ?? null, error }
            return
          }
          if (result.success === null) return
          const tor = parseTorExitList(result.success.text)
          install(tor)
          const reload = torInfo?.addresses != null
          torVersion = result.success.version
          torInfo = { path: torPath, addresses: torExitCount(tor), invalidLines: tor.invalid, loadedAt: new Date().toISOString(), error: null }
          // the first read is in info() (and `spoolway network info`); a reload is news
          yield* (reload ? Effect.logInfo : Effect.logDebug)(`Tor exit list ${torPath}: ${torInfo.addresses} addresses (${tor.invalid} invalid lines)`)
        })

        if (torPath !== undefined) {
          yield* checkTorList
          yield* Effect.sleep(options.torCheckEvery ?? Duration.seconds(60)).pipe(Effect.andThen(checkTorList), Effect.forever, Effect.forkScoped)
        }
        yield* Effect.logDebug(`ASN data ${asnInfo.source} ${asnInfo.version ?? ""}: ${asnInfo.ipv4Ranges} IPv4 + ${asnInfo.ipv6Ranges} IPv6 ranges in ${asnInfo.loadMs} ms`)

        return NetworkLookup.of({
          lookup: (ip) => (ip === undefined ? emptyNetwork : lookup(ip)),
          info: () => ({ ...asnInfo, torExitList: torInfo }),
          checkTorList,
          table
        })
      })
    )

  /** Reads NETWORK_DATA_DIR and TOR_EXIT_LIST from the environment. */
  static readonly layer: Layer.Layer<NetworkLookup, NetworkDataUnavailable | Config.ConfigError> = Layer.unwrap(
    Effect.gen(function*() {
      const optional = (name: string) => Config.String(name).pipe(Config.withDefault(""), Config.map((value) => value.trim() || undefined))
      const dataDir = yield* optional("NETWORK_DATA_DIR")
      const torExitList = yield* optional("TOR_EXIT_LIST")
      return NetworkLookup.layerWith({ dataDir, torExitList })
    })
  )

  /**
   * A fixed table of ranges (and optionally a Tor list's text); no files, no cache. Taken
   * literally like `GeoLookup.layerTest`: documentation and private ranges may be mapped.
   */
  static readonly layerTest = (ranges: ReadonlyArray<AsnRange>, options: { readonly torExitList?: string } = {}): Layer.Layer<NetworkLookup> => {
    const table = asnTableFromRanges(ranges)
    const tor = options.torExitList === undefined ? null : parseTorExitList(options.torExitList)
    const lookup = makeNetworkOf(table, { tor, publicOnly: false })
    const info: NetworkDataInfo = {
      source: "test table",
      directory: "",
      version: null,
      date: null,
      ...describeTable(table),
      loadMs: 0,
      torExitList: tor === null ? null : { path: "", addresses: torExitCount(tor), invalidLines: tor.invalid, loadedAt: null, error: null }
    }
    return Layer.succeed(NetworkLookup, NetworkLookup.of({ lookup: (ip) => lookup(ip), info: () => info, checkTorList: Effect.void, table }))
  }
}
