/**
 * First-touch traffic source resolution (docs/architecture.md, enrichment). The module is
 * a stable contract: other code and the acceptance tests import its exports by name.
 *
 * Pure and synchronous; never throws, whatever the input strings are.
 *
 * Rules, in order (all inputs trimmed first; empty / whitespace-only = absent; matching is
 * case-insensitive):
 *  1. UTM-attributed (utm_source and/or a *recognised* utm_medium present):
 *     - a recognised medium decides (table below);
 *     - otherwise (no medium, or an unrecognised one such as `display`) the source name decides:
 *       a social platform → social, a search engine → organic, anything else → referral.
 *  2. otherwise a referrer decides: parse it as a URL (unparseable or host-less → direct), drop a
 *     leading `www.`, then social hosts (host or subdomain) → social, search engines (by name
 *     with any public suffix) → organic, anything else → referral.
 *  3. nothing → direct.
 *
 * Further choices (documented here, covered by tests):
 *  - An unrecognised medium *without* a utm_source is "no medium and no source", so the event
 *    is not UTM-attributed and the referrer (or direct) decides.
 *  - A utm_source that looks like a host name (`facebook.com`, `l.facebook.com`, `google.co.uk`)
 *    is classified with the referrer host rules when its bare name is not in the lists.
 *  - Webmail / document subdomains of search-engine brands (`mail.google.com`,
 *    `docs.google.com`, `mail.yahoo.com` …) are not searches: they are referrals.
 *  - `android-app://<package>` referrers (Android intents) are classified by a small package
 *    table (Google search app → organic, Facebook/Instagram/… apps → social), else referral.
 *  - Only URLs with a host are useful; a referrer without a scheme
 *    (`google.com`) is not a parseable URL and therefore counts as direct, as rule 2's
 *    "unparseable → direct" says.
 *  - Reported values (`rawSource`, `medium`, `campaign`, `content`, `term`, `referrer`) are the
 *    trimmed inputs in their original case; an unrecognised medium is still reported.
 */
import { memoizeString } from "./Memo.ts"
import { Schema } from "effect"

export const TRAFFIC_SOURCES = ["paid", "email", "social", "affiliate", "organic", "referral", "direct"] as const

/** The 7 possible `source` values. */
export const TrafficSourceKind = Schema.Literals(TRAFFIC_SOURCES)
export type TrafficSourceKind = typeof TrafficSourceKind.Type

export interface TrafficSourceInput {
  readonly utmSource?: string | null | undefined
  readonly utmMedium?: string | null | undefined
  readonly utmCampaign?: string | null | undefined
  readonly utmContent?: string | null | undefined
  readonly utmTerm?: string | null | undefined
  readonly referrer?: string | null | undefined
}

export interface TrafficSource {
  readonly source: TrafficSourceKind
  /** utm_source as given (trimmed), or null */
  readonly rawSource: string | null
  /** utm_medium as given (trimmed), or null — reported even when not recognised */
  readonly medium: string | null
  readonly campaign: string | null
  readonly content: string | null
  readonly term: string | null
  /** the given referrer (trimmed), or null */
  readonly referrer: string | null
}

/** The medium table (keys lower-case). Anything else is "no medium". */
const MEDIUMS: ReadonlyMap<string, TrafficSourceKind> = new Map<string, TrafficSourceKind>([
  ["cpc", "paid"],
  ["ppc", "paid"],
  ["paid", "paid"],
  ["paidsearch", "paid"],
  ["email", "email"],
  ["newsletter", "email"],
  ["social", "social"],
  ["social-media", "social"],
  ["affiliate", "affiliate"],
  ["partner", "affiliate"],
  ["organic", "organic"],
  ["referral", "referral"]
])

/** utm_source names of social platforms (lower-case). */
const SOCIAL_SOURCE_NAMES: ReadonlySet<string> = new Set([
  "facebook",
  "fb",
  "messenger",
  "twitter",
  "x",
  "instagram",
  "ig",
  "linkedin",
  "reddit",
  "youtube",
  "tiktok",
  "pinterest",
  "snapchat",
  "threads",
  "tumblr",
  "quora",
  "vk",
  "vkontakte",
  "weibo",
  "wechat",
  "whatsapp",
  "telegram",
  "discord",
  "mastodon",
  "bluesky",
  "bsky",
  "hackernews",
  "line",
  "xing"
])

/**
 * Search engines, by the name that sits directly before the public suffix of their host
 * (`google` in `www.google.co.uk`), also used as utm_source names.
 */
const SEARCH_ENGINE_NAMES: ReadonlySet<string> = new Set([
  "google",
  "bing",
  "duckduckgo",
  "yahoo",
  "yandex",
  "baidu",
  "ecosia",
  "naver",
  "seznam",
  "qwant",
  "startpage",
  "sogou",
  "ask",
  "aol",
  "kagi",
  "mojeek",
  "daum"
])

/** Search-engine hosts that do not follow the `<name>.<public suffix>` shape. */
const SEARCH_HOSTS: ReadonlyArray<string> = [
  "search.brave.com",
  "ya.ru",
  "search.naver.com",
  "m.search.naver.com",
  "search.seznam.cz",
  "duck.com"
]

/** Subdomains of search-engine brands that are not search pages. */
const NON_SEARCH_SUBDOMAINS: ReadonlySet<string> = new Set([
  "mail",
  "webmail",
  "docs",
  "drive",
  "accounts",
  "myaccount",
  "calendar",
  "sites",
  "groups",
  "meet",
  "chat",
  "photos",
  "play",
  "support",
  "developers",
  "cloud",
  "disk",
  "music",
  "ads"
])

/** Social hosts; matched by exact host or subdomain (after dropping `www.`). */
const SOCIAL_HOSTS: ReadonlyArray<string> = [
  "facebook.com",
  "fb.com",
  "fb.me",
  "messenger.com",
  "instagram.com",
  "t.co",
  "x.com",
  "twitter.com",
  "linkedin.com",
  "lnkd.in",
  "reddit.com",
  "redd.it",
  "youtube.com",
  "youtu.be",
  "tiktok.com",
  "pinterest.com",
  "pin.it",
  "snapchat.com",
  "threads.net",
  "threads.com",
  "tumblr.com",
  "quora.com",
  "vk.com",
  "weibo.com",
  "weibo.cn",
  "discord.com",
  "discord.gg",
  "discordapp.com",
  "t.me",
  "telegram.org",
  "whatsapp.com",
  "wa.me",
  "mastodon.social",
  "bsky.app",
  "news.ycombinator.com",
  "xing.com",
  "line.me"
]

/** Second-level labels that form a public suffix together with a country code (`co.uk`, `com.au`). */
const SECOND_LEVEL_SUFFIX_LABELS: ReadonlySet<string> = new Set([
  "co",
  "com",
  "net",
  "org",
  "ne",
  "or",
  "go",
  "ac",
  "gov",
  "edu",
  "gob",
  "nic"
])

const ALPHA_LABEL = /^[a-z]{2,63}$/
const COUNTRY_CODE = /^[a-z]{2}$/

/** Trimmed value, or null when absent, non-string, empty or whitespace-only. */
const clean = (value: unknown): string | null => {
  if (typeof value !== "string") return null
  const trimmed = value.trim()
  return trimmed.length === 0 ? null : trimmed
}

/** Does `labels` (the labels after the engine name) form something that can be a public suffix? */
const isPublicSuffix = (labels: ReadonlyArray<string>): boolean => {
  if (labels.length === 1) return ALPHA_LABEL.test(labels[0]!)
  if (labels.length === 2) return SECOND_LEVEL_SUFFIX_LABELS.has(labels[0]!) && COUNTRY_CODE.test(labels[1]!)
  return false
}

const matchesHost = (host: string, domain: string): boolean => host === domain || host.endsWith("." + domain)

/** `host` is lower-case, without trailing dot and without a leading `www.`. */
export const isSocialHost = (host: string): boolean => {
  for (const domain of SOCIAL_HOSTS) {
    if (matchesHost(host, domain)) return true
  }
  return false
}

/** `host` is lower-case, without trailing dot and without a leading `www.`. */
export const isSearchEngineHost = (host: string): boolean => {
  for (const domain of SEARCH_HOSTS) {
    if (matchesHost(host, domain)) return true
  }
  const labels = host.split(".")
  // the engine name must be followed by a public suffix: try the last-but-one and the
  // last-but-two label (`google.de`, `google.co.uk`)
  for (const suffixLength of [1, 2]) {
    const nameIndex = labels.length - 1 - suffixLength
    if (nameIndex < 0) continue
    const name = labels[nameIndex]!
    if (!SEARCH_ENGINE_NAMES.has(name)) continue
    if (!isPublicSuffix(labels.slice(nameIndex + 1))) continue
    const subdomains = labels.slice(0, nameIndex)
    if (subdomains.some((label) => NON_SEARCH_SUBDOMAINS.has(label))) return false
    return true
  }
  return false
}

/** Lower-case, trailing dot removed, leading `www.` dropped. */
const normalizeHost = (hostname: string): string => {
  let host = hostname.toLowerCase()
  while (host.endsWith(".")) host = host.slice(0, -1)
  if (host.startsWith("www.")) host = host.slice(4)
  return host
}

/** Android apps that send `android-app://<package>` referrers. */
const ANDROID_APP_SOURCES: ReadonlyMap<string, TrafficSourceKind> = new Map<string, TrafficSourceKind>([
  ["com.google.android.googlequicksearchbox", "organic"],
  ["com.facebook.katana", "social"],
  ["com.facebook.lite", "social"],
  ["com.facebook.orca", "social"],
  ["com.instagram.android", "social"],
  ["com.twitter.android", "social"],
  ["com.linkedin.android", "social"],
  ["com.reddit.frontpage", "social"],
  ["com.google.android.youtube", "social"],
  ["com.zhiliaoapp.musically", "social"],
  ["com.ss.android.ugc.trill", "social"],
  ["com.pinterest", "social"],
  ["org.telegram.messenger", "social"],
  ["com.whatsapp", "social"]
])

const classifyHost = (host: string): TrafficSourceKind => {
  if (isSocialHost(host)) return "social"
  if (isSearchEngineHost(host)) return "organic"
  return "referral"
}

/**
 * The host of a referrer URL (normalized), or null when it does not parse or has no host.
 * Memoised (the same referrers repeat across events; URL parsing is ~1 µs).
 */
export const referrerHost: (referrer: string) => string | null = memoizeString((referrer) => {
  const url = parseUrl(referrer)
  if (url === null) return null
  const host = normalizeHost(url.hostname)
  return host.length === 0 ? null : host
})

const parseUrl = (value: string): URL | null => {
  try {
    return new URL(value)
  } catch {
    return null
  }
}

/** (memoised, see {@link referrerHost}) */
const classifyReferrer = memoizeString((referrer: string): TrafficSourceKind => {
  const url = parseUrl(referrer)
  if (url === null) return "direct"
  const host = normalizeHost(url.hostname)
  if (host.length === 0) return "direct"
  if (url.protocol === "android-app:") return ANDROID_APP_SOURCES.get(host) ?? "referral"
  return classifyHost(host)
})

const HOST_LIKE = /^[a-z0-9-]+(\.[a-z0-9-]+)+\.?$/

/** utm_source without a (recognised) medium. */
const classifySourceName = (source: string): TrafficSourceKind => {
  const name = source.toLowerCase()
  if (SOCIAL_SOURCE_NAMES.has(name)) return "social"
  if (SEARCH_ENGINE_NAMES.has(name)) return "organic"
  if (HOST_LIKE.test(name)) return classifyHost(normalizeHost(name))
  return "referral"
}

/**
 * Resolve the first-touch traffic source. Every absent field is `null`, never `undefined`.
 */
export const resolveTrafficSource = (input: TrafficSourceInput): TrafficSource => {
  const rawSource = clean(input.utmSource)
  const medium = clean(input.utmMedium)
  const campaign = clean(input.utmCampaign)
  const content = clean(input.utmContent)
  const term = clean(input.utmTerm)
  const referrer = clean(input.referrer)

  const fromMedium = medium === null ? undefined : MEDIUMS.get(medium.toLowerCase())

  let source: TrafficSourceKind
  if (fromMedium !== undefined) {
    source = fromMedium
  } else if (rawSource !== null) {
    source = classifySourceName(rawSource)
  } else if (referrer !== null) {
    source = classifyReferrer(referrer)
  } else {
    source = "direct"
  }

  return { source, rawSource, medium, campaign, content, term, referrer }
}
