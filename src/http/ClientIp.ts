/**
 * Client IP (docs/api.md): the socket peer, unless the peer is a trusted proxy
 * (TRUSTED_PROXIES, CIDR list; default loopback), in which case the first untrusted
 * hop of X-Forwarded-For from the right (or X-Real-IP) is used. Forwarded headers
 * from any other peer are ignored: they would let anyone forge identity and geo.
 */
import { BlockList, isIP } from "node:net"
import { memoizeString } from "../domain/Memo.ts"

export interface TrustedProxies {
  readonly isTrusted: (ip: string) => boolean
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; strips brackets and an IPv6 zone. */
export const normalizeIp = (raw: string): string => {
  let ip = raw.trim()
  if (ip.startsWith("[") && ip.includes("]")) ip = ip.slice(1, ip.indexOf("]"))
  const zone = ip.indexOf("%")
  if (zone >= 0) ip = ip.slice(0, zone)
  if (ip.toLowerCase().startsWith("::ffff:") && isIP(ip.slice(7)) === 4) ip = ip.slice(7)
  return ip
}

export const makeTrustedProxies = (cidrs: ReadonlyArray<string>): TrustedProxies => {
  const list = new BlockList()
  for (const entry of cidrs) {
    const [address = "", bits] = entry.split("/")
    const ip = normalizeIp(address)
    const family = isIP(ip)
    if (family === 0) throw new Error(`TRUSTED_PROXIES: '${entry}' is not an IP address or CIDR`)
    const type = family === 4 ? "ipv4" : "ipv6"
    if (bits === undefined) list.addAddress(ip, type)
    else list.addSubnet(ip, Number(bits), type)
  }
  return {
    isTrusted: (raw) => {
      const ip = normalizeIp(raw)
      const family = isIP(ip)
      return family !== 0 && list.check(ip, family === 4 ? "ipv4" : "ipv6")
    }
  }
}

export const clientIp = (
  peer: string | undefined,
  forwardedFor: string | undefined,
  realIp: string | undefined,
  trusted: TrustedProxies
): string | undefined => {
  if (peer === undefined) return undefined
  const peerIp = normalizeIp(peer)
  if (!trusted.isTrusted(peerIp)) return peerIp
  if (forwardedFor !== undefined && forwardedFor.trim() !== "") {
    const hops = forwardedFor.split(",").map(normalizeIp).filter((h) => isIP(h) !== 0)
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!
      if (!trusted.isTrusted(hop)) return hop
    }
    if (hops.length > 0) return hops[0]
  }
  if (realIp !== undefined) {
    const ip = normalizeIp(realIp)
    if (isIP(ip) !== 0) return ip
  }
  return peerIp
}

/**
 * `clientIp` with the answer for a peer that sent no forwarded headers (almost every
 * request) remembered per peer address: a keep-alive connection asks once, not per request.
 * At most `maxPeers` addresses are remembered (then the memo starts over).
 */
export const makeClientIpResolver = (trusted: TrustedProxies, maxPeers = 10_000) => {
  const ofPeer = memoizeString((peer) => clientIp(peer, undefined, undefined, trusted)!, maxPeers)
  return (peer: string | undefined, forwardedFor: string | undefined, realIp: string | undefined): string | undefined =>
    peer === undefined || forwardedFor !== undefined || realIp !== undefined
      ? clientIp(peer, forwardedFor, realIp, trusted)
      : ofPeer(peer)
}

/**
 * The first (leftmost) address of an `X-Forwarded-For` value — the client as the first sender
 * states it. Believed only from a caller authenticated with a site's server key.
 */
export const firstForwardedIp = (forwardedFor: string | undefined): string | undefined => {
  if (forwardedFor === undefined) return undefined
  for (const hop of forwardedFor.split(",")) {
    const ip = normalizeIp(hop)
    if (isIP(ip) !== 0) return ip
  }
  return undefined
}
