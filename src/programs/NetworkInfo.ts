/**
 * `spoolway network info` and `spoolway network lookup <ip>`: what the network enrichment has
 * loaded (data set version and date, range counts, memory, load time, Tor list, how the ASes
 * classify) and how one address comes out, with the rule that decided it.
 */
import { Effect } from "effect"
import type { NetworkInfo, OrgType } from "../domain/Network.ts"
import { defaultClassifier, ORG_TYPES, type RuleMatch } from "../domain/NetworkRules.ts"
import { type NetworkDataInfo, NetworkLookup } from "../layers/NetworkLookup.ts"

export const DATA_ATTRIBUTION = "CC BY 4.0 — RouteViews (routeviews.org), DB-IP (db-ip.com), NRO (nro.net), via ip-location-db"

export interface NetworkReport extends NetworkDataInfo {
  /** growth of the process while loading (after a GC when node runs with --expose-gc) */
  readonly memory: { readonly rssBytes: number; readonly heapBytes: number; readonly externalBytes: number; readonly gcExposed: boolean }
  /** autonomous systems per orgType under the shipped rules */
  readonly orgTypes: Readonly<Record<OrgType, number>>
  readonly classifyMs: number
}

const gc = (): boolean => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) return false
  collect()
  return true
}

/** Loads the data as the writer does (NETWORK_DATA_DIR, TOR_EXIT_LIST) and describes it. */
export const networkReport = Effect.fn("networkReport")(function*() {
  const gcExposed = gc()
  const before = process.memoryUsage()
  return yield* Effect.gen(function*() {
    const lookup = yield* NetworkLookup
    gc()
    const after = process.memoryUsage()
    // the writer classifies an AS on its first lookup; here every AS once, for the counts
    const { table } = lookup
    const started = performance.now()
    const orgTypes = Object.fromEntries(ORG_TYPES.map((type) => [type, 0])) as Record<OrgType, number>
    for (let entry = 0; entry < table.asns.length; entry++) orgTypes[defaultClassifier.classify(table.asns[entry]!, table.orgs[entry]!)]++
    const report: NetworkReport = {
      ...lookup.info(),
      memory: {
        rssBytes: after.rss - before.rss,
        heapBytes: after.heapUsed - before.heapUsed,
        externalBytes: after.external - before.external,
        gcExposed
      },
      orgTypes,
      classifyMs: Math.round(performance.now() - started)
    }
    return report
  }).pipe(Effect.provide(NetworkLookup.layer))
})

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`
const int = (n: number) => n.toLocaleString("en-US")

export const formatNetworkReport = (report: NetworkReport): string => {
  const tor = report.torExitList
  const torLine = tor === null
    ? "not configured (set TOR_EXIT_LIST to a file with one IP per line); isTor is null"
    : tor.addresses === null
    ? `${tor.path}: not readable (${tor.error ?? "?"}); isTor is null`
    : `${tor.path}: ${int(tor.addresses)} addresses, ${tor.invalidLines} invalid lines, read ${tor.loadedAt ?? "?"}`
  const total = ORG_TYPES.reduce((sum, type) => sum + report.orgTypes[type], 0)
  return [
    `data set       ${report.source}${report.version === null ? "" : ` ${report.version}`}${report.date === null ? "" : ` (built ${report.date})`}`,
    `licence        ${DATA_ATTRIBUTION}`,
    `directory      ${report.directory}`,
    `ranges         ${int(report.ipv4Ranges)} IPv4 + ${int(report.ipv6Ranges)} IPv6 (${report.skipped} rows skipped, ${report.clipped} clipped)`,
    `ASes           ${int(report.autonomousSystems)}`,
    `memory         tables ${mb(report.tableBytes)}; process grew by RSS ${mb(report.memory.rssBytes)}, heap ${mb(report.memory.heapBytes)}, external ${mb(report.memory.externalBytes)}${report.memory.gcExposed ? " (after GC)" : " (no --expose-gc: includes garbage)"}`,
    `load time      ${int(report.loadMs)} ms`,
    `tor exit list  ${torLine}`,
    `org types      ${ORG_TYPES.map((type) => `${type} ${int(report.orgTypes[type])}`).join(", ")} (of ${int(total)} ASes; ${report.classifyMs} ms)`
  ].join("\n")
}

export interface LookupReport {
  readonly network: NetworkInfo
  readonly rule: RuleMatch | null
}

/** One address through the writer's lookup, with the rule that decided its type. */
export const lookupReport = Effect.fn("lookupReport")(function*(ip: string) {
  const lookup = yield* NetworkLookup
  const network = lookup.lookup(ip)
  const rule = network.asn === null || network.org === null ? null : defaultClassifier.explain(network.asn, network.org)
  const report: LookupReport = { network, rule }
  return report
})

export const formatLookupReport = (ip: string, report: LookupReport): string => {
  const n = report.network
  const rule = report.rule
  const why = rule === null
    ? "no AS data (private, reserved, malformed, or in no published range)"
    : rule.kind === "asn"
    ? `AS${rule.rule.asn} is listed in src/domain/network/${rule.orgType}.json${rule.rule.note === undefined ? "" : ` (${rule.rule.note})`}`
    : rule.kind === "pattern"
    ? `organisation name matches /${rule.rule.pattern}/i in src/domain/network/${rule.orgType}.json`
    : "no rule matches: unknown"
  return [
    `${ip}`,
    `  asn ${n.asn ?? "null"}  org ${n.org === null ? "null" : JSON.stringify(n.org)}  orgType ${n.orgType ?? "null"}`,
    `  isDatacenter ${n.isDatacenter}  isVpn ${n.isVpn}  isGovernment ${n.isGovernment}  isTor ${n.isTor}  proxyType ${n.proxyType}  responseTier ${n.responseTier}`,
    `  why: ${why}`
  ].join("\n")
}
