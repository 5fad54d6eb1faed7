/** Runs the real `spoolway` CLI as a child process (same Node as the tests), stopped by pid. */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { freePort } from "./redisProcess.ts"

const CLI = resolve(import.meta.dirname, "../../src/main/cli.ts")

/**
 * The data dir of this test file's processes unless a test gives its own: not the checkout's
 * `.data`, where a `serve` of another test file (or of a developer) would be found by `status`
 * (`serve.json`) or hold the lock.
 */
export const DATA_DIR = mkdtempSync(join(tmpdir(), "spoolway-test-data-"))
process.on("exit", () => rmSync(DATA_DIR, { recursive: true, force: true }))
const NODE_ARGS = ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", CLI]

export interface Daemon {
  readonly baseUrl: string
  readonly port: number
  readonly child: ChildProcess
  readonly output: () => string
  /** resolves with the exit code once the process ended */
  readonly exited: Promise<number | null>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export const startDaemon = async (args: ReadonlyArray<string>, env: Record<string, string>, port?: number): Promise<Daemon> => {
  const p = port ?? (await freePort())
  let out = ""
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], {
    env: { ...process.env, LOG_LEVEL: "info", SPOOLWAY_DATA_DIR: DATA_DIR, ...env, PORT: String(p), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout!.on("data", (d) => (out += d))
  child.stderr!.on("data", (d) => (out += d))
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
  const baseUrl = `http://127.0.0.1:${p}`
  // generous: a writer thread loads its data sets (geo, network) at start, slow on a busy machine
  const deadline = Date.now() + 60_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`daemon exited early (${child.exitCode}):\n${out}`)
    try {
      const res = await fetch(`${baseUrl}/health/ready`)
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`daemon did not become ready:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    baseUrl,
    port: p,
    child,
    output: () => out,
    exited,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
  }
}

/** Runs one CLI command to completion; returns its exit code and output. */
export const runCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; out: string }>((resolvePromise) => {
    let out = ""
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", SPOOLWAY_DATA_DIR: DATA_DIR, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    child.once("exit", (code) => resolvePromise({ code, out }))
  })
