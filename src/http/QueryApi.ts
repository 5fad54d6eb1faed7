/**
 * The stats query API (docs/api.md "Stats query API"), served by `--role api` and `--role all`:
 * - `POST /api/v1/query`  — metrics by dimensions over a date range (programs/Stats.ts);
 * - `POST /api/v1/funnel` — visitors per ordered step.
 * Key (401) → body (413, 400) → validation (400 naming the field and what it allows) → the
 * body's site is the key's (403) → answer 200. Other methods: 405. Plain router routes like the
 * tracking ones (exact error bodies); the `StatsApi` group in Api.ts documents them.
 */
import { Effect, Layer } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"
import type { InvalidServerKey } from "../domain/Site.ts"
import { InvalidQuery, invalidQueryBody, parseFunnel, parseQuery } from "../domain/StatsQuery.ts"
import { SiteAuth } from "../layers/SiteAuth.ts"
import { describeSqlError } from "../layers/Sql.ts"
import { arriving, runFunnel, runQuery, type SiteMismatch, type StatsSite } from "../programs/Stats.ts"
import { makeBodyReader } from "./Body.ts"
import { errorResponse, json } from "./Responses.ts"

export const QUERY_PATH = "/api/v1/query"
export const FUNNEL_PATH = "/api/v1/funnel"
/** a query body is small; 64 KiB leaves room for long filter lists */
export const MAX_QUERY_BODY_BYTES = 64 * 1024

const utf8 = new TextDecoder("utf-8", { fatal: true })
const readBody = makeBodyReader(MAX_QUERY_BODY_BYTES)

const badBody = (message: string) => json(400, { error: "invalid_query", field: "body", allowed: ["a JSON object"], message })

type Failure = InvalidQuery | SiteMismatch | SqlError

const onFailure = (error: Failure): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  switch (error._tag) {
    case "InvalidQuery":
      return Effect.succeed(json(400, invalidQueryBody(error)))
    case "SiteMismatch":
      return Effect.succeed(errorResponse(403, "forbidden", error.message))
    default:
      return Effect.as(
        Effect.logError(`stats query failed: ${describeSqlError(error)}`),
        errorResponse(503, "unavailable", "the database did not answer; retry later")
      )
  }
}

const endpoint = <Q, A>(
  parse: (body: unknown) => Q | InvalidQuery,
  answer: (site: StatsSite, query: Q) => Effect.Effect<A, Failure, SqlClient.SqlClient>
) =>
(request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    // on its way to the query (Stats.ts `arriving`: statements that may share their visits wait for it)
    const received = yield* arriving(Effect.gen(function*() {
      const auth = yield* SiteAuth
      const site = yield* auth.authenticateRequest({ headers: request.headers, url: request.url })
      const bytes = yield* readBody(request)
      if (bytes === "too_large") {
        return errorResponse(413, "payload_too_large", `a query body is at most ${MAX_QUERY_BODY_BYTES} bytes`)
      }
      if (bytes === "unreadable") return badBody("the request body could not be read")
      let body: unknown
      try {
        body = JSON.parse(utf8.decode(bytes))
      } catch {
        return badBody("the body is not valid UTF-8 JSON")
      }
      const query = parse(body)
      if (query instanceof InvalidQuery) return json(400, invalidQueryBody(query))
      return { site, query }
    }))
    if (HttpServerResponse.isHttpServerResponse(received)) return received
    return json(200, yield* answer(received.site, received.query))
  }).pipe(
    Effect.catchTag("InvalidServerKey", (e: InvalidServerKey) => Effect.succeed(errorResponse(401, "unauthorized", e.message))),
    Effect.catch(onFailure)
  )

const methodNotAllowed = Effect.sync(() => errorResponse(405, "method_not_allowed", "the stats API takes POST", { allow: "POST" }))

/** The stats API's routes; needs SiteAuth and SqlClient. */
export const QueryRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const auth = yield* SiteAuth
    const sql = yield* SqlClient.SqlClient
    const provide = <A, E>(effect: Effect.Effect<A, E, SiteAuth | SqlClient.SqlClient>) =>
      effect.pipe(Effect.provideService(SiteAuth, auth), Effect.provideService(SqlClient.SqlClient, sql))
    const query = endpoint(parseQuery, runQuery)
    const funnel = endpoint(parseFunnel, runFunnel)
    yield* router.addAll([
      HttpRouter.route("POST", QUERY_PATH, (request) => provide(query(request))),
      HttpRouter.route("POST", FUNNEL_PATH, (request) => provide(funnel(request))),
      ...(["GET", "PUT", "PATCH", "DELETE"] as const).flatMap((method) => [
        HttpRouter.route(method, QUERY_PATH, methodNotAllowed),
        HttpRouter.route(method, FUNNEL_PATH, methodNotAllowed)
      ])
    ])
  })
)

export type QueryRoutesLayer = Layer.Success<typeof QueryRoutes>
