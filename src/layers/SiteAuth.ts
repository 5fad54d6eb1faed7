/**
 * SiteAuth: which site a reader may read — the stats query API and its funnel, which the
 * dashboard uses, with `Authorization: Bearer <server key or share token>`.
 *
 *   const auth = yield* SiteAuth
 *   const site = yield* auth.authenticateRequest({ headers: request.headers, url: request.url })
 *   // site.id is the `domain_id` of every row of the site; InvalidServerKey → answer 401
 *
 * `authenticateRequest` is the one entry point of the readers: a new way to read is added
 * there, and every reader accepts it. It takes
 * - the site's current server key, or its previous one within the grace period of a rotation;
 * - a view-only share token (`sw_shr_…`, `spoolway sites share`) that is not revoked — it only
 *   reads: nothing but the readers takes one (`authenticate` / `authenticateHeader`, for the
 *   server key alone, do not);
 * and only for a site that is not removed. Keys and tokens are looked up by their SHA-256 digest
 * (src/domain/Site.ts), in PostgreSQL on every call: a rotation's end, a revocation, a removal
 * or a purge take effect at once (one indexed lookup, well under a millisecond).
 */
import { Context, Effect, Layer } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { hashKey, InvalidServerKey, KEY_PREFIX, SHARE_PREFIX } from "../domain/Site.ts"
import { type SiteRecord, SiteStore } from "./SiteStore.ts"

export interface AuthenticatedSite {
  /** = `domains.id` of the primary hostname = `domain_id` of the site's rows */
  readonly id: number
  readonly hostname: string
  /** the primary hostname, then the aliases */
  readonly hostnames: ReadonlyArray<string>
  readonly corpId: number | null
  /** IANA name, for the site's day boundaries */
  readonly timezone: string
}

/** A reader of a site's data: by its server key, or by a view-only share link. */
export interface AuthenticatedReader extends AuthenticatedSite {
  readonly access: "server_key" | "share"
}

const invalidReader = new InvalidServerKey({
  message: "missing or invalid credentials (Authorization: Bearer <server key or share token>)"
})

const invalid = new InvalidServerKey({ message: "missing or invalid server key (Authorization: Bearer <server key>)" })

/** What a reader's request carries for authentication. */
export interface ReadRequest {
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly url: string
}

export class SiteAuth extends Context.Service<SiteAuth, {
  /** the site a reader's request may read: its `Authorization: Bearer <server key or share token>` */
  authenticateRequest(request: ReadRequest): Effect.Effect<AuthenticatedReader, InvalidServerKey | SqlError>
  /** the site of this server key */
  authenticate(key: string | undefined): Effect.Effect<AuthenticatedSite, InvalidServerKey | SqlError>
  /** the site of the server key in an `Authorization: Bearer <server key>` header value */
  authenticateHeader(authorization: string | undefined): Effect.Effect<AuthenticatedSite, InvalidServerKey | SqlError>
  /** a reader (query API): a server key or an unrevoked share token, in an `Authorization: Bearer …` value */
  authenticateReaderHeader(authorization: string | undefined): Effect.Effect<AuthenticatedReader, InvalidServerKey | SqlError>
}>()("spoolway/layers/SiteAuth") {
  /** Needs SiteStore. */
  static readonly layerStore = Layer.effect(
    SiteAuth,
    Effect.gen(function*() {
      const store = yield* SiteStore
      const toSite = (site: SiteRecord): AuthenticatedSite => ({
        id: site.id,
        hostname: site.hostname,
        hostnames: [site.hostname, ...site.aliases],
        corpId: site.corpId,
        timezone: site.timezone
      })
      const authenticate = (key: string | undefined) => {
        // only server keys read: a (public) write key never authenticates here
        if (key === undefined || !key.startsWith(KEY_PREFIX.server)) return Effect.fail(invalid)
        return Effect.flatMap(store.byServerKeyHash(hashKey(key)), (site) =>
          site === undefined
            ? Effect.fail(invalid)
            : Effect.succeed(toSite(site)))
      }
      const bearer = (authorization: string | undefined) =>
        (authorization === undefined ? null : /^\s*bearer\s+(\S+)\s*$/i.exec(authorization))?.[1]
      const authenticateHeader = (authorization: string | undefined) => authenticate(bearer(authorization))
      const authenticateReaderHeader = (authorization: string | undefined) => {
        const token = bearer(authorization)
        if (token?.startsWith(SHARE_PREFIX)) {
          return Effect.flatMap(store.byShareTokenHash(hashKey(token)), (site) =>
            site === undefined
              ? Effect.fail(invalidReader)
              : Effect.succeed<AuthenticatedReader>({ ...toSite(site), access: "share" }))
        }
        return authenticate(token).pipe(
          Effect.map((site): AuthenticatedReader => ({ ...site, access: "server_key" })),
          Effect.mapError((error) => (error._tag === "InvalidServerKey" ? invalidReader : error))
        )
      }
      // the one entry point of the readers (query API, funnel): a server key or a share token
      const authenticateRequest = (request: ReadRequest) => {
        const authorization = request.headers["authorization"]
        return authenticateReaderHeader(typeof authorization === "string" ? authorization : undefined)
      }
      return SiteAuth.of({ authenticate, authenticateHeader, authenticateReaderHeader, authenticateRequest })
    })
  )

  /** Needs SqlClient. */
  static readonly layer = SiteAuth.layerStore.pipe(Layer.provide(SiteStore.layer))
}
