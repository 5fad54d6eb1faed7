/**
 * SiteStore: the sites in PostgreSQL (tables of migrations/0003_sites.ts). Every change bumps
 * `site_registry.version` in its own transaction, so the snapshot the collector enforces can be
 * ordered (src/domain/Site.ts). Keys arrive here already hashed; nothing here sees a key.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import { type DatacenterTraffic, DEFAULT_DATACENTER_TRAFFIC, DuplicateHostname, type KeyKind, SiteNotFound, type SiteSnapshot } from "../domain/Site.ts"

export interface SiteRecord {
  /** = `domains.id` of the primary hostname: the `domain_id` of the site's data */
  readonly id: number
  readonly hostname: string
  readonly aliases: ReadonlyArray<string>
  readonly corpId: number | null
  readonly corp: string | null
  readonly timezone: string
  /** explicit allowed origins; null = the default (every hostname over http/https) */
  readonly origins: ReadonlyArray<string> | null
  /** what the writer does with datacenter traffic (migration 0005, docs/network.md) */
  readonly datacenterTraffic: DatacenterTraffic
  readonly createdAt: Date
  readonly removedAt: Date | null
  /** until when the previous write / server key still works (after a rotation) */
  readonly writeKeyGraceUntil: Date | null
  readonly serverKeyGraceUntil: Date | null
}

export interface NewSite {
  readonly hostname: string
  readonly aliases: ReadonlyArray<string>
  readonly corp: string | undefined
  readonly timezone: string
  readonly origins: ReadonlyArray<string> | null
  /** default `flag` */
  readonly datacenterTraffic?: DatacenterTraffic | undefined
  readonly writeKeyHash: string
  readonly serverKeyHash: string
}

/** Settings of a site that `spoolway sites set` changes. */
export interface SiteSettings {
  readonly datacenterTraffic?: DatacenterTraffic | undefined
}

/** A view-only share link of a site's dashboard (the token itself is never stored). */
export interface ShareRecord {
  readonly id: number
  readonly siteId: number
  readonly label: string | null
  readonly createdAt: Date
  readonly revokedAt: Date | null
}

/** Which shares of a site to revoke: one by id, the one of a token digest, or all. */
export type ShareSelector =
  | { readonly _tag: "id"; readonly id: number }
  | { readonly _tag: "tokenHash"; readonly tokenHash: string }
  | { readonly _tag: "all" }

/** Rows deleted per table by a purge. */
export type PurgeReport = Record<string, number>

export class SiteStore extends Context.Service<SiteStore, {
  add(site: NewSite): Effect.Effect<SiteRecord, DuplicateHostname | SqlError>
  /** every site, removed ones included, by primary hostname */
  readonly list: Effect.Effect<ReadonlyArray<SiteRecord>, SqlError>
  /** the site owning `hostname` (primary or alias), removed ones included */
  find(hostname: string): Effect.Effect<SiteRecord, SiteNotFound | SqlError>
  /** `kind`'s key becomes `newHash`; the current one keeps working for `graceMs` */
  rotate(siteId: number, kind: KeyKind, newHash: string, graceMs: number): Effect.Effect<SiteRecord, SqlError>
  /** changes the site's settings (each one given); the writers apply them within seconds */
  configure(siteId: number, settings: SiteSettings): Effect.Effect<SiteRecord, SqlError>
  /** stops accepting (keys and origins leave the registry); the data stays */
  remove(siteId: number): Effect.Effect<void, SqlError>
  /** deletes the site, its hostnames and every row of its data (all tables with a `domain_id`) */
  purge(siteId: number): Effect.Effect<PurgeReport, SqlError>
  /** what the collector enforces, at the current version (one statement: one consistent view) */
  readonly snapshot: Effect.Effect<SiteSnapshot, SqlError>
  readonly version: Effect.Effect<number, SqlError>
  /** the active site whose current server key, or previous one still in its grace, has this digest */
  byServerKeyHash(digest: string): Effect.Effect<SiteRecord | undefined, SqlError>
  /** a new share link of the site, by its token's digest */
  addShare(siteId: number, tokenHash: string, label: string | undefined): Effect.Effect<ShareRecord, SqlError>
  /** the site's share links, revoked ones included, oldest first */
  shares(siteId: number): Effect.Effect<ReadonlyArray<ShareRecord>, SqlError>
  /** revokes the selected links that are not revoked yet; returns them */
  revokeShares(siteId: number, selector: ShareSelector): Effect.Effect<ReadonlyArray<ShareRecord>, SqlError>
  /** the active site of the unrevoked share link whose token has this digest */
  byShareTokenHash(digest: string): Effect.Effect<SiteRecord | undefined, SqlError>
}>()("spoolway/layers/SiteStore") {
  static readonly layer = Layer.effect(SiteStore, Effect.map(SqlClient.SqlClient, (sql) => makeSiteStore(sql)))
}

/** a row of `records`: `array_agg` of no alias is NULL */
type RecordRow = Omit<SiteRecord, "aliases"> & { readonly aliases: ReadonlyArray<string> | null }

const toRecord = (row: RecordRow): SiteRecord => ({ ...row, aliases: row.aliases ?? [] })

const isUniqueViolation = (error: SqlError) => error.reason._tag === "UniqueViolation"

const makeSiteStore = (sql: SqlClient.SqlClient): SiteStore["Service"] => {
  // a grace that has run out reads as none
  const records = (where: Statement.Fragment) =>
    sql<RecordRow>`
      SELECT s.id, d.hostname, d.corp_id AS "corpId", c.name AS corp, s.timezone, s.origins,
        s.datacenter_traffic AS "datacenterTraffic",
        (SELECT array_agg(a.hostname ORDER BY a.hostname) FROM domains a WHERE a.site_id = s.id AND a.id <> s.id) AS aliases,
        s.created_at AS "createdAt", s.removed_at AS "removedAt",
        CASE WHEN s.write_key_prev_expires_at > now() THEN s.write_key_prev_expires_at END AS "writeKeyGraceUntil",
        CASE WHEN s.server_key_prev_expires_at > now() THEN s.server_key_prev_expires_at END AS "serverKeyGraceUntil"
      FROM sites s JOIN domains d ON d.id = s.id LEFT JOIN corps c ON c.id = d.corp_id
      WHERE ${where}
      ORDER BY d.hostname`.pipe(Effect.map((rows) => rows.map(toRecord)))

  const bumpVersion = sql`UPDATE site_registry SET version = version + 1`

  const byId = (id: number) =>
    Effect.flatMap(records(sql`s.id = ${id}`), (rows) =>
      rows[0] === undefined ? Effect.die(new Error(`site ${id} vanished`)) : Effect.succeed(rows[0]))

  const find = (hostname: string) =>
    Effect.flatMap(
      records(sql`s.id = (SELECT site_id FROM domains WHERE hostname = ${hostname})`),
      (rows) => (rows[0] === undefined ? Effect.fail(SiteNotFound.of(hostname)) : Effect.succeed(rows[0]))
    )

  const corpIdOf = (name: string) =>
    Effect.gen(function*() {
      const [existing] = yield* sql<{ readonly id: number }>`SELECT id FROM corps WHERE name = ${name} ORDER BY id LIMIT 1`
      if (existing !== undefined) return existing.id
      const [created] = yield* sql<{ readonly id: number }>`INSERT INTO corps (name) VALUES (${name}) RETURNING id`
      return created!.id
    })

  const add = (site: NewSite) =>
    sql.withTransaction(Effect.gen(function*() {
      const all = [site.hostname, ...site.aliases]
      // one `sites` change at a time (also orders the version bumps)
      yield* sql`SELECT version FROM site_registry FOR UPDATE`
      const taken = yield* sql<{
        readonly hostname: string
        readonly id: number
        readonly siteId: number | null
        readonly siteHostname: string | null
        readonly removed: boolean
      }>`
        SELECT d.hostname, d.id, d.site_id AS "siteId", p.hostname AS "siteHostname", s.removed_at IS NOT NULL AS removed
        FROM domains d LEFT JOIN domains p ON p.id = d.site_id LEFT JOIN sites s ON s.id = d.site_id
        WHERE d.hostname IN ${sql.in(all)}`
      let adopt: { readonly id: number } | undefined
      for (const row of taken) {
        if (row.siteId !== null) {
          return yield* DuplicateHostname.of(
            row.hostname,
            row.removed
              ? `belongs to the removed site '${row.siteHostname}'; purge it first: spoolway sites remove ${row.siteHostname} --purge`
              : `already belongs to the site '${row.siteHostname}'`
          )
        }
        if (row.hostname !== site.hostname) {
          return yield* DuplicateHostname.of(
            row.hostname,
            `is already a domain of its own (id ${row.id}, with its own data); an alias must be a new hostname`
          )
        }
        // a domain registered before sites existed: the site takes it over, data included
        adopt = { id: row.id }
      }
      const corpId = site.corp === undefined ? null : yield* corpIdOf(site.corp)
      let id: number
      if (adopt !== undefined) {
        id = adopt.id
        yield* sql`UPDATE domains SET site_id = id, role = 'primary', corp_id = coalesce(${corpId}, corp_id) WHERE id = ${id}`
      } else {
        const [row] = yield* sql<{ readonly id: number }>`
          INSERT INTO domains (hostname, corp_id, role) VALUES (${site.hostname}, ${corpId}, 'primary') RETURNING id`
        id = row!.id
        yield* sql`UPDATE domains SET site_id = id WHERE id = ${id}`
      }
      if (site.aliases.length > 0) {
        yield* sql`
          INSERT INTO domains (hostname, corp_id, role, site_id)
          SELECT h, (SELECT corp_id FROM domains WHERE id = ${id}), 'alias', ${id}
          FROM json_array_elements_text(${JSON.stringify(site.aliases)}::json) AS h`
      }
      const origins = site.origins === null ? null : JSON.stringify(site.origins)
      yield* sql`
        INSERT INTO sites (id, timezone, origins, write_key_hash, server_key_hash, datacenter_traffic)
        VALUES (${id}, ${site.timezone}, CASE WHEN ${origins}::json IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text(${origins}::json)) END,
                ${site.writeKeyHash}, ${site.serverKeyHash}, ${site.datacenterTraffic ?? DEFAULT_DATACENTER_TRAFFIC})`
      yield* bumpVersion
      return yield* byId(id)
    })).pipe(
      // two `sites add` of one hostname at once: the loser's insert conflicts
      Effect.catchIf(
        (error): error is SqlError => error._tag === "SqlError" && isUniqueViolation(error),
        () => Effect.fail(DuplicateHostname.of(site.hostname, "was added at the same moment by another command"))
      )
    )

  const rotate = (siteId: number, kind: KeyKind, newHash: string, graceMs: number) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT version FROM site_registry FOR UPDATE`
      const grace = `${Math.max(0, Math.round(graceMs))} milliseconds`
      if (kind === "write") {
        yield* sql`
          UPDATE sites SET write_key_prev_hash = write_key_hash, write_key_prev_expires_at = now() + ${grace}::interval,
            write_key_hash = ${newHash}, updated_at = now()
          WHERE id = ${siteId}`
      } else {
        yield* sql`
          UPDATE sites SET server_key_prev_hash = server_key_hash, server_key_prev_expires_at = now() + ${grace}::interval,
            server_key_hash = ${newHash}, updated_at = now()
          WHERE id = ${siteId}`
      }
      yield* bumpVersion
      return yield* byId(siteId)
    }))

  const configure = (siteId: number, settings: SiteSettings) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT version FROM site_registry FOR UPDATE`
      if (settings.datacenterTraffic !== undefined) {
        yield* sql`UPDATE sites SET datacenter_traffic = ${settings.datacenterTraffic}, updated_at = now() WHERE id = ${siteId}`
      }
      // the version tells the writers' tenant tables (Domains) to reload
      yield* bumpVersion
      return yield* byId(siteId)
    }))

  const remove = (siteId: number) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT version FROM site_registry FOR UPDATE`
      yield* sql`UPDATE sites SET removed_at = coalesce(removed_at, now()), updated_at = now() WHERE id = ${siteId}`
      yield* bumpVersion
    }))

  const purge = (siteId: number) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT version FROM site_registry FOR UPDATE`
      // every table with a domain_id column (events, rollups) or a site_id column (visits, their
      // contents and rollups, shares) — partitions are reached through their parent; the domains
      // rows last, below
      const tables = yield* sql<{ readonly name: string; readonly column: string }>`
        SELECT c.relname AS name, a.attname AS column
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attname IN ('domain_id', 'site_id') AND NOT a.attisdropped AND n.nspname = current_schema()
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'domains'
        ORDER BY 1`
      const report: PurgeReport = {}
      for (const { column, name } of tables) {
        const deleted = yield* sql`DELETE FROM ${sql(name)} WHERE ${sql(column)} = ${siteId} RETURNING 1`
        report[name] = (report[name] ?? 0) + deleted.length
      }
      // the sites row and the alias rows go with the primary domain row (ON DELETE CASCADE)
      yield* sql`DELETE FROM domains WHERE id = ${siteId}`
      yield* bumpVersion
      return report
    }))

  const snapshot = Effect.map(
    sql<{ readonly version: string; readonly sites: string }>`
      SELECT r.version::text AS version, coalesce((
        SELECT json_agg(json_build_object(
          'id', s.id,
          'hostnames', (SELECT json_agg(d.hostname ORDER BY d.id <> s.id, d.hostname) FROM domains d WHERE d.site_id = s.id),
          'origins', s.origins,
          'keys', json_build_array(
            json_build_object('kind', 'write', 'hash', s.write_key_hash),
            json_build_object('kind', 'server', 'hash', s.server_key_hash))::jsonb
            || CASE WHEN s.write_key_prev_expires_at > now() THEN jsonb_build_array(jsonb_build_object('kind', 'write',
                 'hash', s.write_key_prev_hash, 'expiresAt', floor(extract(epoch FROM s.write_key_prev_expires_at) * 1000)))
               ELSE '[]'::jsonb END
            || CASE WHEN s.server_key_prev_expires_at > now() THEN jsonb_build_array(jsonb_build_object('kind', 'server',
                 'hash', s.server_key_prev_hash, 'expiresAt', floor(extract(epoch FROM s.server_key_prev_expires_at) * 1000)))
               ELSE '[]'::jsonb END
        ) ORDER BY s.id) FROM sites s WHERE s.removed_at IS NULL), '[]')::text AS sites
      FROM site_registry r`,
    ([row]): SiteSnapshot => ({ v: 1, version: Number(row!.version), sites: JSON.parse(row!.sites) })
  )

  const version = Effect.map(
    sql<{ readonly version: string }>`SELECT version::text AS version FROM site_registry`,
    ([row]) => Number(row!.version)
  )

  const byServerKeyHash = (digest: string) =>
    Effect.map(
      records(sql`s.removed_at IS NULL AND (s.server_key_hash = ${digest}
        OR (s.server_key_prev_hash = ${digest} AND s.server_key_prev_expires_at > now()))`),
      (rows) => rows[0]
    )

  const shareColumns = sql`id, site_id AS "siteId", label, created_at AS "createdAt", revoked_at AS "revokedAt"`

  const addShare = (siteId: number, tokenHash: string, label: string | undefined) =>
    Effect.map(
      sql<ShareRecord>`
        INSERT INTO site_shares (site_id, token_hash, label) VALUES (${siteId}, ${tokenHash}, ${label ?? null})
        RETURNING ${shareColumns}`,
      ([row]) => row!
    )

  const shares = (siteId: number) => sql<ShareRecord>`SELECT ${shareColumns} FROM site_shares WHERE site_id = ${siteId} ORDER BY id`

  const revokeShares = (siteId: number, selector: ShareSelector) => {
    const which = selector._tag === "id"
      ? sql`id = ${selector.id}`
      : selector._tag === "tokenHash"
      ? sql`token_hash = ${selector.tokenHash}`
      : sql`true`
    return sql<ShareRecord>`
      UPDATE site_shares SET revoked_at = now()
      WHERE site_id = ${siteId} AND revoked_at IS NULL AND ${which}
      RETURNING ${shareColumns}`
  }

  const byShareTokenHash = (digest: string) =>
    Effect.map(
      records(sql`s.removed_at IS NULL AND s.id = (SELECT site_id FROM site_shares WHERE token_hash = ${digest} AND revoked_at IS NULL)`),
      (rows) => rows[0]
    )

  return SiteStore.of({
    add,
    list: records(sql`true`),
    find,
    rotate,
    configure,
    remove,
    purge,
    snapshot,
    version,
    byServerKeyHash,
    addShare,
    shares,
    revokeShares,
    byShareTokenHash
  })
}
