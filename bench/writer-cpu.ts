/**
 * The writer's Node-side CPU per event, without Redis or PostgreSQL: the writer benchmark's
 * workload (bench/writerWorkload.ts) as stream entries → `prepareBatch` (decode, enrich,
 * rollups) and the PostgreSQL sink's plan (statement parameters) batch by batch, with fixed salts and tenants and the real
 * geoip-lite lookup. Reports CPU µs per event (process user + system time, best of N passes —
 * CPU time rather than wall clock, so that it is usable on a shared machine) for
 *   - decode: the envelope decoder alone;
 *   - prepare: `prepareBatch` + the sink's `makePlan` (what the writer does before each transaction);
 *   - bind: the driver's Bind messages of those statements' parameters (raw events, fingerprints,
 *     visits, the visit contents' item rows, seen-set, the events' rollup rows; not the visits'
 *     hours the contents statement sends back) — the binary encoding of the arrays happens there,
 *     in the transaction, not in `makePlan`.
 *
 *   BENCH_EVENTS=100000 BENCH_BATCH=500 BENCH_PASSES=5 npx node bench/writer-cpu.ts
 *
 * BENCH_CPU_PROFILE=1 writes a .cpuprofile (100 µs samples) of the last prepare pass of each BENCH_NETWORK mode to bench/results/.
 * BENCH_NETWORK=real,empty alternates the passes between the ASN lookup and none (every address
 * without network data, bench/writerWorkload.ts) and reports the best prepare pass of each: what
 * the network enrichment costs the prepare stage, in one process.
 */
import * as inspector from "node:inspector/promises"
import { PgProtocol, PgTypes } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, Result } from "effect"
import { decodeEnvelopeJson } from "../src/domain/Envelope.ts"
import { decodeEnvelope } from "../src/domain/EnvelopeDecode.ts"
import type { BatchEntry } from "../src/domain/Batch.ts"
import type { Tenant } from "../src/domain/Tenant.ts"
import { Domains } from "../src/layers/Domains.ts"
import { GeoLookup } from "../src/layers/GeoLookup.ts"
import type { NetworkLookup } from "../src/layers/NetworkLookup.ts"
import { makePlan } from "../src/layers/PgSink.ts"
import { WriteCache } from "../src/layers/PgSinkCache.ts"
import type { Params } from "../src/layers/PgSinkParams.ts"
import { metricParams } from "../src/layers/PgSinkStatements.ts"
import { Salts } from "../src/layers/Salts.ts"
import { prepareBatch } from "../src/programs/PrepareBatch.ts"
import { log, requireNode24, round, stamp, writeResult } from "./lib.ts"
import { BENCH_NETWORK_MODES, benchNetworkLayer, HOSTS, makeWorkload } from "./writerWorkload.ts"

requireNode24()

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 100_000)
const BATCH = Number(process.env["BENCH_BATCH"] ?? 500)
const PASSES = Number(process.env["BENCH_PASSES"] ?? 5)
const PROFILE = process.env["BENCH_CPU_PROFILE"] === "1"
/** BENCH_ONLY=prepare skips the decoder-only passes (e.g. for `perf stat` instruction counts) */
const ONLY_PREPARE = process.env["BENCH_ONLY"] === "prepare"

const encodeBind = PgProtocol.makeBindEncoder(PgTypes.writeParameter, PgTypes.isTextFormat)

const tenants = new Map<string, Tenant>(HOSTS.map((host, i) => [host, { domainId: i + 1, corpId: i + 1 }]))
const salt = new Uint8Array(32).fill(7)

/**
 * The ASN tables are read once, before any pass: `NetworkLookup.layer` reads ~32 MB of CSV when
 * built (a start-up cost, bench/network.ts), which would otherwise land in every timed pass.
 */
const networks = new Map<string, Context.Context<NetworkLookup>>()
for (const mode of new Set(BENCH_NETWORK_MODES)) {
  networks.set(mode, await Effect.runPromise(Effect.scoped(Layer.build(benchNetworkLayer(mode)))))
}

const layer = Layer.mergeAll(
  GeoLookup.layer,
  Layer.succeed(
    Salts,
    Salts.of({
      saltFor: () => Effect.succeed(salt),
      saltsFor: (days) => Effect.succeed(new Map([...days].map((day) => [day, salt]))),
      purge: () => Effect.succeed(0)
    })
  ),
  Layer.succeed(
    Domains,
    Domains.of({
      resolve: (host) => (host === null ? null : tenants.get(host) ?? null),
      byId: (id) => [...tenants.values()].find((t) => t.domainId === id) ?? null,
      datacenterTraffic: () => "flag",
      refresh: Effect.void,
      refreshForUnknown: () => Effect.void,
      size: () => tenants.size
    })
  )
)

const cpuMicros = () => {
  const { system, user } = process.cpuUsage()
  return user + system
}

const main = async () => {
  const entries: Array<BatchEntry> = makeWorkload(EVENTS).map((envelope, i) => ({
    id: `${i}-0`,
    payload: JSON.stringify(envelope),
    deliveries: 1
  }))
  const batches: Array<Array<BatchEntry>> = []
  for (let i = 0; i < entries.length; i += BATCH) batches.push(entries.slice(i, i + BATCH))

  const best = { schemaDecode: Infinity, decode: Infinity, prepare: Infinity, bind: Infinity }
  const bestByNetwork: Record<string, number> = {}
  const bindByNetwork: Record<string, number> = {}
  const bindBytes: Record<string, number> = {}
  for (let pass = 1; pass <= PASSES; pass++) {
    let t = cpuMicros()
    if (!ONLY_PREPARE) {
      for (const entry of entries) if (Exit.isFailure(decodeEnvelopeJson(entry.payload))) throw new Error("undecodable")
      best.schemaDecode = Math.min(best.schemaDecode, (cpuMicros() - t) / EVENTS)
      t = cpuMicros()
      for (const entry of entries) if (Exit.isFailure(decodeEnvelope(entry.payload))) throw new Error("undecodable")
      best.decode = Math.min(best.decode, (cpuMicros() - t) / EVENTS)
    }

    const profiling = PROFILE && pass > PASSES - new Set(BENCH_NETWORK_MODES).size
    const session = profiling ? new inspector.Session() : undefined
    if (session !== undefined) {
      session.connect()
      await session.post("Profiler.enable")
      await session.post("Profiler.setSamplingInterval", { interval: 100 })
      await session.post("Profiler.start")
    }
    const mode = BENCH_NETWORK_MODES[(pass - 1) % BENCH_NETWORK_MODES.length]!
    const toBind: Array<Params> = []
    t = cpuMicros()
    await Effect.runPromise(
      Effect.gen(function*() {
        const cache = new WriteCache()
        for (const batch of batches) {
          const prepared = yield* prepareBatch(batch, { streamKey: "bench", maxDeliveries: 5 })
          if (prepared.events.length !== batch.length) throw new Error("poison in the workload")
          const plan = yield* makePlan(prepared, cache)
          // what the sink does after COMMIT when every row was new
          cache.committed(plan!.bySession?.sessions ?? [], plan!.seen)
          cache.committedVisits(plan!.bySession?.visits ?? [])
          for (
            const params of [plan!.bySession?.raw, plan!.bySession?.fingerprints, plan!.bySession?.visitParams, plan!.bySession?.itemParams, plan!.seenParams]
          ) {
            if (params !== undefined && "params" in params) toBind.push(params.params)
          }
          if (prepared.rollups !== undefined) toBind.push(metricParams(prepared.rollups.metrics))
        }
      }).pipe(Effect.provide(layer), Effect.provide(networks.get(mode)!))
    )
    const prepare = (cpuMicros() - t) / EVENTS
    best.prepare = Math.min(best.prepare, prepare)
    bestByNetwork[mode] = Math.min(bestByNetwork[mode] ?? Infinity, prepare)
    // the statements' parameters as the driver puts them on the wire (Bind messages): the binary
    // array encoding happens there, not in makePlan (PgTypes.array only wraps the values)
    t = cpuMicros()
    let bytes = 0
    for (const parameters of toBind) {
      const frame = encodeBind({ portal: "", statement: "s", parameters: parameters as Array<PgTypes.Parameter> })
      if (Result.isFailure(frame)) throw new Error(String(frame.failure))
      bytes += frame.success.length
    }
    const bind = (cpuMicros() - t) / EVENTS
    best.bind = Math.min(best.bind, bind)
    bindByNetwork[mode] = Math.min(bindByNetwork[mode] ?? Infinity, bind)
    bindBytes[mode] = bytes
    if (session !== undefined) {
      const { profile } = await session.post("Profiler.stop")
      log(`cpu profile: ${writeResult(`writer-cpu-${stamp()}-${mode}.cpuprofile`, JSON.stringify(profile))}`)
      session.disconnect()
    }
    log(
      `pass ${pass} (network ${mode}): prepare ${round(prepare, 2)}, bind ${round(bind, 2)} (${round(bytes / EVENTS, 0)} bytes/event); best so far (CPU µs/event) schema decode ${round(best.schemaDecode, 2)}, ` +
        `decode ${round(best.decode, 2)}, prepare ${round(best.prepare, 2)}`
    )
  }
  const byNetwork = BENCH_NETWORK_MODES.length > 1
    ? { prepareByNetwork: bestByNetwork, bindByNetwork, bindBytesPerEvent: Object.fromEntries(Object.entries(bindBytes).map(([k, v]) => [k, round(v / EVENTS, 1)])) }
    : {}
  console.log(JSON.stringify({ events: EVENTS, batch: BATCH, passes: PASSES, cpuMicrosPerEvent: { ...best, ...byNetwork } }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
