/**
 * `spoolway sites …` (issue 13): add, list, set (settings), keys rotate, remove. The operations are
 * src/programs/Sites.ts; this file parses the command line and prints. Errors a user can fix
 * (unknown site, duplicate hostname, invalid timezone / origin / hostname) are printed as one
 * line and exit 1.
 */
import { createInterface } from "node:readline/promises"
import { Console, Effect, Layer, Option } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { DATACENTER_TRAFFIC, DEFAULT_DATACENTER_TRAFFIC, type KeyKind } from "../domain/Site.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import type { SiteRecord } from "../layers/SiteStore.ts"
import { SiteStore } from "../layers/SiteStore.ts"
import * as Sql from "../layers/Sql.ts"
import {
  addSite,
  type AddedSite,
  configureSite,
  DEFAULT_GRACE_HOURS,
  DEFAULT_TIMEZONE,
  effectiveOrigins,
  findSite,
  listSites,
  type Publication,
  createShare,
  listShares,
  removeSite,
  revokeShares,
  rotateKeys,
  shareLink
} from "../programs/Sites.ts"

/** The servers a running `serve` owns, or embedded ones started for the command. */
const attached = AppConfig.layerWith({ embeddedAttach: true })
const withStore = SiteStore.layer.pipe(Layer.provideMerge(Sql.layer()), Layer.provideMerge(attached))
const withStoreAndRedis = Layer.mergeAll(SiteStore.layer, PrimaryRedis.layer).pipe(
  Layer.provideMerge(Sql.layer()),
  Layer.provideMerge(attached)
)

/** A failure the user can fix: printed as its message, exit code 1. */
const userErrors = <A, R>(
  effect: Effect.Effect<A, { readonly _tag: string; readonly message: string }, R>
): Effect.Effect<A, CliError.UserError, R> =>
  Effect.catch(effect, (error) =>
    Effect.fail(
      new CliError.UserError({
        cause: error,
        userMessage: ["SiteNotFound", "DuplicateHostname", "InvalidSiteInput", "UserError"].includes(error._tag)
          ? error.message
          : `${error._tag}: ${error.message}`
      })
    ))

const fail = (message: string) => Effect.fail(new CliError.UserError({ cause: new Error(message), userMessage: message }))

const datacenterTrafficFlag = Flag.String("datacenter-traffic").pipe(
  Flag.optional,
  Flag.withDescription(
    `traffic from hosting and VPN networks: ${DATACENTER_TRAFFIC.join(" | ")} (default ${DEFAULT_DATACENTER_TRAFFIC}: ` +
      "counted and marked; exclude: counted as bot events; count: counted as ordinary traffic) — docs/network.md"
  )
)

const json = Flag.Boolean("json").pipe(Flag.withDescription("print JSON (for scripts)"), Flag.withDefault(false))
const hostnameArg = Argument.String("hostname").pipe(Argument.withDescription("the site's hostname (or one of its aliases)"))

const rows = (pairs: ReadonlyArray<readonly [string, string]>) => {
  const width = Math.max(...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n")
}

const originsText = (site: SiteRecord) =>
  effectiveOrigins(site).join(", ") + (site.origins === null ? " (default: every hostname, any port)" : "")

/** A site's settings as `rows` lines (shown by `add` and `list`). */
const settingRows = (site: SiteRecord): ReadonlyArray<readonly [string, string]> => [
  ["aliases", site.aliases.join(", ") || "-"],
  ["corp", site.corp ?? "-"],
  ["timezone", site.timezone],
  ["origins", originsText(site)],
  ["datacenter traffic", site.datacenterTraffic]
]

const publicationText = (publication: Publication, refreshMs: number) =>
  publication.published
    ? `Collectors enforce it within ${Math.ceil(refreshMs / 1000)} s.`
    : `warning: the collectors were not told yet (${publication.error}); a running writer publishes the change within ${
      Math.ceil(refreshMs / 1000)
    } s.`

const siteJson = (site: SiteRecord) => ({
  id: site.id,
  hostname: site.hostname,
  aliases: site.aliases,
  corp: site.corp,
  timezone: site.timezone,
  datacenterTraffic: site.datacenterTraffic,
  origins: effectiveOrigins(site),
  defaultOrigins: site.origins === null,
  status: site.removedAt === null ? "active" : "removed",
  createdAt: site.createdAt.toISOString(),
  removedAt: site.removedAt?.toISOString() ?? null,
  writeKeyGraceUntil: site.writeKeyGraceUntil?.toISOString() ?? null,
  serverKeyGraceUntil: site.serverKeyGraceUntil?.toISOString() ?? null
})

// ---------------------------------------------------------------------------------------------

const add = Command.make(
  "add",
  {
    hostname: Argument.String("hostname").pipe(Argument.withDescription("the site's primary hostname, e.g. example.com")),
    aliases: Flag.String("alias").pipe(
      Flag.atLeast(0),
      Flag.withDescription("another hostname of the same site (repeatable), e.g. --alias www.example.com")
    ),
    corp: Flag.String("corp").pipe(Flag.optional, Flag.withDescription("the organisation the site belongs to (created when new)")),
    timezone: Flag.String("timezone").pipe(
      Flag.withDefault(DEFAULT_TIMEZONE),
      Flag.withDescription("IANA timezone for the site's day boundaries, e.g. Europe/Berlin")
    ),
    origins: Flag.String("origin").pipe(
      Flag.atLeast(0),
      Flag.withDescription(
        "an allowed origin (repeatable), e.g. --origin https://shop.example.com; replaces the default " +
          "(every hostname of the site over http and https, any port)"
      )
    ),
    datacenterTraffic: datacenterTrafficFlag,
    json
  },
  (options) =>
    Effect.gen(function*() {
      const config = yield* AppConfig
      const added: AddedSite = yield* addSite({
        hostname: options.hostname,
        aliases: options.aliases,
        corp: Option.getOrUndefined(options.corp),
        timezone: options.timezone,
        origins: options.origins,
        datacenterTraffic: Option.getOrUndefined(options.datacenterTraffic)
      })
      const { site } = added
      if (options.json) {
        return yield* Console.log(JSON.stringify({
          ...siteJson(site),
          writeKey: added.writeKey,
          serverKey: added.serverKey,
          published: added.publication.published
        }, null, 2))
      }
      yield* Console.log([
        `site ${site.hostname} added (id ${site.id})`,
        rows([
          ...settingRows(site),
          ["write key", `${added.writeKey}   public: goes in the page (tracking snippet)`],
          ["server key", `${added.serverKey}   SECRET: server-side events and the stats API; never put it in a page`]
        ]),
        "Both keys are shown only now: Spoolway stores their hashes only.",
        publicationText(added.publication, config.sitesRefreshMs)
      ].join("\n"))
    }).pipe(userErrors, Effect.provide(withStoreAndRedis))
).pipe(Command.withDescription("add a site; prints its public write key and its secret server key once"))

const list = Command.make("list", { json }, ({ json }) =>
  Effect.gen(function*() {
    const sites = yield* listSites
    if (json) return yield* Console.log(JSON.stringify(sites.map(siteJson), null, 2))
    if (sites.length === 0) return yield* Console.log("no site defined (the tracking API is open): spoolway sites add <hostname>")
    const lines = sites.map((site) => {
      const grace = [
        site.writeKeyGraceUntil ? `previous write key until ${site.writeKeyGraceUntil.toISOString()}` : "",
        site.serverKeyGraceUntil ? `previous server key until ${site.serverKeyGraceUntil.toISOString()}` : ""
      ].filter((s) => s !== "")
      return [
        `${site.hostname} (id ${site.id})${site.removedAt === null ? "" : `, REMOVED ${site.removedAt.toISOString()}`}`,
        rows([
          ...settingRows(site),
          ["created", site.createdAt.toISOString()],
          ...(grace.length > 0 ? [["keys", grace.join("; ")] as const] : [])
        ])
      ].join("\n")
    })
    yield* Console.log(lines.join("\n\n"))
  }).pipe(userErrors, Effect.provide(withStore))).pipe(Command.withDescription("list the sites (keys are never shown again)"))

const rotate = Command.make(
  "rotate",
  {
    hostname: hostnameArg,
    write: Flag.Boolean("write").pipe(Flag.withDefault(false), Flag.withDescription("rotate the write key only")),
    server: Flag.Boolean("server").pipe(Flag.withDefault(false), Flag.withDescription("rotate the server key only")),
    graceHours: Flag.Finite("grace-hours").pipe(
      Flag.withDefault(DEFAULT_GRACE_HOURS),
      Flag.withDescription("how long the previous key keeps working (0 = stops at once)")
    ),
    json
  },
  (options) =>
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (options.graceHours < 0) return yield* fail("--grace-hours must be 0 or more")
      const kinds: Array<KeyKind> = options.write === options.server ? ["write", "server"] : options.write ? ["write"] : ["server"]
      const rotated = yield* rotateKeys(options.hostname, kinds, options.graceHours * 3_600_000)
      const graces = [
        ...(rotated.writeKey !== undefined ? [rotated.site.writeKeyGraceUntil] : []),
        ...(rotated.serverKey !== undefined ? [rotated.site.serverKeyGraceUntil] : [])
      ]
      const until = graces[0]?.toISOString() ?? null
      if (options.json) {
        return yield* Console.log(JSON.stringify({
          hostname: rotated.site.hostname,
          ...(rotated.writeKey !== undefined ? { writeKey: rotated.writeKey } : {}),
          ...(rotated.serverKey !== undefined ? { serverKey: rotated.serverKey } : {}),
          previousKeysValidUntil: until,
          published: rotated.publication.published
        }, null, 2))
      }
      yield* Console.log([
        `new key(s) for ${rotated.site.hostname}`,
        rows([
          ...(rotated.writeKey !== undefined ? [["write key", rotated.writeKey] as const] : []),
          ...(rotated.serverKey !== undefined ? [["server key", rotated.serverKey] as const] : [])
        ]),
        until !== null ? `The previous key(s) keep working until ${until}.` : "The previous key(s) stopped working.",
        publicationText(rotated.publication, config.sitesRefreshMs)
      ].join("\n"))
    }).pipe(userErrors, Effect.provide(withStoreAndRedis))
).pipe(Command.withDescription("new write and/or server key; the previous one keeps working for a grace period (default 24 h)"))

const set = Command.make(
  "set",
  { hostname: hostnameArg, datacenterTraffic: datacenterTrafficFlag, json },
  (options) =>
    Effect.gen(function*() {
      const configured = yield* configureSite(options.hostname, {
        datacenterTraffic: Option.getOrUndefined(options.datacenterTraffic)
      })
      const { site } = configured
      if (options.json) return yield* Console.log(JSON.stringify(siteJson(site), null, 2))
      yield* Console.log([
        `site ${site.hostname} updated`,
        rows([["datacenter traffic", site.datacenterTraffic]]),
        "Writers apply it within a few seconds, to events they store from then on (stored events keep how they were counted)."
      ].join("\n"))
    }).pipe(userErrors, Effect.provide(withStoreAndRedis))
).pipe(Command.withDescription("change a site's settings, e.g. --datacenter-traffic exclude"))

const keys = Command.make("keys").pipe(
  Command.withDescription("a site's keys"),
  Command.withSubcommands([rotate])
)

/** Asks on the terminal; undefined when there is none to ask on. */
const ask = (question: string) =>
  Effect.promise(async () => {
    if (process.stdin.isTTY !== true) return undefined
    const rl = createInterface({ input: process.stdin, output: process.stderr })
    try {
      return await rl.question(question)
    } finally {
      rl.close()
    }
  })

const remove = Command.make(
  "remove",
  {
    hostname: hostnameArg,
    purge: Flag.Boolean("purge").pipe(
      Flag.withDefault(false),
      Flag.withDescription("also delete the site's hostnames and ALL its data (events, rollups, fingerprints)")
    ),
    yes: Flag.Boolean("yes").pipe(Flag.withDefault(false), Flag.withDescription("do not ask before --purge")),
    json
  },
  (options) =>
    Effect.gen(function*() {
      const config = yield* AppConfig
      const site = yield* findSite(options.hostname)
      if (options.purge && !options.yes) {
        const answer = yield* ask(
          `This deletes the site ${site.hostname} (id ${site.id}) and ALL its data. Type its hostname to confirm: `
        )
        if (answer === undefined) return yield* fail("refusing to purge without confirmation: add --yes (no terminal to ask on)")
        if (answer.trim() !== site.hostname) return yield* fail("not confirmed: nothing was changed")
      }
      const removed = yield* removeSite(site, options.purge)
      if (options.json) {
        return yield* Console.log(JSON.stringify({
          hostname: site.hostname,
          id: site.id,
          purged: options.purge,
          ...(removed.purged !== undefined ? { deleted: removed.purged } : {}),
          activeSites: removed.activeSites,
          published: removed.publication.published
        }, null, 2))
      }
      const deleted = removed.purged === undefined
        ? "Its data is kept (delete it with --purge)."
        : `Deleted: ${Object.entries(removed.purged).map(([table, n]) => `${table} ${n}`).join(", ")}.`
      yield* Console.log([
        `site ${site.hostname} ${options.purge ? "purged" : "removed"}: its keys and origins no longer send events. ${deleted}`,
        publicationText(removed.publication, config.sitesRefreshMs),
        ...(removed.activeSites === 0
          ? ["warning: no site is left, so the tracking API is OPEN again (only COLLECTOR_WRITE_KEYS, if set, is checked)."]
          : [])
      ].join("\n"))
    }).pipe(userErrors, Effect.provide(withStoreAndRedis))
).pipe(Command.withDescription("stop accepting a site's events; its data is kept unless --purge"))

// ---------------------------------------------------------------------------------------------
// share links

/** The base URL of the dashboard: --base-url, else this machine's HOST:PORT. */
const baseUrlOf = (flag: Option.Option<string>) =>
  Effect.gen(function*() {
    if (Option.isSome(flag)) {
      const url = flag.value.trim()
      if (!/^https?:\/\/[^/\s]+(\/\S*)?$/.test(url)) return yield* fail(`--base-url must be an http(s) URL, e.g. https://stats.example.com (got '${flag.value}')`)
      return url
    }
    const config = yield* AppConfig
    const host = ["0.0.0.0", "::", ""].includes(config.host) ? "localhost" : config.host.includes(":") ? `[${config.host}]` : config.host
    return `http://${host}:${config.port}`
  })

const baseUrlFlag = Flag.String("base-url").pipe(
  Flag.optional,
  Flag.withDescription("where the dashboard is reached, e.g. https://stats.example.com (default: http://HOST:PORT)")
)

const shareList = Command.make("list", { hostname: hostnameArg, json }, (options) =>
  Effect.gen(function*() {
    const { site, shares } = yield* listShares(options.hostname)
    if (options.json) {
      return yield* Console.log(JSON.stringify(shares.map((s) => ({
        id: s.id,
        label: s.label,
        createdAt: s.createdAt.toISOString(),
        revokedAt: s.revokedAt?.toISOString() ?? null
      })), null, 2))
    }
    if (shares.length === 0) return yield* Console.log(`${site.hostname} has no share link: spoolway sites share ${site.hostname}`)
    yield* Console.log(shares.map((s) =>
      `  ${String(s.id).padStart(4)}  ${s.createdAt.toISOString()}  ${
        s.revokedAt === null ? "active " : `revoked ${s.revokedAt.toISOString()}`
      }  ${s.label ?? ""}`
    ).join("\n"))
  }).pipe(userErrors, Effect.provide(withStore))).pipe(Command.withDescription("a site's share links (the links themselves are never shown again)"))

const shareRevoke = Command.make(
  "revoke",
  {
    hostname: hostnameArg,
    which: Argument.String("link").pipe(Argument.withDescription("the share link, its token, its id (sites share list) or 'all'")),
    json
  },
  (options) =>
    Effect.gen(function*() {
      const { site, revoked } = yield* revokeShares(options.hostname, options.which)
      if (options.json) return yield* Console.log(JSON.stringify({ hostname: site.hostname, revoked: revoked.map((s) => s.id) }, null, 2))
      yield* Console.log(
        revoked.length === 0
          ? `${site.hostname} has no active share link: nothing was changed.`
          : `revoked ${revoked.length} share link(s) of ${site.hostname} (id ${revoked.map((s) => s.id).join(", ")}): they stop working at once.`
      )
    }).pipe(userErrors, Effect.provide(withStore))
).pipe(Command.withDescription("stop a share link (or all of a site's) from working"))

const share = Command.make(
  "share",
  {
    hostname: hostnameArg,
    label: Flag.String("label").pipe(Flag.optional, Flag.withDescription("who or what the link is for (shown by sites share list)")),
    baseUrl: baseUrlFlag,
    json
  },
  (options) =>
    Effect.gen(function*() {
      const base = yield* baseUrlOf(options.baseUrl)
      const { site, share, token } = yield* createShare(options.hostname, Option.getOrUndefined(options.label))
      const link = shareLink(base, site.hostname, token)
      if (options.json) {
        return yield* Console.log(JSON.stringify({ hostname: site.hostname, id: share.id, label: share.label, link, token }, null, 2))
      }
      yield* Console.log([
        `view-only link to the dashboard of ${site.hostname} (share id ${share.id}):`,
        "",
        `  ${link}`,
        "",
        "Anyone with the link can read this site's statistics (nothing else); it is shown only now.",
        `Stop it with: spoolway sites share revoke ${site.hostname} ${share.id}`
      ].join("\n"))
    }).pipe(userErrors, Effect.provide(withStore))
).pipe(
  Command.withDescription("print a view-only link to the site's dashboard (revocable: sites share revoke)"),
  Command.withSubcommands([shareList, shareRevoke])
)

export const sitesCommand = Command.make("sites").pipe(
  Command.withDescription("sites: hostnames, allowed origins, timezone, write key (public) and server key (secret)"),
  Command.withSubcommands([add, list, set, keys, remove, share])
)
