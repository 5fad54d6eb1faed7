/**
 * SiteAuth: which site a server key belongs to — for the readers of a site's data (the stats
 * query API reads with `Authorization: Bearer <server key>`).
 *
 *   const auth = yield* SiteAuth
 *   const site = yield* auth.authenticateRequest({ headers: request.headers, url: request.url })
 *   // site.id is the `domain_id` of every row of the site; InvalidServerKey → answer 401
 *
 * `authenticateRequest` is the one entry point of the readers (stats query API, funnel): a new
 * way to read (e.g. share tokens) is added there, and every reader accepts it.
 *
 * A key is accepted when it is the site's current server key, or its previous one within the
 * grace period of a rotation, and the site is not removed. The key is looked up by its SHA-256
 * digest (src/domain/Site.ts), in PostgreSQL on every call: a rotation's end, a removal or a
 * purge take effect at once (one indexed lookup, well under a millisecond).
 */
import { Context, Effect, Layer } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { hashKey, InvalidServerKey, KEY_PREFIX } from "../domain/Site.ts"
import { SiteStore } from "./SiteStore.ts"

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

const invalid = new InvalidServerKey({ message: "missing or invalid server key (Authorization: Bearer <server key>)" })

/** What a reader's request carries for authentication. */
export interface ReadRequest {
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly url: string
}

export class SiteAuth extends Context.Service<SiteAuth, {
  /** the site a reader's request may read: today, its `Authorization: Bearer <server key>` */
  authenticateRequest(request: ReadRequest): Effect.Effect<AuthenticatedSite, InvalidServerKey | SqlError>
  /** the site of this server key */
  authenticate(key: string | undefined): Effect.Effect<AuthenticatedSite, InvalidServerKey | SqlError>
  /** the site of the server key in an `Authorization: Bearer <server key>` header value */
  authenticateHeader(authorization: string | undefined): Effect.Effect<AuthenticatedSite, InvalidServerKey | SqlError>
}>()("spoolway/layers/SiteAuth") {
  /** Needs SiteStore. */
  static readonly layerStore = Layer.effect(
    SiteAuth,
    Effect.gen(function*() {
      const store = yield* SiteStore
      const authenticate = (key: string | undefined) => {
        // only server keys read: a (public) write key never authenticates here
        if (key === undefined || !key.startsWith(KEY_PREFIX.server)) return Effect.fail(invalid)
        return Effect.flatMap(store.byServerKeyHash(hashKey(key)), (site) =>
          site === undefined
            ? Effect.fail(invalid)
            : Effect.succeed<AuthenticatedSite>({
              id: site.id,
              hostname: site.hostname,
              hostnames: [site.hostname, ...site.aliases],
              corpId: site.corpId,
              timezone: site.timezone
            }))
      }
      const authenticateHeader = (authorization: string | undefined) => {
        const match = authorization === undefined ? null : /^\s*bearer\s+(\S+)\s*$/i.exec(authorization)
        return authenticate(match?.[1])
      }
      const authenticateRequest = (request: ReadRequest) => {
        const authorization = request.headers["authorization"]
        return authenticateHeader(typeof authorization === "string" ? authorization : undefined)
      }
      return SiteAuth.of({ authenticate, authenticateHeader, authenticateRequest })
    })
  )

  /** Needs SqlClient. */
  static readonly layer = SiteAuth.layerStore.pipe(Layer.provide(SiteStore.layer))
}
