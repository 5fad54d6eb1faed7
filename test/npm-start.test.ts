/**
 * The README's first command runs as operators run it: `npm start`, zero configuration
 * (embedded Redis ×2 and PostgreSQL in a data dir of its own), and SIGTERM sent to the `npm`
 * process — what a supervisor does that knows only the pid it started. npm passes the signal on
 * to its child; the script `exec`s node, so that child is Spoolway itself (behind `sh -c` the
 * shell died and left Spoolway and its embedded servers running, orphaned).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { assert, it } from "@effect/vitest"
import { isAlive } from "../src/layers/Pids.ts"
import { freePort } from "./support/redisProcess.ts"

const ROOT = resolve(import.meta.dirname, "..")

const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, output: () => string) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${output().slice(-3000)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const childrenOf = (pid: number): Array<number> => {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" }).split("\n").map(Number).filter((n) => n > 0)
  } catch {
    return [] // ps exits 1 when there are none
  }
}
const descendantsOf = (pid: number): Array<number> => childrenOf(pid).flatMap((child) => [child, ...descendantsOf(child)])

/**
 * `npm start` on embedded defaults in a data dir of its own, ready, with one view accepted;
 * then `stop` signals it, and npm, Spoolway and every embedded server must end. Nothing
 * outlives `run`, whatever fails.
 */
const run = async (options: { readonly detached: boolean }, stop: (npm: ChildProcess) => void) => {
  const dataDir = mkdtempSync(join(tmpdir(), "spoolway-npm-start-"))
  const port = await freePort()
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    SPOOLWAY_DATA_DIR: dataDir,
    LOG_LEVEL: "info"
  }
  for (const name of ["DATABASE_URL", "PRIMARY_REDIS_URL", "SPOOL_REDIS_URL", "WRITER_THREAD"]) delete env[name]
  let out = ""
  const npm = spawn("npm", ["start"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: options.detached })
  npm.stdout!.on("data", (d) => (out += d))
  npm.stderr!.on("data", (d) => (out += d))
  const pids: Array<number> = []
  const output = () => out
  try {
    const base = `http://127.0.0.1:${port}`
    await waitFor("/health/ready", async () => {
      if (npm.exitCode !== null) throw new Error(`npm start exited early (${npm.exitCode}):\n${out}`)
      return fetch(`${base}/health/ready`).then((r) => r.status === 200, () => false)
    }, 90_000, output)

    // everything npm started is stopped at the end, whatever fails before
    pids.push(...descendantsOf(npm.pid!))
    // what is running: Spoolway (npm's only child), two redis-servers, the postmaster
    const spoolway = childrenOf(npm.pid!)
    assert.strictEqual(spoolway.length, 1, `npm's children: ${spoolway.join(", ")}`)
    const command = readFileSync(`/proc/${spoolway[0]}/cmdline`, "utf8").split("\0")
    assert.include(command, "serve", `npm's child is ${command.join(" ")}`)
    const redisPids = [...out.matchAll(/embedded redis-server '[^']+' on \S+ \(pid (\d+)/g)].map((m) => Number(m[1]))
    assert.strictEqual(redisPids.length, 2)
    const postmasterPid = Number(readFileSync(join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0])
    pids.push(...redisPids, postmasterPid)
    for (const pid of pids) assert.isTrue(isAlive(pid), `pid ${pid} alive`)

    const view = await fetch(`${base}/track/view`, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0" },
      body: JSON.stringify({ sessionId: "npm-start", pageUrl: "https://a.example/" })
    })
    assert.strictEqual(view.status, 202)

    stop(npm)
    await waitFor("npm start to end", () => npm.exitCode !== null || npm.signalCode !== null, 30_000, output)
    await waitFor("Spoolway and its embedded servers to stop", () => pids.every((pid) => !isAlive(pid)), 30_000, () =>
      `${out}\nstill alive: ${pids.filter(isAlive).join(", ")}`)
    assert.isFalse(existsSync(join(dataDir, "pg", "postmaster.pid")), "PostgreSQL was shut down cleanly")
  } finally {
    // nothing may outlive the test, whatever failed
    if (npm.exitCode === null) npm.kill("SIGKILL")
    for (const pid of pids) {
      if (isAlive(pid)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // gone meanwhile
        }
      }
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
}

it("npm start on embedded defaults serves, and SIGTERM to npm stops Spoolway and every embedded server", async () => {
  await run({ detached: false }, (npm) => npm.kill("SIGTERM"))
}, 150_000)

// Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the embedded
// PostgreSQL gets it too and is gone before Spoolway's own shutdown reaches it. Spoolway then
// waited for an exit that had already happened, and `npm start` never ended.
it("Ctrl-C (SIGINT to npm's whole process group, PostgreSQL included) stops Spoolway and every embedded server", async () => {
  await run({ detached: true }, (npm) => process.kill(-npm.pid!, "SIGINT"))
}, 150_000)
