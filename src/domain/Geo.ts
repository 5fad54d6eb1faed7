/**
 * Geo enrichment values (docs/architecture.md, enrichment). The lookup itself is the `GeoLookup` service
 * (`src/layers/GeoLookup.ts`); this module holds the pure parts.
 */
import { BlockList, isIP } from "node:net"

export interface GeoInfo {
  /** ISO-3166-1 alpha-2 country code */
  readonly country: string | null
  /** ISO-3166-2 subdivision code as reported by geoip-lite (e.g. `CA`, `ENG`, `BY`) */
  readonly region: string | null
  readonly city: string | null
  /** EU member state (EU-27, see {@link isEuCountry}); null when the country is unknown */
  readonly isEu: boolean | null
  /** IANA time zone */
  readonly timezone: string | null
}

/** Private, unknown or missing IPs. */
export const emptyGeo: GeoInfo = Object.freeze({
  country: null,
  region: null,
  city: null,
  isEu: null,
  timezone: null
})

/** The 27 EU member states (ISO-3166-1 alpha-2), as of 2020-02-01 (United Kingdom left). */
export const EU_COUNTRIES: ReadonlySet<string> = new Set([
  "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
  "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"
])

/**
 * EU membership of a country code. geoip-lite's bundled data carries an `eu` flag, but it is
 * stale for some countries (it still flags GB), so membership is decided by this list.
 */
export const isEuCountry = (country: string): boolean => EU_COUNTRIES.has(country.toUpperCase())

/**
 * Ranges that never have a public location: RFC 1918, CGNAT, loopback, link-local,
 * documentation, benchmarking, multicast, reserved; IPv6 ULA, link-local, loopback,
 * unspecified, documentation and multicast. (`IpAddress.ts` checks the same lists on numbers.)
 */
export const NON_PUBLIC_IPV4: ReadonlyArray<readonly [network: string, prefix: number]> = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4]
]
export const NON_PUBLIC_IPV6: ReadonlyArray<readonly [network: string, prefix: number]> = [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
  ["2001:db8::", 32],
  ["100::", 64]
]

const nonPublic = new BlockList()
for (const [net, prefix] of NON_PUBLIC_IPV4) nonPublic.addSubnet(net, prefix, "ipv4")
for (const [net, prefix] of NON_PUBLIC_IPV6) nonPublic.addSubnet(net, prefix, "ipv6")

const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i

/**
 * The address to look up, or null when the input is not an IP or is in a private / reserved
 * range. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes the IPv4 address; an IPv6 zone id
 * (`fe80::1%eth0`) is dropped.
 */
export const publicIp = (ip: string | undefined): { readonly address: string; readonly family: 4 | 6 } | null => {
  if (ip === undefined) return null
  let address = ip.trim()
  const zone = address.indexOf("%")
  if (zone >= 0) address = address.slice(0, zone)
  const mapped = IPV4_MAPPED.exec(address)
  if (mapped !== null) address = mapped[1]!
  const family = isIP(address)
  if (family === 4) return nonPublic.check(address, "ipv4") ? null : { address, family: 4 }
  if (family === 6) return nonPublic.check(address, "ipv6") ? null : { address, family: 6 }
  return null
}
