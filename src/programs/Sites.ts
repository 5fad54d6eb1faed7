/**
 * The `spoolway sites` operations (issue 13): validate the input, change the sites in
 * PostgreSQL (SiteStore), then publish the registry to the primary Redis so collectors enforce
 * the change within SITES_REFRESH_MS. A publication that fails does not undo the change: every
 * writer finds the new version in PostgreSQL and publishes it itself.
 */
import { randomBytes } from "node:crypto"
import { Effect } from "effect"
import {
  DATACENTER_TRAFFIC,
  type DatacenterTraffic,
  DEFAULT_DATACENTER_TRAFFIC,
  formatKey,
  formatShareToken,
  hashKey,
  InvalidSiteInput,
  isDatacenterTraffic,
  KEY_BYTES,
  type KeyKind,
  normalizeHostname,
  normalizeOrigin,
  normalizeTimezone
} from "../domain/Site.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { publishSnapshot } from "../layers/SitePublisher.ts"
import { type PurgeReport, type ShareRecord, type ShareSelector, type SiteRecord, type SiteSettings, SiteStore } from "../layers/SiteStore.ts"

export const DEFAULT_TIMEZONE = "UTC"
export const DEFAULT_GRACE_HOURS = 24

/** Whether the collectors can learn the change now (else: from the next writer check). */
export type Publication = { readonly published: true } | { readonly published: false; readonly error: string }

const newKey = (kind: KeyKind) => formatKey(kind, randomBytes(KEY_BYTES))

const datacenterTrafficOf = (raw: string | undefined): Effect.Effect<DatacenterTraffic | undefined, InvalidSiteInput> => {
  if (raw === undefined) return Effect.succeed(undefined)
  const value = raw.trim().toLowerCase()
  return isDatacenterTraffic(value)
    ? Effect.succeed(value)
    : Effect.fail(InvalidSiteInput.of("datacenter traffic", raw, `must be one of ${DATACENTER_TRAFFIC.join(", ")}`))
}

const hostnameOf = (field: string, raw: string) => {
  const hostname = normalizeHostname(raw)
  return hostname === undefined
    ? Effect.fail(InvalidSiteInput.of(field, raw, "not a hostname (e.g. example.com: no scheme, port or path)"))
    : Effect.succeed(hostname)
}

/** Publishes the registry in PostgreSQL now. */
export const publish = Effect.gen(function*() {
  const store = yield* SiteStore
  const primary = yield* PrimaryRedis
  const config = yield* AppConfig
  const snapshot = yield* store.snapshot
  return yield* publishSnapshot(primary.client, config.streamPrefix, snapshot).pipe(
    Effect.as<Publication>({ published: true }),
    Effect.catch((error) => Effect.succeed<Publication>({ published: false, error: error.message }))
  )
})

export interface AddSiteInput {
  readonly hostname: string
  readonly aliases: ReadonlyArray<string>
  readonly corp: string | undefined
  readonly timezone: string | undefined
  readonly origins: ReadonlyArray<string>
  /** `count`, `flag` (default) or `exclude` (docs/network.md) */
  readonly datacenterTraffic?: string | undefined
}

export interface AddedSite {
  readonly site: SiteRecord
  /** shown once: only their digests are stored */
  readonly writeKey: string
  readonly serverKey: string
  readonly publication: Publication
}

export const addSite = Effect.fn("Sites.add")(function*(input: AddSiteInput) {
  const hostname = yield* hostnameOf("hostname", input.hostname)
  const aliases: Array<string> = []
  for (const raw of input.aliases) {
    const alias = yield* hostnameOf("alias", raw)
    if (alias === hostname) return yield* InvalidSiteInput.of("alias", raw, "is the site's own hostname")
    if (!aliases.includes(alias)) aliases.push(alias)
  }
  const timezone = normalizeTimezone(input.timezone ?? DEFAULT_TIMEZONE)
  if (timezone === undefined) {
    return yield* InvalidSiteInput.of("timezone", input.timezone ?? "", "not an IANA timezone (e.g. Europe/Berlin, America/New_York, UTC)")
  }
  const origins: Array<string> = []
  for (const raw of input.origins) {
    const origin = normalizeOrigin(raw)
    if (origin === undefined) {
      return yield* InvalidSiteInput.of("origin", raw, "not an http(s) origin (scheme://host[:port], nothing after it)")
    }
    if (!origins.includes(origin)) origins.push(origin)
  }
  const corp = input.corp?.trim()
  if (corp !== undefined && corp.length === 0) return yield* InvalidSiteInput.of("corp", input.corp ?? "", "is empty")
  const datacenterTraffic = (yield* datacenterTrafficOf(input.datacenterTraffic)) ?? DEFAULT_DATACENTER_TRAFFIC

  const writeKey = newKey("write")
  const serverKey = newKey("server")
  const store = yield* SiteStore
  const site = yield* store.add({
    hostname,
    aliases,
    corp,
    timezone,
    origins: origins.length === 0 ? null : origins,
    datacenterTraffic,
    writeKeyHash: hashKey(writeKey),
    serverKeyHash: hashKey(serverKey)
  })
  return { site, writeKey, serverKey, publication: yield* publish } satisfies AddedSite
})

export const listSites = Effect.flatMap(SiteStore, (store) => store.list)

export interface RotatedKeys {
  readonly site: SiteRecord
  readonly writeKey?: string
  readonly serverKey?: string
  readonly publication: Publication
}

/** New keys of `kinds`; each previous key keeps working for `graceMs`. */
export const rotateKeys = Effect.fn("Sites.rotate")(function*(hostname: string, kinds: ReadonlyArray<KeyKind>, graceMs: number) {
  const store = yield* SiteStore
  const found = yield* store.find(yield* hostnameOf("hostname", hostname))
  if (found.removedAt !== null) return yield* InvalidSiteInput.of("hostname", hostname, "belongs to a removed site")
  let site = found
  const keys: { writeKey?: string; serverKey?: string } = {}
  for (const kind of kinds) {
    const key = newKey(kind)
    site = yield* store.rotate(site.id, kind, hashKey(key), graceMs)
    if (kind === "write") keys.writeKey = key
    else keys.serverKey = key
  }
  return { site, ...keys, publication: yield* publish } satisfies RotatedKeys
})

export interface SettingsInput {
  readonly datacenterTraffic?: string | undefined
}

export interface ConfiguredSite {
  readonly site: SiteRecord
  readonly publication: Publication
}

/** Changes a site's settings; at least one must be given. Nothing changes on invalid input. */
export const configureSite = Effect.fn("Sites.configure")(function*(hostname: string, input: SettingsInput) {
  const settings: SiteSettings = { datacenterTraffic: yield* datacenterTrafficOf(input.datacenterTraffic) }
  if (settings.datacenterTraffic === undefined) {
    return yield* InvalidSiteInput.of("settings", "", "nothing to change (e.g. --datacenter-traffic exclude)")
  }
  const store = yield* SiteStore
  const found = yield* store.find(yield* hostnameOf("hostname", hostname))
  if (found.removedAt !== null) return yield* InvalidSiteInput.of("hostname", hostname, "belongs to a removed site")
  const site = yield* store.configure(found.id, settings)
  return { site, publication: yield* publish } satisfies ConfiguredSite
})

export interface RemovedSite {
  readonly site: SiteRecord
  /** rows deleted per table (purge only) */
  readonly purged: PurgeReport | undefined
  /** active sites left: 0 means the collectors are open again */
  readonly activeSites: number
  readonly publication: Publication
}

/** The site owning `hostname` (for a confirmation before a purge). */
export const findSite = Effect.fn("Sites.find")(function*(hostname: string) {
  const store = yield* SiteStore
  return yield* store.find(yield* hostnameOf("hostname", hostname))
})

/** Stops accepting the site's events; with `purge` also deletes its hostnames and data. */
export const removeSite = Effect.fn("Sites.remove")(function*(site: SiteRecord, purge: boolean) {
  const store = yield* SiteStore
  const purged = purge ? yield* store.purge(site.id) : undefined
  if (!purge) yield* store.remove(site.id)
  const activeSites = (yield* store.list).filter((s) => s.removedAt === null).length
  return { site, purged, activeSites, publication: yield* publish } satisfies RemovedSite
})

/** The origins a site allows, spelled out (the default: every hostname over http and https). */
export const effectiveOrigins = (site: SiteRecord): ReadonlyArray<string> => {
  if (site.origins !== null) return site.origins
  return [site.hostname, ...site.aliases].flatMap((h) => {
    const host = h.includes(":") ? `[${h}]` : h
    return [`http://${host}`, `https://${host}`]
  })
}

// ---------------------------------------------------------------------------------------------
// view-only share links of the dashboard

export interface CreatedShare {
  readonly site: SiteRecord
  readonly share: ShareRecord
  /** shown once: only its digest is stored */
  readonly token: string
}

/** The dashboard URL of a share link: the token in the fragment, so it never reaches a server log. */
export const shareLink = (baseUrl: string, hostname: string, token: string) =>
  `${baseUrl.replace(/\/+$/, "")}/sites/${encodeURIComponent(hostname)}#share=${token}`

/** A new view-only share link of the site owning `hostname`. */
export const createShare = Effect.fn("Sites.share")(function*(hostname: string, label: string | undefined) {
  const store = yield* SiteStore
  const site = yield* store.find(yield* hostnameOf("hostname", hostname))
  if (site.removedAt !== null) return yield* InvalidSiteInput.of("hostname", hostname, "belongs to a removed site")
  const trimmed = label?.trim()
  if (trimmed !== undefined && trimmed.length === 0) return yield* InvalidSiteInput.of("label", label ?? "", "is empty")
  const token = formatShareToken(randomBytes(KEY_BYTES))
  const share = yield* store.addShare(site.id, hashKey(token), trimmed)
  return { site, share, token } satisfies CreatedShare
})

/** The share links of the site owning `hostname`. */
export const listShares = Effect.fn("Sites.shares")(function*(hostname: string) {
  const store = yield* SiteStore
  const site = yield* store.find(yield* hostnameOf("hostname", hostname))
  return { site, shares: yield* store.shares(site.id) }
})

/**
 * Revokes share links of the site owning `hostname`: `which` is a link's id, a link or its
 * token, or "all". Revoked links stop working at once (every query looks the token up).
 */
export const revokeShares = Effect.fn("Sites.revokeShares")(function*(hostname: string, which: string) {
  const store = yield* SiteStore
  const site = yield* store.find(yield* hostnameOf("hostname", hostname))
  const trimmed = which.trim()
  let selector: ShareSelector
  if (trimmed === "all") selector = { _tag: "all" }
  else if (/^\d{1,9}$/.test(trimmed)) selector = { _tag: "id", id: Number(trimmed) }
  else {
    const token = /(?:#share=)?(sw_shr_[A-Za-z0-9_-]+)$/.exec(trimmed)?.[1]
    if (token === undefined) {
      return yield* InvalidSiteInput.of("share", which, "not a share link, a share token (sw_shr_…), a link id or 'all'")
    }
    selector = { _tag: "tokenHash", tokenHash: hashKey(token) }
  }
  const revoked = yield* store.revokeShares(site.id, selector)
  if (revoked.length === 0 && selector._tag !== "all") {
    return yield* InvalidSiteInput.of("share", which, `is no active share link of ${site.hostname} (see: spoolway sites share list ${site.hostname})`)
  }
  return { site, revoked }
})
