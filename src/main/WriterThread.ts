/**
 * `serve --role all` runs the writer in a worker thread of the same process (WriterWorker.ts).
 *
 * Why: one JavaScript thread serving HTTP, forwarding the spool, decoding, enriching and
 * writing saturates at about one core while the machine has more (PostgreSQL and Redis use a
 * fraction of the second one) — the end-to-end benchmark fell behind with the process at 95 % of
 * one core. In its own thread the writer's CPU work no longer competes with the collector's event
 * loop (request latency) and the two use two cores.
 *
 * What stays the same: it is still one process (one pid, one data dir lock, embedded servers
 * owned by the main thread and stopped last); the `Writer` service has the same interface — its
 * options and counters arrive from the thread (within 100 ms) and feed `/health` and the
 * `spoolway_written/duplicate/poison` counters of this process's `/metrics`. Shutdown: the main
 * thread asks the thread to stop; the writer commits and acknowledges its batch and leaves the
 * group, then the thread exits (after 30 s it is terminated; entries it held stay pending and
 * are reclaimed by the next writer). A thread that dies unexpectedly is restarted after a second,
 * under the same consumer name. What the dead thread held (read, not committed) is released as a
 * graceful stop would (marked long idle), so the new thread's first XAUTOCLAIM takes it over at
 * once; the group keeps no dead consumer.
 * `WRITER_THREAD=false` keeps the writer on the main thread.
 */
import { Worker } from "node:worker_threads"
import { Cause, Deferred, Effect, Fiber, Layer, Metric, Ref } from "effect"
import { primaryStreamKey, writerGroup } from "../domain/Streams.ts"
import { AppConfig } from "../layers/AppConfig.ts"
import { startConfiguredPostgres } from "../layers/EmbeddedPostgres.ts"
import { EmbeddedServerError } from "../layers/EmbeddedServerError.ts"
import * as Metrics from "../layers/Metrics.ts"
import { PrimaryRedis } from "../layers/PrimaryRedis.ts"
import * as Stream from "../layers/StreamConsumer.ts"
import { Writer } from "../programs/Writer.ts"
import { defaultConsumerName, type WriterOptions, type WriterSnapshot } from "../programs/WriterOptions.ts"
import type { FromWriterThread, ToWriterThread, WriterThreadInput } from "./WriterThreadProtocol.ts"

const WORKER_URL = new URL("./WriterWorker.ts", import.meta.url)
const STOP_TIMEOUT_MS = 30_000
const RESTART_DELAY = "1 second"

interface Running {
  readonly worker: Worker
  /** the thread's exit code, once it exited */
  readonly exited: Deferred.Deferred<number>
}

export interface WriterThreadOptions {
  /** the thread's entry module (default WriterWorker.ts; tests wrap it to inject a crash) */
  readonly entry?: URL
}

/** The `Writer` service backed by a worker thread; requires AppConfig and PrimaryRedis. */
export const layerWith = (threadOptions: WriterThreadOptions = {}) => Layer.effect(
  Writer,
  Effect.gen(function*() {
    const entry = threadOptions.entry ?? WORKER_URL
    const config = yield* AppConfig
    const primary = yield* PrimaryRedis
    const databaseUrl = config.databaseUrl ??
      (yield* startConfiguredPostgres(config)).url
    const input: WriterThreadInput = {
      config: { ...config, primaryRedisUrl: primary.url, databaseUrl },
      consumer: defaultConsumerName()
    }

    const latest = yield* Ref.make<WriterSnapshot | undefined>(undefined)
    /** counters of the current thread already added to this process's metrics (reset by `start`) */
    let counted = { written: 0, duplicates: 0, poison: 0 }
    const absorb = (snapshot: WriterSnapshot) =>
      Effect.gen(function*() {
        yield* Metric.update(Metrics.written, snapshot.written - counted.written)
        yield* Metric.update(Metrics.duplicates, snapshot.duplicates - counted.duplicates)
        yield* Metric.update(Metrics.poison, snapshot.poison - counted.poison)
        counted = { written: snapshot.written, duplicates: snapshot.duplicates, poison: snapshot.poison }
        yield* Ref.set(latest, snapshot)
      })

    const services = yield* Effect.context<never>()
    const runFork = <A, E>(effect: Effect.Effect<A, E>) => Effect.runForkWith(services)(effect)

    /** Starts a thread; resolves once its writer is running (or fails with why it is not). */
    const start = Effect.gen(function*() {
      counted = { written: 0, duplicates: 0, poison: 0 }
      const ready = yield* Deferred.make<WriterOptions, EmbeddedServerError>()
      const exited = yield* Deferred.make<number>()
      const worker = new Worker(entry, { workerData: input, name: "spoolway-writer" })
      worker.on("message", (message: FromWriterThread) => {
        switch (message.type) {
          case "ready":
            runFork(absorb(message.snapshot).pipe(Effect.andThen(Deferred.succeed(ready, message.options))))
            break
          case "snapshot":
            runFork(absorb(message.snapshot))
            break
          case "failed":
            runFork(Deferred.fail(ready, new EmbeddedServerError({ server: "writer thread", message: message.message })))
            break
        }
      })
      worker.on("error", (error) => {
        runFork(
          Effect.logError("writer thread: uncaught error", Cause.die(error)).pipe(
            Effect.andThen(Deferred.fail(ready, new EmbeddedServerError({ server: "writer thread", message: String(error) })))
          )
        )
      })
      worker.on("exit", (code) => {
        runFork(
          Deferred.succeed(exited, code).pipe(
            Effect.andThen(Deferred.fail(ready, new EmbeddedServerError({ server: "writer thread", message: `exited with code ${code} before it was ready` })))
          )
        )
      })
      const options = yield* Deferred.await(ready)
      return { running: { worker, exited } satisfies Running, options }
    })

    /**
     * What a dead thread held (read, not committed) is marked long idle, as a graceful stop
     * would have done: its successor's first XAUTOCLAIM takes it over at once instead of after
     * WRITER_CLAIM_IDLE_MS. (The thread is gone: nothing else works on these entries.)
     */
    const releasePending = Stream.leaveGroup({
      key: primaryStreamKey(config.streamPrefix),
      group: writerGroup(config.streamPrefix),
      consumer: input.consumer,
      client: primary.client,
      blocking: primary.client
    }).pipe(
      Effect.tap((released) => released > 0 ? Effect.logInfo(`writer thread: released ${released} pending entr${released === 1 ? "y" : "ies"} for its successor`) : Effect.void),
      Effect.catch((error) => Effect.logWarning(`writer thread: could not release its pending entries (${error.message}); they are reclaimed once idle`))
    )

    const first = yield* start
    let current: Running = first.running
    let stopping = false

    // supervisor: a thread that exits while we are not stopping is restarted
    const supervise: Effect.Effect<never> = Effect.gen(function*() {
      const code = yield* Deferred.await(current.exited)
      if (stopping) return yield* Effect.never
      yield* Effect.logError(`writer thread exited unexpectedly (code ${code}); restarting in ${RESTART_DELAY}`)
      yield* releasePending
      yield* Effect.sleep(RESTART_DELAY)
      const next = yield* start.pipe(
        Effect.catch((error) => Effect.as(Effect.logError(`writer thread failed to restart: ${error.message}`), undefined))
      )
      if (next !== undefined) current = next.running
    }).pipe(Effect.forever)
    const supervisor = yield* Effect.forkDetach(supervise)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        stopping = true
        yield* Fiber.interrupt(supervisor)
        const { worker, exited } = current
        worker.postMessage({ type: "stop" } satisfies ToWriterThread)
        const code = yield* Deferred.await(exited).pipe(Effect.timeoutOrElse({
          duration: STOP_TIMEOUT_MS,
          orElse: () =>
            Effect.logWarning(`writer thread did not stop within ${STOP_TIMEOUT_MS} ms; terminating it`).pipe(
              Effect.andThen(Effect.promise(() => worker.terminate()))
            )
        }))
        if (code !== 0) yield* Effect.logWarning(`writer thread exited with code ${code}`)
      })
    )

    yield* Effect.logInfo(`writer running in a worker thread (consumer ${first.options.consumer})`)
    return Writer.of({
      consumer: first.options.consumer,
      options: first.options,
      snapshot: Effect.flatMap(Ref.get(latest), (snapshot) =>
        snapshot === undefined ? Effect.die(new Error("writer thread reported no counters")) : Effect.succeed(snapshot))
    })
  })
)

export const layer = layerWith()
