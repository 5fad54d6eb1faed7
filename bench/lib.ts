/**
 * Shared helpers for the benches: free ports, redis-server / collector / wrk child
 * processes that are always stopped (by pid) when the bench ends — normally, on error,
 * or on SIGINT/SIGTERM — plus CPU sampling from /proc and machine facts.
 *
 * Runs on Node 24 with type stripping (no enums, no parameter properties).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { cpus, tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
export const REPO_DIR = resolve(BENCH_DIR, "..")
export const RESULTS_DIR = join(BENCH_DIR, "results")

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const log = (...args: Array<unknown>) => {
  const t = new Date().toISOString().slice(11, 23)
  console.log(`[${t}]`, ...args)
}

// ---------------------------------------------------------------------------
// child-process registry: everything we start is stopped by pid at the end

interface Tracked {
  readonly name: string
  readonly child: ChildProcess
}
const running = new Set<Tracked>()
const tempDirs = new Set<string>()

export const isAlive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

const waitExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolveExit) => {
    if (!isAlive(child)) return resolveExit(true)
    const timer = setTimeout(() => resolveExit(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolveExit(true)
    })
  })

/** Stops one child we started: SIGTERM, then SIGKILL after `graceMs`. */
export const stopChild = async (child: ChildProcess, graceMs = 5000) => {
  expectedExit.add(child)
  if (isAlive(child) && child.pid !== undefined) {
    try {
      process.kill(child.pid, "SIGTERM")
      process.kill(child.pid, "SIGCONT") // in case a bench stopped it (SIGSTOP)
    } catch {}
    if (!(await waitExit(child, graceMs))) {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {}
      await waitExit(child, 2000)
    }
  }
  for (const t of running) if (t.child === child) running.delete(t)
}

export const stopAll = async () => {
  // reverse start order: collectors before the redis servers they use
  const all = [...running].reverse()
  for (const t of all) await stopChild(t.child)
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true })
    } catch {}
  }
  tempDirs.clear()
}

let handlersInstalled = false
const installHandlers = () => {
  if (handlersInstalled) return
  handlersInstalled = true
  // last resort, synchronous: never leave a child behind
  process.on("exit", () => {
    for (const t of running) {
      if (isAlive(t.child) && t.child.pid !== undefined) {
        try {
          process.kill(t.child.pid, "SIGKILL")
        } catch {}
      }
    }
  })
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      log(`received ${sig}: stopping children`)
      stopAll().finally(() => process.exit(130))
    })
  }
}

/** Every exit of a child we started; `expected` = we stopped it (stopChild / killRedis). */
export const exits: Array<{ name: string; pid: number; code: number | null; signal: string | null; at: number; expected: boolean }> = []
const expectedExit = new WeakSet<ChildProcess>()

export const track = (name: string, child: ChildProcess) => {
  installHandlers()
  running.add({ name, child })
  child.on("exit", (code, signal) => {
    exits.push({ name, pid: child.pid ?? -1, code, signal, at: Date.now(), expected: expectedExit.has(child) })
  })
  return child
}

/** Unexpected exits so far, as text (empty when none). */
export const unexpectedExits = () =>
  exits.filter((e) => !e.expected).map((e) => `${e.name} pid ${e.pid} exited at ${new Date(e.at).toISOString()} code=${e.code} signal=${e.signal}`)

/** Runs `main`, always stopping every started child afterwards; exit code 1 on error. */
export const runBench = (main: () => Promise<void>) => {
  installHandlers()
  main().then(
    async () => {
      await stopAll()
      process.exit(0)
    },
    async (err) => {
      console.error("bench failed:", err)
      await stopAll()
      process.exit(1)
    }
  )
}

export const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), `spoolway-bench-${prefix}-`))
  tempDirs.add(d)
  return d
}

// ---------------------------------------------------------------------------
// ports

export const freePort = () =>
  new Promise<number>((resolvePort, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr !== null ? addr.port : 0
      srv.close(() => resolvePort(port))
    })
  })

// ---------------------------------------------------------------------------
// redis-server

export interface RedisServer {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly dir: string
  readonly args: ReadonlyArray<string>
  child: ChildProcess
  /** a client for the bench itself (not the collector's) */
  client: () => Redis
}

export interface RedisOptions {
  readonly name: string
  readonly port?: number
  readonly dir?: string
  /** extra persistence args; default `--save "" --appendonly no` */
  readonly persistence?: ReadonlyArray<string>
}

const waitRedis = async (port: number, child: ChildProcess, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (!isAlive(child)) throw new Error(`redis-server on ${port} exited (${child.exitCode ?? child.signalCode})`)
    const c = new Redis({ host: "127.0.0.1", port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableReadyCheck: false })
    c.on("error", () => {})
    try {
      await c.connect()
      if ((await c.ping()) === "PONG") {
        c.disconnect()
        return
      }
    } catch {}
    c.disconnect()
    await sleep(50)
  }
  throw new Error(`redis-server on ${port} did not answer PING in ${ms} ms`)
}

const spawnRedis = (name: string, port: number, dir: string, persistence: ReadonlyArray<string>) => {
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--save", "",
    ...persistence,
    "--logfile", join(dir, "redis.log"),
    "--daemonize", "no"
  ]
  const child = spawn("redis-server", args, { stdio: "ignore" })
  track(`redis:${name}`, child)
  return { child, args }
}

export const startRedis = async (options: RedisOptions): Promise<RedisServer> => {
  const port = options.port ?? (await freePort())
  const dir = options.dir ?? tempDir(options.name)
  mkdirSync(dir, { recursive: true })
  const persistence = options.persistence ?? ["--appendonly", "no"]
  const { child, args } = spawnRedis(options.name, port, dir, persistence)
  await waitRedis(port, child)
  const clients: Array<Redis> = []
  const server: RedisServer = {
    name: options.name,
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    args,
    child,
    client: () => {
      const c = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) })
      c.on("error", () => {})
      clients.push(c)
      return c
    }
  }
  return server
}

/** SIGKILL (no shutdown, no final AOF flush): the crash case. */
export const killRedis = async (server: RedisServer) => {
  expectedExit.add(server.child)
  if (server.child.pid !== undefined && isAlive(server.child)) process.kill(server.child.pid, "SIGKILL")
  await waitExit(server.child, 5000)
  for (const t of running) if (t.child === server.child) running.delete(t)
}

/** Starts the same server again: same port, same --dir, same persistence args. */
export const restartRedis = async (server: RedisServer, persistence: ReadonlyArray<string>) => {
  const { child } = spawnRedis(server.name, server.port, server.dir, persistence)
  server.child = child
  await waitRedis(server.port, child, 30_000)
}

export const redisVersion = () => {
  try {
    return execFileSync("redis-server", ["--version"], { encoding: "utf8" }).trim()
  } catch {
    return "unknown"
  }
}

// ---------------------------------------------------------------------------
// the collector (Spoolway) and the bare baseline server

export interface HttpServerProc {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
  readonly logFile: string
  /** the collector's stdout+stderr so far */
  readonly output: () => string
}

const spawnLogged = (name: string, cmd: string, args: Array<string>, env: Record<string, string>, logFile: string, cwd = REPO_DIR) => {
  mkdirSync(dirname(logFile), { recursive: true })
  const fd = openSync(logFile, "w")
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  track(name, child)
  return child
}

export const getJson = async (url: string, timeoutMs = 2000): Promise<{ status: number; body: any }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, body }
}

const waitHttp = async (
  proc: { child: ChildProcess; name: string },
  url: string,
  accept: (r: { status: number; body: any }) => boolean,
  ms = 30_000
) => {
  const deadline = Date.now() + ms
  let last = ""
  while (Date.now() < deadline) {
    if (!isAlive(proc.child)) throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode})`)
    try {
      const r = await getJson(url, 1000)
      last = `${r.status} ${JSON.stringify(r.body)}`
      if (accept(r)) return r
    } catch (e) {
      last = String(e)
    }
    await sleep(100)
  }
  throw new Error(`${proc.name} not ready at ${url} within ${ms} ms (last: ${last})`)
}

export interface CollectorOptions {
  readonly name?: string
  readonly primaryUrl: string
  readonly spoolUrl: string
  readonly streamPrefix: string
  readonly probeIntervalMs?: number
  readonly env?: Record<string, string>
  readonly logFile: string
  /** wait until /health says primaryHealthy (default true) */
  readonly waitPrimary?: boolean
  /** run `src/cli.ts` of another checkout (a baseline), default this one */
  readonly cwd?: string
}

/** Extra node flags for the collector, diagnostics only (e.g. "--trace-gc"): BENCH_COLLECTOR_NODE_ARGS. */
export const collectorNodeArgs = (): Array<string> =>
  (process.env.BENCH_COLLECTOR_NODE_ARGS ?? "").split(" ").map((s) => s.trim()).filter((s) => s.length > 0)

export const startCollector = async (options: CollectorOptions): Promise<HttpServerProc> => {
  const name = options.name ?? "collector"
  const port = await freePort()
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: "127.0.0.1",
    PRIMARY_REDIS_URL: options.primaryUrl,
    SPOOL_REDIS_URL: options.spoolUrl,
    STREAM_PREFIX: options.streamPrefix,
    RATE_LIMIT_PER_MINUTE: "0",
    COLLECTOR_WRITE_KEYS: "",
    // a private data dir: `serve` locks its data dir (spoolway.pid), and other sessions run `serve` on ./.data
    SPOOLWAY_DATA_DIR: tempDir(`${name}-data`),
    ...(options.probeIntervalMs !== undefined ? { PROBE_INTERVAL_MS: String(options.probeIntervalMs) } : {}),
    ...options.env
  }
  // process.execPath is the Node 24 of `npx node` (the bench refuses to run on older Node)
  const child = spawnLogged(name, process.execPath, [
    ...collectorNodeArgs(),
    "--experimental-strip-types",
    "--no-warnings=ExperimentalWarning",
    "src/main/cli.ts",
    "serve",
    "--role",
    "collector"
  ], env, options.logFile, options.cwd)
  const url = `http://127.0.0.1:${port}`
  await waitHttp({ child, name }, `${url}/health`, (r) =>
    r.status === 200 && (options.waitPrimary === false || r.body?.primaryHealthy === true))
  return { name, port, url, child, logFile: options.logFile, output: () => readFileSync(options.logFile, "utf8") }
}

/** Throws, with the exit status and the log's tail, when a server we started has died. */
export const assertAlive = (proc: HttpServerProc, when: string) => {
  if (isAlive(proc.child)) return
  const e = exits.find((x) => x.pid === proc.child.pid)
  const tail = proc.output().trim().split("\n").slice(-15).join("\n")
  throw new Error(
    `${proc.name} (pid ${proc.child.pid}) is gone ${when}: exit code=${e?.code ?? proc.child.exitCode} signal=${e?.signal ?? proc.child.signalCode}` +
      ` at ${e ? new Date(e.at).toISOString() : "?"}; last log lines:\n${tail}`
  )
}

export const startBareServer = async (options: { redisUrl: string; streamKey: string; logFile: string }): Promise<HttpServerProc> => {
  const port = await freePort()
  const child = spawnLogged("bare-server", process.execPath, [join(BENCH_DIR, "bare-server.mjs")], {
    PORT: String(port),
    HOST: "127.0.0.1",
    REDIS_URL: options.redisUrl,
    STREAM_KEY: options.streamKey
  }, options.logFile)
  const url = `http://127.0.0.1:${port}`
  await waitHttp({ child, name: "bare-server" }, `${url}/health`, (r) => r.status === 200)
  return { name: "bare-server", port, url, child, logFile: options.logFile, output: () => readFileSync(options.logFile, "utf8") }
}

// ---------------------------------------------------------------------------
// wrk

export interface WrkResult {
  readonly raw: string
  /** parsed from the Lua done() line */
  readonly json: {
    duration_us: number
    requests: number
    bytes: number
    sent: number
    errors: { connect: number; read: number; write: number; status: number; timeout: number }
    latency_us: { min: number; mean: number; stdev: number; max: number; p50: number; p75: number; p90: number; p99: number; p999: number }
    statuses: Record<string, number>
    ids_file?: string
    ids?: number
  }
  readonly reqPerSec: number
  readonly ok2xx: number
  readonly non2xx: number
}

export interface WrkOptions {
  readonly url: string
  readonly connections: number
  readonly threads: number
  readonly durationS: number
  /** "max" = closed loop as fast as possible; "paced" = Lua delay() pacing to `rate` req/s total */
  readonly mode: "max" | "paced"
  readonly rate?: number
  /** file to write "<epoch ms> <eventId>" of every 2xx answer to (Spoolway only) */
  readonly idsFile?: string
  readonly path?: string
  readonly timeoutS?: number
  readonly tag?: string
}

export interface Running<A> {
  readonly child: ChildProcess
  readonly done: Promise<A>
}

export const startWrk = (options: WrkOptions): Running<WrkResult> => {
  const script = join(BENCH_DIR, "wrk", "track.lua")
  const args = [
    "-t", String(options.threads),
    "-c", String(options.connections),
    "-d", `${options.durationS}s`,
    "--timeout", `${options.timeoutS ?? 5}s`,
    "--latency",
    "-s", script,
    options.url
  ]
  const env: Record<string, string> = {
    BENCH_MODE: options.mode,
    BENCH_RATE: String(options.rate ?? 0),
    BENCH_THREADS: String(options.threads),
    BENCH_PATH: options.path ?? "/track/event",
    BENCH_TAG: options.tag ?? "b",
    BENCH_IDS_FILE: options.idsFile ?? ""
  }
  return spawnWrk("wrk", args, env, (json, raw) => {
    let ok2xx = 0
    let non2xx = 0
    for (const [s, n] of Object.entries(json.statuses as Record<string, number>)) {
      if (Number(s) >= 200 && Number(s) < 300) ok2xx += n as number
      else non2xx += n as number
    }
    return { raw, json, reqPerSec: json.requests / (json.duration_us / 1e6), ok2xx, non2xx }
  })
}

/**
 * Runs wrk (`args`, with `env` for its Lua script, a script of bench/wrk that prints one
 * `BENCH_JSON {…}` line from `done()`) as a tracked child; `summarize` turns that JSON and the
 * whole output (prefixed with the command line) into the result.
 */
export const spawnWrk = <A>(
  name: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  summarize: (json: any, raw: string) => A
): Running<A> => {
  const child = spawn("wrk", args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  track(name, child)
  expectedExit.add(child) // wrk ends by itself
  let out = ""
  child.stdout!.on("data", (d) => (out += d))
  child.stderr!.on("data", (d) => (out += d))
  const done = new Promise<A>((resolveDone, reject) => {
    child.on("error", reject)
    child.on("exit", (code) => {
      for (const t of running) if (t.child === child) running.delete(t)
      const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "))
      if (code !== 0 || line === undefined) return reject(new Error(`wrk failed (exit ${code}):\n${out}`))
      const raw = `$ wrk ${args.join(" ")}   # env ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}\n${out}`
      resolveDone(summarize(JSON.parse(line.slice("BENCH_JSON ".length)), raw))
    })
  })
  done.catch(() => {}) // handled where awaited; never an unhandled rejection while the bench sleeps
  return { child, done }
}

export const runWrk = (options: WrkOptions) => startWrk(options).done

// ---------------------------------------------------------------------------
// CPU accounting from /proc (clock ticks → seconds)

const CLK_TCK = 100

const cpuTicks = (pid: number): number | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // fields[11] = utime, fields[12] = stime (1-based 14/15 in proc(5))
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return null
  }
}

/** Busy ticks of the whole machine (all cores): user+nice+system+irq+softirq+steal. */
const systemBusyTicks = (): number | null => {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!
  } catch {
    return null
  }
}

/**
 * Waits until the rest of the machine is quiet (other sessions share it): busy CPU over a
 * 2 s window below `maxBusyPct` (% of one core, summed over cores), for at most `maxWaitS`.
 * Returns the last measured busy % and whether it was quiet.
 */
export const waitQuiet = async (label: string, maxBusyPct = 40, maxWaitS = 240) => {
  const deadline = Date.now() + maxWaitS * 1000
  let busy = 0
  let warned = false
  while (true) {
    const a = systemBusyTicks() ?? 0
    await sleep(2000)
    const b = systemBusyTicks() ?? 0
    busy = round(((b - a) / CLK_TCK / 2) * 100, 0)
    if (busy <= maxBusyPct) return { busyPct: busy, quiet: true }
    if (Date.now() > deadline) {
      log(`${label}: machine still busy (${busy}% of one core used by others) after ${maxWaitS}s — running anyway`)
      return { busyPct: busy, quiet: false }
    }
    if (!warned) {
      log(`${label}: machine busy (${busy}% of one core used by other processes) — waiting up to ${maxWaitS}s for it to calm down`)
      warned = true
    }
  }
}

/** Samples the CPU time of some pids every 250 ms; `stop()` returns cpu-seconds used per name. */
export const cpuSampler = (pids: Record<string, number | undefined>) => {
  const first: Record<string, number> = {}
  const last: Record<string, number> = {}
  const sample = () => {
    const sys = systemBusyTicks()
    if (sys !== null) {
      if (first["__all"] === undefined) first["__all"] = sys
      last["__all"] = sys
    }
    for (const [name, pid] of Object.entries(pids)) {
      if (pid === undefined) continue
      const t = cpuTicks(pid)
      if (t === null) continue
      if (first[name] === undefined) first[name] = t
      last[name] = t
    }
  }
  sample()
  const start = Date.now()
  const timer = setInterval(sample, 250)
  return {
    add: (name: string, pid: number | undefined) => {
      pids[name] = pid
      sample()
    },
    stop: () => {
      sample()
      clearInterval(timer)
      const wall = (Date.now() - start) / 1000
      const used: Record<string, { cpuS: number; pctOfOneCore: number }> = {}
      for (const name of Object.keys(last)) {
        const cpuS = (last[name]! - first[name]!) / CLK_TCK
        used[name] = { cpuS: round(cpuS, 2), pctOfOneCore: round((cpuS / wall) * 100, 0) }
      }
      // everything else on the machine (other sessions, the bench process itself, kernel)
      if (used["__all"] !== undefined) {
        let ours = 0
        for (const [name, u] of Object.entries(used)) if (name !== "__all") ours += u.cpuS
        const other = Math.max(0, used["__all"].cpuS - ours)
        used["__other"] = { cpuS: round(other, 2), pctOfOneCore: round((other / wall) * 100, 0) }
      }
      return { wallS: round(wall, 1), used }
    }
  }
}

// ---------------------------------------------------------------------------
// facts and output

export const round = (x: number, digits = 1) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export const ms = (us: number) => round(us / 1000, 2)

/** The value after `--<name>` on the command line, or `fallback`. */
export const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

/** The median (the mean of the middle two for an even count; NaN for none). */
export const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

export const machineInfo = () => {
  let model = "unknown"
  try {
    model = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("model name"))?.split(":")[1]?.trim() ?? model
  } catch {}
  let wrkVersion = "unknown"
  try {
    wrkVersion = execFileSync("wrk", ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim()
  } catch (e: any) {
    wrkVersion = String(e.stdout ?? "").split("\n")[0]!.trim() || wrkVersion
  }
  let git = "unknown"
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_DIR, encoding: "utf8" }).trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: REPO_DIR, encoding: "utf8" }).split("\n").filter(Boolean).length
    git = `${head}${dirty ? ` + ${dirty} uncommitted change(s) under src/` : ""}`
  } catch {}
  return {
    git,
    nproc: cpus().length,
    cpuModel: model,
    node: process.version,
    redis: redisVersion(),
    wrk: wrkVersion,
    kernel: readFileSync("/proc/version", "utf8").split(" ").slice(0, 3).join(" ")
  }
}

export const requireNode24 = () => {
  const major = Number(process.versions.node.split(".")[0])
  if (major < 24) {
    console.error(`Node ${process.version}: run with the project's Node 24 (npx node …)`)
    process.exit(2)
  }
}

export const stamp = () => new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)

export const writeResult = (name: string, text: string) => {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, name)
  writeFileSync(file, text)
  return file
}

export const fileExists = existsSync

/** Reads a whole stream in chunks, calling `onEntry` with each envelope's eventId. */
export const scanStream = async (client: Redis, key: string, onEntry: (eventId: string, payload: string) => void) => {
  let start = "-"
  let n = 0
  while (true) {
    const rows = await client.xrange(key, start, "+", "COUNT", 10_000)
    if (rows.length === 0) break
    for (const [, fields] of rows) {
      const i = fields.indexOf("e")
      const payload = i >= 0 ? fields[i + 1] ?? "" : ""
      let id = ""
      try {
        id = JSON.parse(payload).eventId
      } catch {}
      onEntry(id, payload)
      n++
    }
    start = "(" + rows[rows.length - 1]![0]
  }
  return n
}
