/**
 * The collector role: HTTP tracking API → EventQueue (primary stream, spool on outage).
 * Needs no database.
 */
import { Layer } from "effect"
import { HealthSource } from "../http/Health.ts"
import { CollectorRoutes, serveHttp } from "../http/Server.ts"
import { EventQueue } from "../layers/EventQueue.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import { SiteRegistry } from "../layers/SiteRegistry.ts"
import { SpoolRedis } from "../layers/SpoolRedis.ts"

/** The collector's routes with their services, given an EventQueue and AppConfig. */
export const CollectorHttp = serveHttp(CollectorRoutes).pipe(Layer.provide(HealthSource.collector))

/** The queue and the site registry on the live Redis pair (configured URLs or embedded servers). */
export const LiveQueue = Layer.merge(EventQueue.layer, SiteRegistry.layer).pipe(Layer.provide([PrimaryRedis.layer, SpoolRedis.layer]))

export const CollectorLive = CollectorHttp.pipe(Layer.provide(LiveQueue))
