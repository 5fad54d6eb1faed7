/**
 * Dashboard render times (issue 17): each page's first render (all its queries) and switching
 * range or filter, in headless Chromium against `serve --role api` on the query benchmark's data
 * set (bench/dataset.ts, default 10M events over 90 days).
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/dashboard.ts [--database spoolway_bench_query] [--site shop.example.com] [--runs 5] [--no-vacuum]
 *
 * The source database is not touched: it is copied (`CREATE DATABASE … TEMPLATE`), the copy gets a
 * fresh server key for the site (`sites keys rotate --server`, published under a prefix of its
 * own on BENCH_REDIS_URL), gets the migrations it lacks (`serve` runs them), its visits are
 * vacuumed and every table analyzed (as autovacuum leaves a running install; a data set fresh
 * from the writer has no statistics and no visibility map — `--no-vacuum` skips this), and it
 * is dropped at the end.
 * Measured per page, cold (a new browser context: nothing cached) and warm (the same context,
 * the page again): from navigation start to the moment every query of the page answered and is
 * drawn (`main[data-state=ready]`, checked on every animation frame); the medians of `--runs` runs. Then, on the Overview and the
 * Pages page: switching the range (30d → 7d) and filtering by the first and the fifth page of the
 * table, each then followed to the Events and Network pages (the top page's also to the Overview,
 * Traffic and Audience);
 * on the Traffic page, filtering by the first source. For each switch its query API requests
 * ("start-end" in ms after the action, `switchQueries` in the raw figures): tables that end
 * together were answered by one shared statement; one that starts late waited for a connection.
 * Baseline, same run: each page's own queries (captured from its load) sent again from Node, all
 * at once — what the query API alone takes; the rest is the browser (load, modules, drawing).
 * Figures go to bench/results/dashboard-<stamp>.txt and to stdout.
 */
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { Redis } from "ioredis"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { sitesKey, sitesVersionKey } from "../src/domain/Streams.ts"
import * as Sql from "../src/layers/Sql.ts"
import { arg, freePort, log, machineInfo, median, REPO_DIR, requireNode24, round, runBench, stamp, stopChild, tempDir, track, writeResult } from "./lib.ts"

requireNode24()

const SOURCE = arg("database", "spoolway_bench_query")
const SITE = arg("site", "shop.example.com")
const RUNS = Number(arg("runs", "5"))
/** --no-vacuum: measure the copy as the data set left it (no VACUUM / ANALYZE first) */
const VACUUM = !process.argv.includes("--no-vacuum")
const ADMIN_URL = process.env["BENCH_PG_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const REDIS_URL = process.env["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const PAGES = ["overview", "pages", "events", "traffic", "audience", "network"] as const

const CLI = join(REPO_DIR, "src/main/cli.ts")
const NODE_ARGS = ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", CLI]

const dbUrl = (name: string) => {
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  return url.toString()
}

const psql = (url: string, sql: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn("psql", ["-qAt", url, "-c", sql], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    child.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`psql: ${out}`))))
  })

const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], { env: { ...process.env, LOG_LEVEL: "warn", ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`spoolway ${args.join(" ")}: ${out}`))))
  })

/**
 * Runs on `url` the migrations of this checkout that its database lacks below its latest one (a
 * data set made while a lower-numbered migration was not merged yet; the migrator only runs ids
 * above the latest applied). Only ever on the bench's own copy. Returns the ids it ran.
 */
const applyMissingMigrations = (url: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const done = new Set((yield* sql<{ readonly id: number }>`SELECT migration_id AS id FROM ${sql(Sql.MIGRATIONS_TABLE)}`).map((r) => Number(r.id)))
      const ran: Array<string> = []
      for (const [key, migration] of Object.entries(Sql.migrations)) {
        const id = Number(key.slice(0, 4))
        if (done.has(id)) continue
        yield* sql.withTransaction(Effect.andThen(migration, sql`INSERT INTO ${sql(Sql.MIGRATIONS_TABLE)} (migration_id, name) VALUES (${id}, ${key.slice(5)})`))
        ran.push(key)
      }
      return ran
    }).pipe(Effect.provide(Sql.layerUrlNoMigrations(url, { maxConnections: 1 })))
  )

/** wall-clock time (epoch ms) of the last timed action's start, to place the page's own clock */
let actionStartedAt = 0

/** ms from `action` until the page drew everything it asked for */
const timed = async (page: Page, action: () => Promise<unknown>) => {
  await page.evaluate(() => {
    const main = (globalThis as any).document.getElementById("main")
    if (main) main.dataset.state = "stale"
    // the action's requests only (the buffer keeps 250 entries; a page's switches would fill it)
    ;(globalThis as any).performance.clearResourceTimings()
    // the time of the action's event in the page (a click, a select's change), once per document
    const g = globalThis as any
    g.__benchActionAt = undefined
    if (!g.__benchListening) {
      g.__benchListening = true
      const at = (event: any) => {
        if (g.__benchActionAt === undefined) g.__benchActionAt = event.timeStamp
      }
      g.document.addEventListener("click", at, true)
      g.document.addEventListener("change", at, true)
    }
  })
  actionStartedAt = Date.now()
  const t0 = performance.now()
  await action()
  // checked on every animation frame: waitForSelector polls less often the longer it waits (up
  // to every 500 ms), which added up to half a second to a slow page's figure
  await page.waitForFunction(() => (globalThis as any).document.getElementById("main")?.dataset.state === "ready", undefined, {
    polling: "raf",
    timeout: 60_000
  })
  const ms = performance.now() - t0
  lastFromEvent = await page.evaluate(() => {
    const g = globalThis as any
    const readyAt = Number(g.document.getElementById("main")?.dataset.readyAt ?? NaN)
    return g.__benchActionAt === undefined ? NaN : readyAt - g.__benchActionAt
  })
  lastQueries = await page.evaluate((startedAt) => {
    const perf = (globalThis as any).performance
    const origin = perf.timeOrigin as number
    return perf.getEntriesByType("resource").filter((e: any) => e.name.includes("/api/v1/") && origin + e.startTime >= startedAt)
      .map((e: any) => `${Math.round(origin + e.startTime - startedAt)}-${Math.round(origin + e.responseEnd - startedAt)}`).join(" ")
  }, actionStartedAt)
  return ms
}

/** The query API requests of the last {@link timed} action: "start-end" each, ms after the action started. */
let lastQueries = ""
/**
 * The last {@link timed} action as the page saw it: from its event (the click, the select's
 * change) to the page marking itself ready, in the page's clock — without the automation's own
 * steps before the event (finding the element, scrolling it into view, waiting until it is stable).
 */
let lastFromEvent = NaN

const main = async () => {
  // the tree as it is when the run starts (the server it spawns runs that code), not after later edits
  const machine = machineInfo()
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or CHROMIUM_PATH)`)
  const copy = `spoolway_bench_dashboard_${stamp().toLowerCase().replace(/-/g, "_")}`
  log(`copying ${SOURCE} to ${copy} (the source stays untouched)`)
  await psql(ADMIN_URL, `CREATE DATABASE ${copy} TEMPLATE ${SOURCE}`)
  // the key rotation publishes the site registry: to the bench Redis, under a prefix of its own
  const prefix = `bench:dashboard:${stamp()}`
  const env = {
    DATABASE_URL: dbUrl(copy),
    PRIMARY_REDIS_URL: REDIS_URL,
    SPOOL_REDIS_URL: REDIS_URL,
    STREAM_PREFIX: prefix,
    SPOOLWAY_DATA_DIR: tempDir("dashboard")
  }
  try {
    const missing = await applyMissingMigrations(dbUrl(copy))
    if (missing.length > 0) log(`the copy lacked migrations below its latest: ran ${missing.join(", ")} on the copy`)
    // the copy as a running install's autovacuum keeps it: visits vacuumed (the visibility map an
    // index-only scan relies on) and every table analyzed (a freshly written data set has neither)
    if (VACUUM) {
      const t0 = performance.now()
      await psql(dbUrl(copy), "VACUUM (ANALYZE) visits")
      await psql(dbUrl(copy), "ANALYZE")
      log(`vacuumed visits and analyzed the copy in ${round((performance.now() - t0) / 1000, 1)} s`)
    }
    const visible = await psql(dbUrl(copy), "SELECT round(100.0 * relallvisible / greatest(relpages, 1), 1) FROM pg_class WHERE relname = 'visits'")
    const events = await psql(dbUrl(copy), "SELECT count(*) FROM raw_events")
    const visits = await psql(dbUrl(copy), "SELECT count(*) FROM visits")
    const rotated = JSON.parse(await cli(["sites", "keys", "rotate", SITE, "--server", "--grace-hours", "0", "--json"], env).then((o) => o.slice(o.indexOf("{")))) as {
      serverKey: string
    }
    const port = process.env["BENCH_PORT"] !== undefined ? Number(process.env["BENCH_PORT"]) : await freePort()
    const child = spawn(process.execPath, [...NODE_ARGS, "serve", "--role", "api"], {
      env: { ...process.env, LOG_LEVEL: "warn", ...env, PORT: String(port), HOST: "127.0.0.1" },
      stdio: ["ignore", "inherit", "inherit"]
    })
    track("api", child)
    const base = `http://127.0.0.1:${port}`
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/health/ready`)).status === 200) break
      } catch {}
      if (i > 300) throw new Error("serve --role api did not become ready")
      await new Promise((r) => setTimeout(r, 100))
    }
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
    })
    const newContext = async (): Promise<BrowserContext> => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      await context.addInitScript(([site, key]) => (globalThis as any).localStorage.setItem(`spoolway:key:${site}`, key), [SITE, rotated.serverKey])
      // where the time after "ready" goes: the page's long tasks, and the second animation frame
      // after the page marked itself ready (its content on screen)
      await context.addInitScript(() => {
        const g = globalThis as any
        const bench: { longTasks: Array<[number, number]>; painted?: number } = { longTasks: [] }
        g.__bench = bench
        try {
          new g.PerformanceObserver((list: any) => {
            for (const e of list.getEntries()) bench.longTasks.push([e.startTime, e.duration])
          }).observe({ type: "longtask", buffered: true })
        } catch {}
        const watch = () => {
          const main = g.document.getElementById("main")
          if (!main) return
          new g.MutationObserver(() => {
            if (main.dataset.state === "ready" && bench.painted === undefined) {
              g.requestAnimationFrame(() => g.requestAnimationFrame(() => (bench.painted = g.performance.now())))
            }
          }).observe(main, { attributes: true, attributeFilter: ["data-state"] })
        }
        g.document.addEventListener("DOMContentLoaded", watch)
      })
      return context
    }
    const url = (page: string, query = "") => `${base}/sites/${SITE}${page === "overview" ? "" : `/${page}`}${query}`

    // warm the database's caches once (a dashboard in use is warm; the first run after a restart is not)
    {
      const context = await newContext()
      const page = await context.newPage()
      for (const name of PAGES) await timed(page, () => page.goto(url(name)))
      await context.close()
    }

    /** the page's own queries (captured from its cold load), sent again from Node, all at once: the API's share */
    const captured: Record<string, Array<{ path: string; body: string }>> = {}
    /** records the page's queries until the returned function is called (the end of its first load) */
    const capture = (page: Page, name: string) => {
      const list: Array<{ path: string; body: string }> = []
      let on = true
      page.on("request", (request) => {
        const path = new URL(request.url()).pathname
        if (on && request.method() === "POST" && path.startsWith("/api/v1/")) list.push({ path, body: request.postData() ?? "" })
      })
      captured[name] ??= list
      return () => {
        on = false
      }
    }
    const apiOnly = async (name: string) => {
      const t0 = performance.now()
      await Promise.all((captured[name] ?? []).map(async ({ path, body }) => {
        const res = await fetch(`${base}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${rotated.serverKey}`, "content-type": "application/json" },
          body
        })
        await res.arrayBuffer()
      }))
      return performance.now() - t0
    }
    const api: Record<string, Array<number>> = {}

    /** where a cold load's time goes (ms from navigation start, the page's own Resource Timing) */
    const phases = async (page: Page) => {
      // the second frame after "ready" (bounded: a page that never paints again reports NaN)
      await page.waitForFunction(() => (globalThis as any).__bench?.painted !== undefined, undefined, { polling: "raf", timeout: 2_000 })
        .catch(() => {})
      const { timeOrigin, ...rest } = await page.evaluate(() => {
        const perf = (globalThis as any).performance
        const api = perf.getEntriesByType("resource").filter((e: any) => e.name.includes("/api/v1/"))
        const assets = perf.getEntriesByType("resource").filter((e: any) => !e.name.includes("/api/v1/"))
        const nav = perf.getEntriesByType("navigation")[0]
        return {
          shell: nav?.responseEnd ?? NaN,
          assets: Math.max(0, ...assets.map((e: any) => e.responseEnd)),
          firstQuery: Math.min(...api.map((e: any) => e.startTime)),
          lastAnswer: Math.max(...api.map((e: any) => e.responseEnd)),
          queries: api.length,
          each: api.map((e: any) => `${Math.round(e.startTime)}-${Math.round(e.responseEnd)}`).join(" "),
          ready: Number((globalThis as any).document.getElementById("main")?.dataset.readyAt ?? NaN),
          load: nav?.loadEventEnd ?? NaN,
          painted: (globalThis as any).__bench?.painted ?? NaN,
          longTasksMs: ((globalThis as any).__bench?.longTasks ?? []).reduce((a: number, [, d]: [number, number]) => a + d, 0),
          timeOrigin: perf.timeOrigin as number
        }
      })
      return { ...rest, navigationStart: Math.round(timeOrigin - actionStartedAt) }
    }
    const coldPhases: Record<string, Array<Record<string, number>>> = {}
    const cold: Record<string, Array<number>> = {}
    const warm: Record<string, Array<number>> = {}
    const switches: Record<string, Array<number>> = {
      "range 30d → 7d (Overview)": [],
      "range 30d → 7d (Pages)": [],
      "filter by the top page (Pages)": [],
      "then the Overview, so filtered (navigation)": [],
      "then the Events page, so filtered (navigation)": [],
      "then the Network page, so filtered (navigation)": [],
      "then the Traffic page, so filtered (navigation)": [],
      "then the Audience page, so filtered (navigation)": [],
      "filter by the 5th page (Pages)": [],
      "then the Events page, so filtered by the 5th page (navigation)": [],
      "then the Network page, so filtered by the 5th page (navigation)": [],
      "filter by the top source (Traffic)": []
    }
    /** each switch's query API requests, per run (when a table's query waited for another, or ran alone) */
    const switchQueries: Record<string, Array<string>> = {}
    const fromEvent: Record<string, Array<number>> = {}
    const record = (name: string, ms: number) => {
      switches[name]!.push(ms)
      ;(switchQueries[name] ??= []).push(lastQueries)
      ;(fromEvent[name] ??= []).push(lastFromEvent)
    }
    for (let run = 0; run < RUNS; run++) {
      for (const name of PAGES) {
        const context = await newContext()
        const page = await context.newPage()
        const stopCapture = run === 0 ? capture(page, name) : () => {}
        ;(cold[name] ??= []).push(await timed(page, () => page.goto(url(name))))
        stopCapture()
        ;(coldPhases[name] ??= []).push(await phases(page))
        ;(warm[name] ??= []).push(await timed(page, () => page.goto(url(name))))
        if (name === "overview" || name === "pages") {
          const label = `range 30d → 7d (${name === "overview" ? "Overview" : "Pages"})`
          record(label, await timed(page, () => page.selectOption("#range", "7d")))
        }
        if (name === "pages") {
          await timed(page, () => page.goto(url(name)))
          record("filter by the top page (Pages)",
            await timed(page, () => page.click("section[data-dimension=page] tbody tr:first-child button.filter"))
          )
          record("then the Overview, so filtered (navigation)", await timed(page, () => page.click("#nav li:first-child a")))
          // the pages in the nav's order: Overview, Pages, Events, Traffic, Audience, Network
          record("then the Events page, so filtered (navigation)", await timed(page, () => page.click("#nav li:nth-child(3) a")))
          record("then the Network page, so filtered (navigation)", await timed(page, () => page.click("#nav li:nth-child(6) a")))
          record("then the Traffic page, so filtered (navigation)", await timed(page, () => page.click("#nav li:nth-child(4) a")))
          record("then the Audience page, so filtered (navigation)", await timed(page, () => page.click("#nav li:nth-child(5) a")))
          await timed(page, () => page.goto(url(name)))
          record("filter by the 5th page (Pages)",
            await timed(page, () => page.click("section[data-dimension=page] tbody tr:nth-child(5) button.filter"))
          )
          record("then the Events page, so filtered by the 5th page (navigation)",
            await timed(page, () => page.click("#nav li:nth-child(3) a"))
          )
          record("then the Network page, so filtered by the 5th page (navigation)",
            await timed(page, () => page.click("#nav li:nth-child(6) a"))
          )
        }
        if (name === "traffic") {
          record("filter by the top source (Traffic)",
            await timed(page, () => page.click("section[data-dimension=source] tbody tr:first-child button.filter"))
          )
        }
        await context.close()
        ;(api[name] ??= []).push(await apiOnly(name))
      }
      log(`run ${run + 1}/${RUNS}: ${PAGES.map((p) => `${p} ${round(cold[p]!.at(-1)!, 0)} ms`).join(", ")}`)
    }
    await browser.close()
    await stopChild(child)

    const lines = [
      `# Dashboard render times — ${new Date().toISOString()}`,
      "",
      `command: npx node bench/dashboard.ts --database ${SOURCE} --site ${SITE} --runs ${RUNS}`,
      `machine: ${machine.nproc} cores, ${machine.cpuModel}, Node ${machine.node}, git ${machine.git}`,
      `data: ${events} events, ${visits} visits in the copy of ${SOURCE} (all sites; ${VACUUM ? "visits vacuumed, all analyzed" : "not vacuumed"}, ${visible} % of visits' pages all-visible); site ${SITE}; range 30d (the default)${
        missing.length > 0 ? `; migrations the source lacked, run on the copy: ${missing.join(", ")}` : ""
      }`,
      `browser: ${CHROMIUM} (headless), 1280×900; serve --role api on the same machine`,
      "",
      "| page | first render, cold context (median ms) | again, warm (median ms) | its queries alone, from Node, in parallel (median ms) | queries |",
      "|---|---|---|---|---|",
      ...PAGES.map((p) =>
        `| ${p} | ${round(median(cold[p]!), 0)} | ${round(median(warm[p]!), 0)} | ${round(median(api[p]!), 0)} | ${captured[p]?.length ?? "?"} |`
      ),
      "",
      "Cold loads, where the time goes (medians, ms from navigation start): shell = the HTML received, assets = the last",
      "script/style received, first query = the first query sent, last answer = the last query's answer received, drawn = the",
      "page marked itself ready (everything drawn), painted = the second animation frame after it, long tasks = the page's",
      "tasks over 50 ms in all (Long Tasks API), load = the load event's end, all in the page's clock; navigation start =",
      "the page clock's zero in the bench's (ms after the bench asked for the page: the browser's own start-up of the",
      "navigation, a new renderer process for a new context); first render = the bench's clock (goto to ready, after load).",
      "",
      "| page | navigation start | shell | assets | first query | last answer | drawn | painted | long tasks | load | first render |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      ...PAGES.map((p) => {
        const m = (k: string) => round(median((coldPhases[p] ?? []).map((x) => x[k]!)), 0)
        return `| ${p} | ${m("navigationStart")} | ${m("shell")} | ${m("assets")} | ${m("firstQuery")} | ${m("lastAnswer")} | ${m("ready")} | ${m("painted")} | ${
          m("longTasksMs")
        } | ${m("load")} | ${round(median(cold[p]!), 0)} |`
      }),
      "",
      "Switches: median ms from the bench asking for the action to the page ready (bench clock: includes the automation's",
      "own steps before the event — finding the element, scrolling it into view, waiting until it is stable), and from the",
      "action's event (the click, the select's change) to the page ready, in the page's clock: what the person clicking waits.",
      "",
      "| switch | median ms | from the event |",
      "|---|---|---|",
      ...Object.entries(switches).map(([k, v]) => `| ${k} | ${round(median(v), 0)} | ${round(median(fromEvent[k] ?? [NaN]), 0)} |`),
      "",
      `raw (ms): ${JSON.stringify({ cold, warm, api, switches, fromEvent, switchQueries, coldPhases }, (_k, v) => (typeof v === "number" ? Math.round(v) : v))}`
    ]
    const text = lines.join("\n") + "\n"
    console.log(text)
    log(`written: ${writeResult(`dashboard-${stamp()}.txt`, text)}`)
  } finally {
    const redis = new Redis(REDIS_URL)
    await redis.del(sitesKey(prefix), sitesVersionKey(prefix)).catch(() => 0)
    redis.disconnect()
    await psql(ADMIN_URL, `DROP DATABASE IF EXISTS ${copy} WITH (FORCE)`).catch((e) => log(`could not drop ${copy}: ${e}`))
  }
}

runBench(main)
