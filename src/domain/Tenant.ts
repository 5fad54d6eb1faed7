/**
 * Tenant host resolution for views (docs/architecture.md, tenant).
 *
 * The hostname comes from `Origin`, else `Referer`, else `Host`. The writer looks it up in
 * `domains` (→ domain_id, corp_id); this module only extracts and normalises the name:
 *  - lower-case (the WHATWG URL parser also turns IDN names into punycode: `bücher.de` →
 *    `xn--bcher-kva.de`, the form a `domains.hostname` should be stored in);
 *  - port stripped;
 *  - trailing dot(s) removed (`example.com.` → `example.com`);
 *  - IPv6 literals are returned WITHOUT brackets: `[::1]:8080` → `::1`;
 *  - `www.` is kept (it is a different hostname in `domains`).
 * A header that is absent, blank, unparseable, not http(s) (Origin `null`, `file://`,
 * `chrome-extension://…`) or host-less falls through to the next one; none usable → null.
 */

import { memoizeString } from "./Memo.ts"

/** A registered domain (`domains` row) and its corp: what a tenant hostname resolves to. */
export interface Tenant {
  readonly domainId: number
  readonly corpId: number | null
}

/** The tenant of a stored row and of its rollups: NULLs when the tenant is unknown. */
export interface Scope {
  readonly corpId: number | null
  readonly domainId: number | null
}

export const NO_SCOPE: Scope = { corpId: null, domainId: null }

export interface TenantHeaders {
  readonly origin?: string | undefined
  readonly referer?: string | undefined
  readonly host?: string | undefined
}

const normalizeHostname = (hostname: string): string | null => {
  let host = hostname.toLowerCase()
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1)
  while (host.endsWith(".")) host = host.slice(0, -1)
  return host.length === 0 ? null : host
}

/** Hostname of an absolute http(s) URL (Origin, Referer), or null. */
const hostOfUrl = (value: string | undefined): string | null => (value === undefined ? null : hostOfUrlMemo(value))

/** (memoised: a site's Origin repeats on every event) */
const hostOfUrlMemo = memoizeString((value: string): string | null => {
  const trimmed = value.trim()
  if (trimmed.length === 0) return null
  let url: URL
  try {
    url = new URL(trimmed)
  } catch {
    return null
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null
  return normalizeHostname(url.hostname)
})

/** A Host header is `host[:port]` only — anything with a path, userinfo, query or spaces is invalid. */
const INVALID_HOST_CHARS = /[\s/\\?#@]/

/** Hostname of a `Host` header value, or null. */
const hostOfHostHeader = (value: string | undefined): string | null =>
  value === undefined ? null : hostOfHostHeaderMemo(value)

const hostOfHostHeaderMemo = memoizeString((value: string): string | null => {
  const trimmed = value.trim()
  if (trimmed.length === 0 || INVALID_HOST_CHARS.test(trimmed)) return null
  let url: URL
  try {
    url = new URL(`http://${trimmed}`)
  } catch {
    return null
  }
  return normalizeHostname(url.hostname)
})

/** The tenant hostname of a view: Origin → Referer → Host; null when none is usable. */
export const tenantHost = (headers: TenantHeaders): string | null =>
  hostOfUrl(headers.origin) ?? hostOfUrl(headers.referer) ?? hostOfHostHeader(headers.host)
