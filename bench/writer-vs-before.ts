/**
 * Issue 14's writer target in one command: this tree's writer against the tree before the visits
 * model (12a7dcc), on the same machine, in turn — "within 15 % of today's bench/writer.ts figure,
 * same run".
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/writer-vs-before.ts [--runs 4] [--before 12a7dcc]
 *
 * The before tree is checked out as a detached git worktree in the system's temp dir
 * (`spoolway-before-<rev>`, kept and reused by later runs; `git worktree remove` it when done),
 * its bench given the two changes it needs to run today (below), and installed with `npm ci`.
 * Each run then starts one `bench/writer.ts` process per tree, in turn, with the default
 * workload: this tree's with `BENCH_WARMUP_ROUNDS=1` (its first round, which also compiles the
 * writer's code, left out), the before tree's with `BENCH_ROUNDS=2` (its second round taken, the
 * same rule; that bench has no warm-up knob). Both skip their COPY / unnest references and the
 * wait for a quiet machine (`BENCH_REFERENCES=0`, `BENCH_QUIET_WAIT_S=0`) — take the lock above
 * so that no other bench shares the machine. Each tree writes at its own default read size
 * (before: 500, now: 10,000), as `bench/writer.ts` does in each.
 *
 * Prints and writes to bench/results/writer-vs-before-<stamp>.txt: every round, then per tree the
 * mean and median events/s, the CPU seconds per 100K events (writer process, PostgreSQL), and
 * now against before. Env as bench/writer.ts (BENCH_PG_ADMIN_URL, BENCH_REDIS_URL, BENCH_EVENTS
 * …) is passed to both.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { arg, log, machineInfo, median, REPO_DIR, requireNode24, round, stamp, writeResult } from "./lib.ts"

requireNode24()

const RUNS = Number(arg("runs", "4"))
const BEFORE = arg("before", "12a7dcc")

/**
 * What the before tree's bench needs today, as (find, replace) pairs on its bench/writer.ts:
 * resolve the registered sites before the writer starts (at 12a7dcc the writer learnt of sites
 * added after its start only at its next minute's refresh, so the bench's five new sites'
 * events were stored without one), and let BENCH_QUIET_WAIT_S shorten the wait for a quiet
 * machine. Each must apply exactly once.
 */
const BEFORE_PATCH: ReadonlyArray<readonly [string, string]> = [
  [
    `import { AppConfig } from "../src/layers/AppConfig.ts"\n`,
    `import { AppConfig } from "../src/layers/AppConfig.ts"\nimport { Domains } from "../src/layers/Domains.ts"\n`
  ],
  [
    `        const writer = yield* makeWriter({ maintenance: false })`,
    `        yield* (yield* Domains).refresh\n        const writer = yield* makeWriter({ maintenance: false })`
  ],
  [`waitQuiet("writer bench", 60, 120)`, `waitQuiet("writer bench", 60, Number(process.env["BENCH_QUIET_WAIT_S"] ?? 120))`]
]

const git = (...args: Array<string>) => execFileSync("git", args, { cwd: REPO_DIR, encoding: "utf8" }).trim()

/** The before tree, checked out, patched and installed (reused when an earlier run left it so). */
const prepareBefore = (): string => {
  const rev = git("rev-parse", "--short", `${BEFORE}^{commit}`)
  const dir = join(tmpdir(), `spoolway-before-${rev}`)
  const ready = join(dir, ".bench-ready")
  if (existsSync(ready)) return dir
  if (existsSync(dir)) {
    git("worktree", "remove", "--force", dir)
    rmSync(dir, { recursive: true, force: true })
  }
  git("worktree", "prune")
  log(`checking out ${rev} in ${dir}`)
  git("worktree", "add", "--detach", dir, rev)
  const file = join(dir, "bench", "writer.ts")
  let text = readFileSync(file, "utf8")
  for (const [find, replace] of BEFORE_PATCH) {
    const at = text.indexOf(find)
    if (at === -1 || text.indexOf(find, at + 1) !== -1) throw new Error(`${rev}'s bench/writer.ts: cannot apply the patch at ${JSON.stringify(find)}`)
    text = text.replace(find, replace)
  }
  writeFileSync(file, text)
  log(`npm ci in ${dir}`)
  const ci = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, stdio: "inherit" })
  if (ci.status !== 0) throw new Error(`npm ci failed in ${dir}`)
  writeFileSync(ready, `${rev}\n`)
  return dir
}

interface Round {
  readonly tree: "before" | "now"
  readonly run: number
  readonly eventsPerS: number
  readonly seconds: number
  readonly nodeS: number
  readonly pgS: number
  readonly rows: number
}

const ROUND_LINE = /round (\d+)[^:]*: writer stored (\d+) rows in ([\d.]+) s \(CPU: writer process ([\d.]+) s, PostgreSQL backends ([\d.]+) s/g

/** One bench/writer.ts process in `dir`; its measured round (the last one it printed). */
const runWriter = (tree: "before" | "now", dir: string, run: number, env: Record<string, string>): Round => {
  const resultsDir = join(dir, "bench", "results")
  const before = new Set(existsSync(resultsDir) ? readdirSync(resultsDir) : [])
  const r = spawnSync("npx", ["node", "bench/writer.ts"], {
    cwd: dir,
    encoding: "utf8",
    maxBuffer: 64 << 20,
    env: { ...process.env, BENCH_REFERENCES: "0", BENCH_QUIET_WAIT_S: "0", ...env }
  })
  // the bench's own result file of this run is not kept (this bench writes the comparison)
  for (const f of existsSync(resultsDir) ? readdirSync(resultsDir) : []) {
    if (!before.has(f) && f.startsWith("writer-")) rmSync(join(resultsDir, f))
  }
  const matches = [...`${r.stdout}\n${r.stderr}`.matchAll(ROUND_LINE)]
  const last = matches.at(-1)
  if (r.status !== 0 || last === undefined) throw new Error(`${tree} writer bench failed (exit ${r.status}):\n${r.stderr.slice(-2000)}`)
  const rows = Number(last[2])
  const seconds = Number(last[3])
  return { tree, run, rows, seconds, eventsPerS: rows / seconds, nodeS: Number(last[4]), pgS: Number(last[5]) }
}

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

const main = () => {
  const beforeDir = prepareBefore()
  const rounds: Array<Round> = []
  for (let run = 1; run <= RUNS; run++) {
    for (const tree of ["before", "now"] as const) {
      const round_ = tree === "now"
        ? runWriter(tree, REPO_DIR, run, { BENCH_WARMUP_ROUNDS: "1" })
        : runWriter(tree, beforeDir, run, { BENCH_ROUNDS: "2" })
      rounds.push(round_)
      log(`run ${run}/${RUNS} ${tree}: ${Math.round(round_.eventsPerS)} events/s (CPU: writer ${round_.nodeS} s, PostgreSQL ${round_.pgS} s)`)
    }
  }
  const summary = (tree: "before" | "now") => {
    const rs = rounds.filter((r) => r.tree === tree)
    const per100k = (f: (r: Round) => number) => round(mean(rs.map((r) => (f(r) * 100_000) / r.rows)), 2)
    return { rounds: rs.length, mean: mean(rs.map((r) => r.eventsPerS)), median: median(rs.map((r) => r.eventsPerS)), node: per100k((r) => r.nodeS), pg: per100k((r) => r.pgS) }
  }
  const b = summary("before")
  const n = summary("now")
  const machine = machineInfo()
  const pct = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(round(x * 100, 1))} %`
  const lines = [
    `# Issue 14's writer target: now (${machine.git}) against before the visits model (${BEFORE}), in turn, ${RUNS} run(s)`,
    `# command: flock /tmp/spoolway-bench.lock npx node bench/writer-vs-before.ts --runs ${RUNS} --before ${BEFORE}`,
    `# machine: ${JSON.stringify(machine)}`,
    "",
    ...rounds.map((r) => `run ${r.run} ${r.tree.padEnd(6)} ${Math.round(r.eventsPerS)} events/s  (${r.rows} rows in ${r.seconds} s; CPU writer ${r.nodeS} s, PostgreSQL ${r.pgS} s)`),
    "",
    "| tree | rounds | events/s mean | median | CPU s per 100K: writer + PostgreSQL |",
    "|---|---:|---:|---:|---:|",
    `| before the visits model (${BEFORE}) | ${b.rounds} | ${Math.round(b.mean)} | ${Math.round(b.median)} | ${b.node} + ${b.pg} |`,
    `| now | ${n.rounds} | ${Math.round(n.mean)} | ${Math.round(n.median)} | ${n.node} + ${n.pg} |`,
    "",
    `now against before: ${pct(n.mean / b.mean - 1)} by mean, ${pct(n.median / b.median - 1)} by median (target: within 15 %, ` +
    `${n.mean / b.mean >= 0.85 ? "met" : "missed"} by mean)`
  ]
  const text = lines.join("\n") + "\n"
  process.stdout.write(text)
  log(`written ${writeResult(`writer-vs-before-${stamp()}.txt`, text)}`)
}

main()
