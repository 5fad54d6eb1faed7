/**
 * Network enrichment of a visitor's IP address: autonomous system, organisation and what kind
 * of network it is (docs/network.md). Pure: the `NetworkLookup` layer loads the data and the
 * optional Tor exit list and calls {@link makeNetworkOf}.
 *
 * The IP address is only an input; nothing here keeps it (a `NetworkInfo` holds no address, and
 * the per-IP cache lives in the layer, in memory only).
 */
import { type AsnTable, findV4, findV6 } from "./AsnTable.ts"
import { ipv6Key, isPublicV4, isPublicV6, parseIp } from "./IpAddress.ts"
import { type Classifier, defaultClassifier, type OrgType } from "./NetworkRules.ts"

export type { OrgType } from "./NetworkRules.ts"

/** How the visit may be relayed: a Tor exit, a VPN / proxy service, or a hosting network. */
export type ProxyType = "tor" | "vpn" | "hosting"

/** `flag`: likely automated or relayed traffic (hosting, VPN, Tor); `allow`: an ordinary network. */
export type ResponseTier = "allow" | "flag"

export interface NetworkInfo {
  /** autonomous system number, e.g. 15169 */
  readonly asn: number | null
  /** organisation running the AS, as published, e.g. `Google LLC` */
  readonly org: string | null
  /** null: no AS data for the address; `unknown`: an AS no rule classifies */
  readonly orgType: OrgType | null
  /** hosting or VPN network */
  readonly isDatacenter: boolean | null
  readonly isVpn: boolean | null
  readonly isGovernment: boolean | null
  /** null when no Tor exit list is configured (TOR_EXIT_LIST) */
  readonly isTor: boolean | null
  readonly proxyType: ProxyType | null
  readonly responseTier: ResponseTier | null
}

/** Not an IP, a private / reserved address, or (without a Tor list) a public one in no AS range. */
export const emptyNetwork: NetworkInfo = Object.freeze({
  asn: null,
  org: null,
  orgType: null,
  isDatacenter: null,
  isVpn: null,
  isGovernment: null,
  isTor: null,
  proxyType: null,
  responseTier: null
})

/**
 * Derives the flags from the AS (null when the address is in no range) and the Tor answer
 * (null without a list): `isDatacenter` = hosting or VPN; `proxyType` tor > vpn > hosting;
 * `responseTier` flag for Tor, VPN and hosting, allow for any other known network, null when
 * nothing is known.
 */
export const networkInfo = (
  as: { readonly asn: number; readonly org: string; readonly orgType: OrgType } | null,
  isTor: boolean | null
): NetworkInfo => {
  const orgType = as?.orgType ?? null
  const proxyType: ProxyType | null = isTor === true ? "tor" : orgType === "vpn" ? "vpn" : orgType === "hosting" ? "hosting" : null
  return Object.freeze({
    asn: as?.asn ?? null,
    org: as?.org ?? null,
    orgType,
    isDatacenter: orgType === null ? null : orgType === "hosting" || orgType === "vpn",
    isVpn: orgType === null ? null : orgType === "vpn",
    isGovernment: orgType === null ? null : orgType === "government",
    isTor,
    proxyType,
    responseTier: proxyType !== null ? "flag" : orgType !== null ? "allow" : null
  })
}

/** Tor exit addresses: IPv4 as numbers, IPv6 as {@link ipv6Key}s. */
export interface TorExitList {
  readonly v4: ReadonlySet<number>
  readonly v6: ReadonlySet<string>
  /** first words of the IPv6 entries, a cheap pre-check before building the key */
  readonly v6Prefixes: ReadonlySet<number>
  /** lines that were neither an address, blank nor a comment */
  readonly invalid: number
}

/**
 * Parses a Tor exit list: one address per line (the Tor Project's bulk exit list), or the
 * `ExitAddress <ip> <date>` lines of its exit-addresses file; `#` comments and blank lines are
 * skipped, anything else counts as invalid.
 */
export const parseTorExitList = (text: string): TorExitList => {
  const v4 = new Set<number>()
  const v6 = new Set<string>()
  const v6Prefixes = new Set<number>()
  const words = new Uint32Array(4)
  let invalid = 0
  for (const raw of text.split("\n")) {
    let line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    if (line.startsWith("ExitAddress ")) line = line.split(/\s+/)[1] ?? ""
    else if (/^(ExitNode|Published|LastStatus) /.test(line)) continue
    const family = parseIp(line, words)
    if (family === 4) v4.add(words[0]!)
    else if (family === 6) {
      v6.add(ipv6Key(words))
      v6Prefixes.add(words[0]!)
    } else invalid++
  }
  return { v4, v6, v6Prefixes, invalid }
}

export const torExitCount = (list: TorExitList): number => list.v4.size + list.v6.size

/**
 * The lookup the writer calls once per event (through `NetworkLookup.lookup`, which adds a
 * per-IP cache): private, reserved and malformed addresses give {@link emptyNetwork}; IPv4-mapped
 * IPv6 is looked up as IPv4. Each AS is classified once, on its first lookup, and its
 * `NetworkInfo` is shared by every later address in it (treat results as immutable).
 */
export const makeNetworkOf = (
  table: AsnTable,
  options: {
    readonly classifier?: Classifier
    readonly tor?: TorExitList | null
    /** false: look up private / documentation addresses too (test tables); default true */
    readonly publicOnly?: boolean
  } = {}
): (ip: string | undefined) => NetworkInfo => {
  const classifier = options.classifier ?? defaultClassifier
  const tor = options.tor ?? null
  const publicOnly = options.publicOnly ?? true
  const notTor: boolean | null = tor === null ? null : false
  const byEntry: Array<NetworkInfo | undefined> = new Array(table.asns.length)
  const noAs = tor === null ? emptyNetwork : networkInfo(null, false)
  const words = new Uint32Array(4)
  const asOf = (entry: number) => {
    const asn = table.asns[entry]!
    const org = table.orgs[entry]!
    return { asn, org, orgType: classifier.classify(asn, org) }
  }
  return (ip) => {
    if (ip === undefined) return emptyNetwork
    const family = parseIp(ip, words)
    let entry: number
    let isTor = false
    if (family === 4) {
      const address = words[0]!
      if (publicOnly && !isPublicV4(address)) return emptyNetwork
      entry = findV4(table, address)
      if (tor !== null) isTor = tor.v4.has(address)
    } else if (family === 6) {
      if (publicOnly && !isPublicV6(words)) return emptyNetwork
      entry = findV6(table, words)
      if (tor !== null && tor.v6Prefixes.has(words[0]!)) isTor = tor.v6.has(ipv6Key(words))
    } else {
      return emptyNetwork
    }
    if (isTor) return networkInfo(entry < 0 ? null : asOf(entry), true)
    if (entry < 0) return noAs
    return byEntry[entry] ??= networkInfo(asOf(entry), notTor)
  }
}
