/**
 * `spoolway network info` and `spoolway network lookup <ip>` as an operator runs them (the CLI on
 * this Node, reading NETWORK_DATA_DIR / TOR_EXIT_LIST from the environment). Most calls run the
 * CLI's program in this process (test/support/cliInProcess.ts); one spawns the real binary.
 */
import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { promisify } from "node:util"
import { assert, it } from "@effect/vitest"
import { runCliInProcess } from "./support/cliInProcess.ts"

const ROOT = resolve(import.meta.dirname, "..")

/** the real binary as a child process: its stdout; a non-zero exit fails */
const spoolwayBinary = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "src/main/cli.ts", ...args],
    { cwd: ROOT, env: { ...process.env, LOG_LEVEL: "warn", ...env }, encoding: "utf8" }
  )
  return stdout
}

/** the same command in this process: its stdout; a non-zero exit fails */
const spoolway = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const { code, out, stdout } = await runCliInProcess(args, env)
  assert.strictEqual(code, 0, out)
  return stdout
}

it("network info: data set version and date, range counts, memory, load time, org-type counts", async () => {
  const report = JSON.parse(await spoolway(["network", "info", "--json"]))
  assert.strictEqual(report.source, "@ip-location-db/asn")
  assert.match(report.version, /^2\.3\.\d{10}$/)
  assert.match(report.date, /^\d{4}-\d{2}-\d{2}T\d{2}:00:00Z$/)
  assert.isAbove(report.ipv4Ranges, 300_000)
  assert.isAbove(report.ipv6Ranges, 50_000)
  assert.isAbove(report.tableBytes, 5_000_000)
  assert.isAbove(report.loadMs, 0)
  assert.isNumber(report.memory.rssBytes)
  assert.isNull(report.torExitList)
  const total = Object.values(report.orgTypes as Record<string, number>).reduce((a, b) => a + b, 0)
  assert.strictEqual(total, report.autonomousSystems)
  assert.isAbove(report.orgTypes.hosting, 100)

  const text = await spoolway(["network", "info"])
  assert.include(text, `${report.version} (built ${report.date})`)
  assert.include(text, "CC BY 4.0")
  assert.include(text, "IPv4 +")
}, 60_000)

it("network lookup: the fields and the deciding rule; TOR_EXIT_LIST is honoured", async () => {
  const dir = await mkdtemp(join(tmpdir(), "spoolway-network-cli-"))
  try {
    const plain = JSON.parse(await spoolwayBinary(["network", "lookup", "8.8.8.8", "--json"]))
    assert.deepInclude(plain.network, { asn: 15169, org: "Google LLC", orgType: "hosting", isTor: null, responseTier: "flag" })
    assert.deepInclude(plain.rule, { kind: "asn", orgType: "hosting" })

    await writeFile(join(dir, "tor.txt"), "8.8.8.8\n")
    const tor = JSON.parse(await spoolway(["network", "lookup", "8.8.8.8", "--json"], { TOR_EXIT_LIST: join(dir, "tor.txt") }))
    assert.deepInclude(tor.network, { isTor: true, proxyType: "tor" })

    const text = await spoolway(["network", "lookup", "10.0.0.1"])
    assert.include(text, "asn null")
    assert.include(text, "no AS data")
  } finally {
    await rm(dir, { recursive: true })
  }
}, 60_000)
