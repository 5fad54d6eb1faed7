/**
 * The HTTP server: tracking API, health, OpenAPI at /openapi.json, docs at /docs. CORS is the
 * tracking routes' own (Cors.ts): preflights on other paths are 404 like any unknown path.
 */
import { createServer, type Server as NodeServer } from "node:http"
import { Server as NetServer } from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Deferred, Effect, Layer } from "effect"
import { HttpRouter, HttpServerError, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiScalar, OpenApi } from "effect/http-api"
import { AppConfig } from "../layers/AppConfig.ts"
import { Api, WriterApi } from "./Api.ts"
import { handleClientErrors } from "./ClientErrors.ts"
import { DashboardRoutes } from "./DashboardRoutes.ts"
import { HealthHandlers } from "./Health.ts"
import { MetricsRoute } from "./MetricsRoute.ts"
import { QueryRoutes } from "./QueryApi.ts"
import { errorResponse } from "./Responses.ts"
import { TrackerRoute } from "./TrackerRoute.ts"
import { TrackingRoutes } from "./Tracking.ts"

/**
 * GET /openapi.json: the whole collector API. The tracking endpoints are served by
 * `TrackingRoutes` (plain routes, the hot path), so the `HttpApiBuilder` only serves health
 * and this document is built from `Api` here.
 */
let openApiResponse: HttpServerResponse.HttpServerResponse | undefined
const OpenApiRoute = HttpRouter.add(
  "GET",
  "/openapi.json",
  Effect.sync(() => openApiResponse ??= HttpServerResponse.jsonUnsafe(OpenApi.fromApi(Api)))
)

/** Health (the HttpApi's health group) and metrics: every role serves them. */
const HealthRoutes = Layer.mergeAll(HttpApiBuilder.layer(WriterApi).pipe(Layer.provide(HealthHandlers)), MetricsRoute)

/** The API's description: /openapi.json and the /docs page. */
const DescriptionRoutes = Layer.mergeAll(OpenApiRoute, HttpApiScalar.layer(Api, { path: "/docs" }))

/** All routes of the collector, without a server (tests can serve them anywhere). */
export const CollectorRoutes = Layer.mergeAll(HealthRoutes, TrackingRoutes, TrackerRoute, DescriptionRoutes)

/** The api role's routes: the stats query API, the dashboard on it, health, metrics, the API description. */
export const StatsRoutes = Layer.mergeAll(HealthRoutes, QueryRoutes, DashboardRoutes, DescriptionRoutes)

/** Role all: the collector's routes, the stats query API and the dashboard. */
export const AllRoutes = Layer.mergeAll(CollectorRoutes, QueryRoutes, DashboardRoutes)

/** The writer role's routes: health and metrics only. */
export const WriterRoutes = HealthRoutes

/**
 * Once SIGTERM/SIGINT arrived, every response carries `Connection: close`, so keep-alive
 * clients move to another instance instead of holding the closing server open.
 */
let draining = false
const onSignal = () => {
  draining = true
}
const closeIfDraining = (response: HttpServerResponse.HttpServerResponse) =>
  draining ? HttpServerResponse.setHeader(response, "connection", "close") : response

const isRouteNotFound = (error: unknown) => HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"

/**
 * One global middleware (one step per request) for what every answer shares:
 * - after SIGTERM/SIGINT: `Connection: close` (above);
 * - a path no route serves: a JSON 404 (`{"error":"not_found",…}`) like every other error
 *   answer, instead of the router's empty one;
 * - a defect (a bug: the router answers it with an empty 500) is logged at ERROR with its
 *   cause — the server runs without the request logger, so it would otherwise go unseen.
 */
const ResponsePolicy = HttpRouter.middleware(
  (httpEffect) =>
    Effect.matchCauseEffect(httpEffect, {
      onSuccess: (response) => Effect.succeed(closeIfDraining(response)),
      onFailure: (cause) => {
        if (cause.reasons.some((reason) => Cause.isFailReason(reason) && isRouteNotFound(reason.error))) {
          return Effect.succeed(closeIfDraining(errorResponse(404, "not_found", "no such endpoint")))
        }
        return Cause.hasDies(cause)
          ? Effect.logError("HTTP request failed with a defect (answered 500)", cause).pipe(Effect.andThen(Effect.failCause(cause)))
          : Effect.failCause(cause)
      }
    }),
  { global: true }
)

const SignalListeners = Layer.effectDiscard(Effect.acquireRelease(
  Effect.sync(() => {
    // ahead of the runtime's own listener, which starts the shutdown (finalizers) at once
    process.prependListener("SIGTERM", onSignal)
    process.prependListener("SIGINT", onSignal)
  }),
  () =>
    Effect.sync(() => {
      process.off("SIGTERM", onSignal)
      process.off("SIGINT", onSignal)
    })
))

const IN_FLIGHT_TIMEOUT_MS = 10_000

/**
 * Lame duck, after SIGTERM/SIGINT and before the server's own shutdown: stop accepting
 * connections but keep the open ones for up to `graceMs`, answering their requests with
 * `Connection: close` (above), so that keep-alive clients close them after an answer; then
 * close the idle rest and give requests in flight up to 10 s. Closing idle keep-alive
 * connections at once (what `server.close()` does) resets requests that clients are sending on
 * them at that moment — unanswered, so a client cannot tell whether they were taken.
 */
const lameDuck = (server: NodeServer, graceMs: number) =>
  Effect.gen(function*() {
    if (!draining || !server.listening) return
    // net.Server's close: stops listening and keeps the open connections (http.Server's close
    // also closes the idle ones at once); calls back once every connection has ended
    const allClosed = Deferred.makeUnsafe<void>()
    NetServer.prototype.close.call(server, () => Deferred.doneUnsafe(allClosed, Effect.void))
    const closedWithin = (ms: number) =>
      Effect.timeoutOrElse(Effect.as(Deferred.await(allClosed), true), { duration: ms, orElse: () => Effect.succeed(false) })
    if (graceMs > 0 && (yield* closedWithin(graceMs))) return
    server.closeIdleConnections()
    if (yield* closedWithin(IN_FLIGHT_TIMEOUT_MS)) return
    yield* Effect.logWarning(`HTTP: requests still in flight ${IN_FLIGHT_TIMEOUT_MS} ms after the grace; closing their connections`)
    server.closeAllConnections()
  })

/**
 * Serves `routes` on HOST:PORT (PORT 0 picks a free port). On shutdown after a signal the server
 * stops accepting and lets keep-alive clients finish for SHUTDOWN_GRACE_MS (`lameDuck`); then
 * it finishes in-flight requests (at most 10 s) and closes.
 */
export const serveHttp = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Layer.unwrap(
    Effect.map(AppConfig, (config) => {
      const server = handleClientErrors(createServer())
      const served = HttpRouter.serve(Layer.mergeAll(routes, SignalListeners, ResponsePolicy), { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provideMerge(NodeHttpServer.layer(() => server, {
          port: config.port,
          host: config.host,
          gracefulShutdownTimeout: "10 seconds"
        }))
      )
      // built after the server, so released before it: the lame duck runs first
      return Layer.effectDiscard(Effect.addFinalizer(() => lameDuck(server, config.shutdownGraceMs))).pipe(
        Layer.provideMerge(served)
      )
    })
  )
