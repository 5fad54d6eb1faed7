/**
 * Device and bot enrichment for views (docs/architecture.md, enrichment). The module is
 * a stable contract: other code and the acceptance tests import its exports by name.
 *
 * `parseDevice(ua, client)` is pure from the caller's point of view (same input → same output)
 * and synchronous. The User-Agent-derived part is memoised in a bounded LRU keyed by the UA
 * string; the client's device data is merged per call and never cached.
 *
 * Decisions (the reason for each is beside it):
 *  - A missing or blank UA gives nulls for every UA field and `isBot: false` (a missing UA is
 *    "unknown", not evidence of a bot); device type then comes from client signals or desktop.
 *  - ua-parser device classes other than mobile/tablet/wearable (smarttv, console, embedded)
 *    are non-handheld screens and are reported as `desktop` — the UA decided, so neither the
 *    Android no-"Mobile" tablet rule nor client signals turn a Fire TV into a tablet.
 *  - Windows versions come from the raw `Windows NT x.y` token (ua-parser's own names such as
 *    `XP`/`Vista` are not used): 10.0 → `10/11`, 6.3 → `8.1`, 6.2 → `8`, 6.1 → `7`, any other
 *    NT version verbatim (`6.0`, `5.1`). Windows without an NT token (e.g. `Windows 98`) keeps
 *    ua-parser's version.
 *  - Client touch signals follow the documented rule literally: touch points > 0 with a viewport width
 *    < 768 → mobile, ≥ 768 → tablet (so a touch-screen laptop without a handheld UA reports
 *    tablet); touch points without a viewport width decide nothing.
 */
import { isbot } from "isbot"
import UAParser from "ua-parser-js"
import { Schema } from "effect"
import type { ClientDevice } from "./Envelope.ts"

export const DEVICE_TYPES = ["desktop", "mobile", "tablet", "bot"] as const
export const DeviceType = Schema.Literals(DEVICE_TYPES)
export type DeviceType = typeof DeviceType.Type

/** The User-Agent-derived part of {@link DeviceInfo} (what the cache holds). */
export interface UserAgentInfo {
  readonly isBot: boolean
  readonly browser: string | null
  /** `"major.minor"`, e.g. `"120.0"`; `"17.0"` when the UA only has a major */
  readonly browserVersion: string | null
  readonly browserMajor: number | null
  readonly os: string | null
  readonly osVersion: string | null
  readonly deviceVendor: string | null
  readonly deviceModel: string | null
  /** device type decided by the UA alone; null = undecided (client signals, then desktop) */
  readonly uaDeviceType: DeviceType | null
}

/** A device: the User-Agent's fields, the device type decided from all signals, the client's own. */
export type DeviceInfo =
  & Omit<UserAgentInfo, "uaDeviceType">
  & { readonly deviceType: DeviceType }
  & ClientDevice

/** The client device fields copied into {@link DeviceInfo} when sent. */
export const CLIENT_DEVICE_FIELDS = [
  "screenWidth",
  "screenHeight",
  "viewportWidth",
  "viewportHeight",
  "pixelRatio",
  "colorDepth",
  "language",
  "languages",
  "timezone",
  "timezoneOffset",
  "deviceMemory",
  "hardwareConcurrency",
  "touchPoints",
  "cookiesEnabled",
  "doNotTrack"
] as const satisfies ReadonlyArray<keyof ClientDevice>

/** Viewport width (CSS px) at which a touch device counts as a tablet rather than a phone. */
export const TABLET_MIN_VIEWPORT = 768

/** UAs longer than this are inspected truncated and never cached (ua-parser reads 500 chars). */
const MAX_INSPECTED_UA = 2048

/** Automation / headless browsers: bots too — some of them are not in `isbot`'s list. */
const AUTOMATION = /HeadlessChrome|Headless|Puppeteer|Playwright|Selenium|WebDriver|PhantomJS/i

/** Social link-preview fetchers (a link pasted in a chat is no visit), on top of `isbot`. */
const SOCIAL_FETCHERS =
  /facebookexternalhit|facebookcatalog|Facebot|meta-externalagent|Twitterbot|LinkedInBot|Slackbot|Slack-ImgProxy|Discordbot|TelegramBot|^WhatsApp\/|Pinterestbot|Pinterest\/0\.|redditbot|Embedly|SkypeUriPreview|vkShare|Iframely|Applebot|Mastodon\/\d|Bluesky Cardyb|Google-PageRenderer|Snap URL Preview/i

const WINDOWS_NT = /Windows NT (\d+\.\d+)/
const WINDOWS_VERSIONS: Readonly<Record<string, string>> = {
  "10.0": "10/11",
  "6.3": "8.1",
  "6.2": "8",
  "6.1": "7"
}

const VERSION = /^(\d+)(?:\.(\d+))?/

const nonEmpty = (value: string | undefined): string | null =>
  value === undefined || value.length === 0 ? null : value

const UNKNOWN_UA: UserAgentInfo = {
  isBot: false,
  browser: null,
  browserVersion: null,
  browserMajor: null,
  os: null,
  osVersion: null,
  deviceVendor: null,
  deviceModel: null,
  uaDeviceType: null
}

/** Is this UA a bot: `isbot`'s maintained list plus the automation and social-fetcher rules. */
export const isBotUserAgent = (ua: string | undefined): boolean => {
  if (ua === undefined) return false
  const inspected = ua.length > MAX_INSPECTED_UA ? ua.slice(0, MAX_INSPECTED_UA) : ua
  return isbot(inspected) || AUTOMATION.test(inspected) || SOCIAL_FETCHERS.test(inspected)
}

const browserName = (name: string | undefined): string | null => {
  const value = nonEmpty(name)
  return value === null ? null : nonEmpty(value.replace(/^Mobile /, ""))
}

const browserVersionOf = (
  name: string | null,
  version: string | undefined
): { readonly browserVersion: string | null; readonly browserMajor: number | null } => {
  if (name === null || version === undefined) return { browserVersion: null, browserMajor: null }
  const match = VERSION.exec(version)
  if (match === null) return { browserVersion: null, browserMajor: null }
  const major = Number.parseInt(match[1]!, 10)
  if (!Number.isSafeInteger(major)) return { browserVersion: null, browserMajor: null }
  return { browserVersion: `${major}.${match[2] ?? "0"}`, browserMajor: major }
}

const osNameOf = (name: string | undefined): string | null => {
  const value = nonEmpty(name)
  return value === "Mac OS" ? "macOS" : value
}

const osVersionOf = (os: string | null, version: string | undefined, ua: string): string | null => {
  if (os === "Windows") {
    const nt = WINDOWS_NT.exec(ua)
    if (nt !== null) {
      const token = nt[1]!
      return WINDOWS_VERSIONS[token] ?? token
    }
  }
  const value = nonEmpty(version)
  return value === null ? null : value.replace(/_/g, ".")
}

const uaDeviceTypeOf = (uaClass: string | undefined, ua: string): DeviceType | null => {
  switch (uaClass) {
    case "mobile":
    case "wearable":
      return "mobile"
    case "tablet":
      return "tablet"
    case "smarttv":
    case "console":
    case "embedded":
      return "desktop"
  }
  if (/iPad/.test(ua)) return "tablet"
  if (/iPhone|iPod/.test(ua)) return "mobile"
  if (/Android/i.test(ua)) return /Mobile/.test(ua) ? "mobile" : "tablet"
  return null
}

const parser = new UAParser()

/** Parse a UA without the cache (the baseline the benchmark compares against). */
export const parseUserAgent = (ua: string | undefined): UserAgentInfo => {
  if (ua === undefined || ua.trim().length === 0) return UNKNOWN_UA
  const inspected = ua.length > MAX_INSPECTED_UA ? ua.slice(0, MAX_INSPECTED_UA) : ua
  const isBot = isBotUserAgent(inspected)
  // only the three parts we use (getResult() would also run the engine and CPU regexes)
  parser.setUA(inspected)
  const parsedBrowser = parser.getBrowser()
  const parsedOs = parser.getOS()
  const parsedDevice = parser.getDevice()
  const browser = browserName(parsedBrowser.name)
  const { browserMajor, browserVersion } = browserVersionOf(browser, parsedBrowser.version)
  const os = osNameOf(parsedOs.name)
  return {
    isBot,
    browser,
    browserVersion,
    browserMajor,
    os,
    osVersion: osVersionOf(os, parsedOs.version, inspected),
    deviceVendor: nonEmpty(parsedDevice.vendor),
    deviceModel: nonEmpty(parsedDevice.model),
    uaDeviceType: isBot ? "bot" : uaDeviceTypeOf(parsedDevice.type, inspected)
  }
}

/** Device type from client signals alone; null when they decide nothing. */
export const clientDeviceType = (client: ClientDevice | undefined): DeviceType | null => {
  if (client === undefined) return null
  const { touchPoints, viewportWidth } = client
  if (touchPoints === undefined || !(touchPoints > 0)) return null
  if (viewportWidth === undefined || !Number.isFinite(viewportWidth)) return null
  return viewportWidth < TABLET_MIN_VIEWPORT ? "mobile" : "tablet"
}

/** Combine a (cached) UA parse with per-call client data. */
export const toDeviceInfo = (parsed: UserAgentInfo, client: ClientDevice | undefined): DeviceInfo => {
  const info: Record<string, unknown> = {
    deviceType: parsed.uaDeviceType ?? clientDeviceType(client) ?? "desktop",
    isBot: parsed.isBot,
    browser: parsed.browser,
    browserVersion: parsed.browserVersion,
    browserMajor: parsed.browserMajor,
    os: parsed.os,
    osVersion: parsed.osVersion,
    deviceVendor: parsed.deviceVendor,
    deviceModel: parsed.deviceModel
  }
  if (client !== undefined) {
    for (const field of CLIENT_DEVICE_FIELDS) {
      const value = client[field]
      if (value !== undefined) info[field] = value
    }
  }
  return info as DeviceInfo
}

/** A bounded least-recently-used cache of UA parses. */
export interface UserAgentCache {
  readonly get: (ua: string | undefined) => UserAgentInfo
  readonly size: () => number
  readonly clear: () => void
  readonly capacity: number
}

export const DEFAULT_UA_CACHE_SIZE = 10_000

interface LruNode {
  readonly key: string
  readonly value: UserAgentInfo
  prev: LruNode | undefined
  next: LruNode | undefined
}

/**
 * A least-recently-used cache: a Map for lookup plus a doubly linked recency list, so a hit, a
 * miss and an eviction are all O(1). (Evicting via `map.keys().next()` after delete/re-insert
 * is O(tombstones) in V8 and halves throughput when most UAs are new.)
 */
export const makeUserAgentCache = (capacity: number = DEFAULT_UA_CACHE_SIZE): UserAgentCache => {
  const entries = new Map<string, LruNode>()
  let head: LruNode | undefined // most recently used
  let tail: LruNode | undefined // least recently used

  const unlink = (node: LruNode) => {
    if (node.prev === undefined) head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) tail = node.prev
    else node.next.prev = node.prev
    node.prev = undefined
    node.next = undefined
  }
  const pushFront = (node: LruNode) => {
    node.next = head
    if (head !== undefined) head.prev = node
    head = node
    if (tail === undefined) tail = node
  }

  const get = (ua: string | undefined): UserAgentInfo => {
    if (ua === undefined || capacity <= 0 || ua.length > MAX_INSPECTED_UA) return parseUserAgent(ua)
    const hit = entries.get(ua)
    if (hit !== undefined) {
      if (hit !== head) {
        unlink(hit)
        pushFront(hit)
      }
      return hit.value
    }
    const value = parseUserAgent(ua)
    if (entries.size >= capacity && tail !== undefined) {
      const evicted = tail
      unlink(evicted)
      entries.delete(evicted.key)
    }
    const node: LruNode = { key: ua, value, prev: undefined, next: undefined }
    entries.set(ua, node)
    pushFront(node)
    return value
  }
  const clear = () => {
    entries.clear()
    head = undefined
    tail = undefined
  }
  return { get, size: () => entries.size, clear, capacity }
}

/** The process-wide UA cache used by {@link parseDevice}. */
export const userAgentCache: UserAgentCache = makeUserAgentCache()

/**
 * Parse a User-Agent (cached) and merge the client's device data.
 * Client fields are copied as sent; fields not sent stay absent (not null).
 */
export const parseDevice = (ua: string | undefined, client?: ClientDevice): DeviceInfo =>
  toDeviceInfo(userAgentCache.get(ua), client)

/**
 * Is this UA a bot, through the same cache as {@link parseDevice} (a session's other events
 * carry its views' UA, so this is a cache hit as a rule). A missing or blank UA is not a bot.
 */
export const isBotUserAgentCached = (ua: string | undefined): boolean => userAgentCache.get(ua).isBot

/** Same as {@link parseDevice} but always re-parses the UA (benchmark baseline). */
export const parseDeviceUncached = (ua: string | undefined, client?: ClientDevice): DeviceInfo =>
  toDeviceInfo(parseUserAgent(ua), client)
