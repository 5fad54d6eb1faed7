/**
 * The short variant of the chaos suite (issue 7; the full one is `npm run chaos`): a real
 * pipeline of processes this test owns — primary and spool redis-server, a PostgreSQL cluster,
 * a collector, two writers — under a steady mixed load (~400 requests/s) while a writer is
 * SIGKILLed mid-batch twice, the primary redis-server is SIGKILLed and restarted, PostgreSQL
 * crashes (immediate shutdown) and restarts, and the spool fills to its bound. Then the same
 * reconciliation as the full run: every 2xx stored exactly once, nothing rejected stored,
 * rollups equal the stored rows, no 5xx other than 503 + Retry-After, no process crashed.
 *
 * Assertions are on counts, not timings. Every process is stopped by pid (chaos/procs.ts).
 * Duration: ~35 s when the writers honour WRITER_CLAIM_IDLE_MS; with the built-in 30 s claim
 * idle time the final drain waits for it (~60–70 s on a loaded 2-core machine).
 */
import { describe, expect, it } from "vitest"
import { QUICK, runChaos } from "../chaos/chaos.ts"

describe("chaos (short variant)", () => {
  it("no loss, no duplicate, no 5xx but 503 + Retry-After, rollups = rows — through writer kills, a primary kill, a PostgreSQL crash and a full spool", async () => {
    const lines: Array<string> = []
    const result = await runChaos({
      ...QUICK,
      name: "test",
      rate: 400,
      concurrency: 16,
      warmupMs: 2_000,
      cooldownMs: 1_000,
      order: ["writer-kill", "primary-kill", "pg-restart", "spool-full"],
      primaryDownMs: 2_000,
      writerKills: 2,
      writerKillGapMs: 1_000,
      pgRestarts: ["immediate"],
      pgDownMs: 1_500,
      pgRunMs: 2_000,
      spoolMax: 1_500,
      spoolFullHoldMs: 1_000,
      writers: 2,
      drainTimeoutMs: 80_000,
      claimIdleMs: 8_000,
      claimEveryMs: 1_000,
      seed: 20261129,
      keep: false,
      log: (line) => lines.push(line)
    })
    const report = `${lines.join("\n")}\n\n${result.table}\n${result.failures.join("\n")}`
    expect(result.failures, report).toEqual([])
    const r = result.reconciliation!
    expect(r.total.lost, report).toBe(0)
    expect(r.total.duplicated, report).toBe(0)
    expect(r.total.storedRejected, report).toBe(0)
    expect(r.total.bad5xx, report).toBe(0)
    expect(r.rollupMismatches, report).toEqual([])
    // the scenarios really happened
    expect(r.total.ok2xx, report).toBeGreaterThan(1_000)
    expect(r.rows.find((row) => row.phase.startsWith("4 "))!.c503, report).toBeGreaterThan(0)
    expect(lines.filter((l) => l.includes("SIGKILL writer-")).length, report).toBe(2)
  }, 150_000)
})
