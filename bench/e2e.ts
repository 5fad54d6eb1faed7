/**
 * Issue 7 — end-to-end benchmark: HTTP → PostgreSQL with collector and writer in ONE process
 * (`spoolway serve --role all`), against the seed's design (bench/seed-baseline.ts: one BullMQ
 * job per event, one INSERT per row, aggregation as a separate repeatable job) on the same
 * machine, in the same run, with the same load (bench/wrk/e2e.lua) and the same measurements.
 * The harness and the phases (A collector, B writer, C end to end max, D end to end paced at
 * the target, E capacity ladder) are described in bench/e2e-lib.ts.
 *
 *   npx node bench/e2e.ts                 # both systems (Spoolway first), ratios per stage
 *   npx node bench/e2e.ts spoolway        # one system only (also: seed)
 *   BENCH_QUICK=1 npx node bench/e2e.ts   # short phases (smoke test)
 *
 * Needs: redis-server and wrk on PATH, PostgreSQL on 127.0.0.1:5432 reachable as
 * BENCH_PG_ADMIN_URL (postgres://root@127.0.0.1:5432/postgres; a database per phase is created
 * and dropped). Results: bench/results/e2e-<stamp>.{txt,json} plus the servers' logs.
 *
 * Env knobs (full / quick defaults): BENCH_E2E_COLLECTOR_S (20/5), BENCH_E2E_DURATION_S (60/10),
 * BENCH_E2E_PACED_S (60/8), BENCH_E2E_LADDER_S (30/5), BENCH_E2E_LADDER_STEPS (5/2), BENCH_E2E_TARGET_EPS (10000), BENCH_E2E_DRAIN_MAX_S (300/30),
 * BENCH_E2E_WRITER_MAX_S (180/30), BENCH_E2E_WARMUP_S (5/2), BENCH_E2E_CONNECTIONS (50),
 * BENCH_E2E_WRK_THREADS (1), BENCH_E2E_PROFILES (mixed,browser / mixed), BENCH_E2E_PHASES
 * (A,B,C,D,E / A,B,C,D), BENCH_E2E_COUNT_EVERY_S (0 = boundaries only), BENCH_SEED_CONCURRENCY (32), BENCH_QUIET_WAIT_S (120/20),
 * BENCH_QUIET_MAX_BUSY_PCT (40/60), BENCH_RESULT_JSON (also write the JSON there).
 */
import { requireNode24 } from "./lib.ts"
import { runE2EMain, type SystemName } from "./e2e-lib.ts"

requireNode24()

const which = process.argv[2] ?? "both"
const systems: Array<SystemName> = which === "spoolway" ? ["spoolway"] : which === "seed" ? ["seed"] : ["spoolway", "seed"]
runE2EMain(systems)
