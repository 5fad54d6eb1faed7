/**
 * `npm run test:container` (not part of `npm test`): the Dockerfile and compose.yaml, built and
 * run with podman + podman-compose (set up by `.ci/container`).
 *
 * - Builds the image from the Dockerfile (docker format, so HEALTHCHECK is kept).
 * - Runs the user's compose.yaml, copied unchanged into a temporary directory with its own .env,
 *   with `compose.test.yaml` merged over it. That override is TEST ONLY: it swaps the official
 *   `postgres` and `redis` images, which cannot be pulled here (no image registry is reachable),
 *   for stand-ins built from the same Debian base with Debian's postgresql and redis-server
 *   (postgres.Containerfile, redis.Containerfile).
 * - podman-compose 1.0.3 (Debian bookworm) ignores `profiles` and `depends_on.condition`, and
 *   podman runs no healthchecks without systemd. So the test names a profile's services on the
 *   command line (docker compose does the same when services are named), starts postgres and
 *   redis first and waits until their healthchecks pass (`podman healthcheck run`), as
 *   `condition: service_healthy` would.
 * - Tracking requests carry a browser User-Agent: a curl-like one is stored as a bot.
 * - The first compose test adds the site with `spoolway sites add` inside the container, as the
 *   README tells users to; from then on the tracking API takes only that site's keys, so every
 *   view is sent as a page of the site sends it: its write key and the site's `Origin`.
 */
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from "vitest"

const ROOT = resolve(import.meta.dirname, "../..")
const HERE = import.meta.dirname
const IMAGE = "localhost/spoolway-test:latest"
const STANDINS = [
  { image: "localhost/spoolway-test-postgres:latest", file: "postgres.Containerfile" },
  { image: "localhost/spoolway-test-redis:latest", file: "redis.Containerfile" }
] as const
const BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
const STOP_TIMEOUT_S = 30 // compose.yaml's stop_grace_period, which podman-compose 1.0.3 ignores
/** the host's CA bundle, passed as a build secret for a TLS-intercepting proxy (see Dockerfile) */
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

const project = `spoolwayct${process.pid}`
const workdir = mkdtempSync(join(tmpdir(), "spoolway-container-"))
const logFile = join(workdir, "commands.log")
let port = 0
/** profile split: the api service's published port */
let apiPort = 0
/** the site added inside the container (the first compose test); views are sent with its write key */
const SITE_HOST = "shop.example"
let site: { readonly id: number; readonly writeKey: string; readonly serverKey: string } | undefined

const run = (command: string, args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly allowFailure?: boolean } = {}) =>
  new Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((done, fail) => {
    execFile(command, args, { cwd: options.cwd ?? ROOT, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      appendFileSync(logFile, `$ ${command} ${args.join(" ")}\n${stdout}${stderr}[exit ${code}]\n`)
      if (code !== 0 && options.allowFailure !== true) {
        fail(new Error(`${command} ${args.join(" ")} exited ${code}:\n${(stdout + stderr).slice(-4000)}`))
      } else done({ code, stdout, stderr })
    })
  })

const podman = (...args: ReadonlyArray<string>) => run("podman", args).then((r) => r.stdout.trim())
const compose = (...args: ReadonlyArray<string>) =>
  run("podman-compose", ["-p", project, "-f", "compose.yaml", "-f", "compose.test.yaml", ...args], { cwd: workdir })

/** the container of `service` in this project (by compose label, whatever the naming scheme) */
const container = async (service: string): Promise<string> => {
  const name = await podman(
    "ps", "-a", "--format", "{{.Names}}",
    "--filter", `label=com.docker.compose.project=${project}`,
    "--filter", `label=com.docker.compose.service=${service}`
  )
  if (name === "" || name.includes("\n")) throw new Error(`expected one container for ${service}, got '${name}'`)
  return name
}

const psql = async (sql: string) => podman("exec", await container("postgres"), "psql", "-U", "spoolway", "-d", "spoolway", "-At", "-c", sql)

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

const waitFor = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 90_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await sleep(500)
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? "" : `: ${String(last)}`}`)
}

/** runs the image's HEALTHCHECK once, as a container engine with a scheduler would */
const healthy = async (service: string) => (await run("podman", ["healthcheck", "run", await container(service)], { allowFailure: true })).code === 0

const waitHealthy = (service: string) => waitFor(`${service} healthy`, async () => ((await healthy(service)) ? true : undefined))

/** a profile: postgres and redis first (healthy), then the profile's Spoolway services (healthy) */
const up = async (services: ReadonlyArray<string>) => {
  await compose("up", "-d", "--no-build", "postgres", "redis")
  await waitHealthy("postgres")
  await waitHealthy("redis")
  await compose("up", "-d", "--no-build", ...services)
  for (const service of services) await waitHealthy(service)
}

const freePort = async (taken?: number): Promise<number> => {
  for (let candidate = 18900 + Math.floor(Math.random() * 50); candidate < 19000; candidate++) {
    const free = await new Promise<boolean>((done) => {
      const server = createServer().once("error", () => done(false)).listen(candidate, "127.0.0.1", () => server.close(() => done(true)))
    })
    if (free && candidate !== taken) return candidate
  }
  throw new Error("no free port in 18900-18999")
}

interface ViewResult {
  readonly status: number
  readonly eventId?: string
}

const sendView = async (sessionId: string, page: number): Promise<ViewResult> => {
  const response = await fetch(`http://127.0.0.1:${port}/track/view`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": BROWSER_UA,
      "accept-language": "en-GB",
      // what the site's pages send: the write key, and the browser's Origin, which the collector checks
      ...(site === undefined ? {} : { "x-write-key": site.writeKey, origin: `https://${SITE_HOST}` })
    },
    body: JSON.stringify({ sessionId, pageUrl: `https://${SITE_HOST}/p/${page}`, referrer: "https://www.google.com/" })
  })
  const body = (await response.json()) as { readonly eventId?: string }
  return { status: response.status, ...(body.eventId === undefined ? {} : { eventId: body.eventId }) }
}

/** sends `count` views one after another; every one must be accepted */
const sendViews = async (sessionId: string, count: number): Promise<Array<string>> => {
  const ids: Array<string> = []
  for (let page = 0; page < count; page++) {
    const result = await sendView(sessionId, page)
    expect(result.status).toBe(202)
    ids.push(result.eventId!)
  }
  return ids
}

interface StoredRow {
  readonly id: string
  readonly isBot: boolean
  readonly siteId: number | null
}

const storedRows = async (sessionIds: ReadonlyArray<string>): Promise<Array<StoredRow>> => {
  const list = sessionIds.map((s) => `'${s}'`).join(",")
  const out = await psql(`SELECT id, is_bot, domain_id FROM raw_events WHERE kind = 'view' AND session_id IN (${list}) ORDER BY id`)
  return out === "" ? [] : out.split("\n").map((line) => {
    const [id, isBot, siteId] = line.split("|")
    return { id: id!, isBot: isBot === "t", siteId: siteId === "" ? null : Number(siteId) }
  })
}

/** waits until every accepted id is in raw_events, then returns all rows of those sessions */
const waitStored = (sessionIds: ReadonlyArray<string>, accepted: ReadonlyArray<string>) =>
  waitFor(`${accepted.length} views in PostgreSQL`, async () => {
    const rows = await storedRows(sessionIds)
    const stored = new Set(rows.map((r) => r.id))
    return accepted.every((id) => stored.has(id)) ? rows : undefined
  })

/** each accepted id exactly once, stored as a human view */
const expectExactlyOnce = (rows: ReadonlyArray<StoredRow>, accepted: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const row of rows) counts.set(row.id, (counts.get(row.id) ?? 0) + 1)
  for (const id of accepted) expect(counts.get(id), `event ${id}`).toBe(1)
  expect(rows.filter((r) => r.isBot)).toEqual([])
  // stored for the site whose key sent them
  if (site !== undefined) expect(rows.filter((r) => r.siteId !== site!.id)).toEqual([])
}

/** `POST /api/v1/query` with the site's server key: the one row's metrics (no dimensions) */
const query = async (base: string, metrics: ReadonlyArray<string>, key = site!.serverKey) => {
  const response = await fetch(`${base}/api/v1/query`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ site: SITE_HOST, metrics, date_range: "day" })
  })
  const body = (await response.json()) as { readonly results?: ReadonlyArray<{ readonly metrics: ReadonlyArray<number> }> }
  return { status: response.status, metrics: body.results?.[0]?.metrics, body }
}

const exitCode = async (service: string) => Number(await podman("inspect", "--format", "{{.State.ExitCode}}", await container(service)))

const logsOf = async (service: string) => {
  const r = await run("podman", ["logs", await container(service)], { allowFailure: true })
  return r.stdout + r.stderr
}

/** log lines at ERROR or FATAL: JSON ones, and the plain report of a program that failed */
const errorLines = (logs: string) =>
  logs.split("\n").filter((line) => /^\{.*"level":"(ERROR|FATAL)"/.test(line) || /^\[[\d:.]+\] (ERROR|FATAL)\b/.test(line))

const dumpLogsOnFailure = () =>
  onTestFailed(async () => {
    for (const service of ["spoolway", "collector", "writer", "api", "redis", "postgres"]) {
      const r = await run("podman", ["ps", "-a", "-q", "--filter", `label=com.docker.compose.project=${project}`, "--filter", `label=com.docker.compose.service=${service}`], { allowFailure: true })
      if (r.stdout.trim() !== "") console.error(`---- ${service} logs (last 40 lines)\n${(await logsOf(service)).split("\n").slice(-40).join("\n")}`)
    }
    console.error(`commands and their output: ${logFile}`)
  })

const timed = async <A>(what: string, f: () => Promise<A>): Promise<A> => {
  const started = Date.now()
  const result = await f()
  console.log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return result
}

beforeAll(async () => {
  const missing = await run("sh", ["-c", "command -v podman && command -v podman-compose"], { allowFailure: true })
  if (missing.code !== 0) throw new Error("podman and podman-compose are needed: run `.ci/container setup` once (as root)")
  const secret = (await run("test", ["-s", CA_BUNDLE], { allowFailure: true })).code === 0
    ? ["--secret", `id=ca-certificates,src=${CA_BUNDLE}`]
    : []
  await timed("spoolway image build", () => podman("build", "--format", "docker", ...secret, "-t", IMAGE, "."))
  console.log(`spoolway image size: ${(Number(await podman("image", "inspect", "--format", "{{.Size}}", IMAGE)) / 1e6).toFixed(0)} MB`)
  await timed("stand-in postgres/redis image builds", () =>
    Promise.all(STANDINS.map(({ file, image }) => run("podman", ["build", "--format", "docker", "-f", file, "-t", image, "."], { cwd: HERE }))))

  port = await freePort()
  apiPort = await freePort(port)
  copyFileSync(join(ROOT, "compose.yaml"), join(workdir, "compose.yaml"))
  copyFileSync(join(HERE, "compose.test.yaml"), join(workdir, "compose.test.yaml"))
  writeFileSync(
    join(workdir, ".env"),
    [
      `POSTGRES_PASSWORD=${randomUUID().replaceAll("-", "")}`,
      "COLLECTOR_WRITE_KEYS=",
      "SPOOLWAY_BIND=127.0.0.1",
      `SPOOLWAY_PORT=${port}`,
      `SPOOLWAY_API_PORT=${apiPort}`,
      // the test's senders share one client address
      "RATE_LIMIT_PER_MINUTE=0"
    ].join("\n") + "\n"
  )
}, 900_000)

afterAll(async () => {
  // containers with their anonymous volumes (the writer's /data), then the named volumes, the network
  const containers = await run("podman", ["ps", "-a", "-q", "--filter", `label=com.docker.compose.project=${project}`], { allowFailure: true })
  const ids = containers.stdout.split("\n").filter((id) => id !== "")
  if (ids.length > 0) await run("podman", ["rm", "-f", "-v", "-t", "5", ...ids], { allowFailure: true })
  const volumes = await run("podman", ["volume", "ls", "-q", "--filter", `label=com.docker.compose.project=${project}`], { allowFailure: true })
  for (const volume of volumes.stdout.split("\n").filter((v) => v !== "")) await run("podman", ["volume", "rm", "-f", volume], { allowFailure: true })
  await run("podman", ["network", "rm", "-f", `${project}_default`], { allowFailure: true })
  rmSync(workdir, { recursive: true, force: true })
}, 120_000)

describe("container image", () => {
  test("pinned Node 24, non-root, no compilers, tini as PID 1, SIGTERM, healthcheck on /health/ready, /data volume", async () => {
    dumpLogsOnFailure()
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { version: string }> }
    const pinned = lock.packages["node_modules/node"]!.version
    expect(pinned).toMatch(/^24\./)
    const probe = await podman(
      "run", "--rm", "--entrypoint", "sh", IMAGE, "-c",
      "node --version; id -u; id -g; for c in cc gcc g++ c++ make clang; do command -v $c; done; echo end"
    )
    expect(probe.split("\n")).toEqual([`v${pinned}`, "10001", "10001", "end"])
    const [inspected] = JSON.parse(await podman("image", "inspect", IMAGE)) as Array<{
      Config: { User: string; StopSignal: string; Entrypoint: Array<string>; Cmd: Array<string>; Volumes: Record<string, unknown> }
      Healthcheck?: { Test: Array<string> }
    }>
    const config = inspected!.Config
    expect(config.User).toBe("spoolway")
    expect(config.StopSignal).toBe("SIGTERM")
    expect(config.Entrypoint).toEqual(["/usr/bin/tini", "--", "spoolway"])
    expect(config.Cmd).toEqual(["serve", "--role", "all"])
    expect(Object.keys(config.Volumes)).toEqual(["/data"])
    expect(inspected!.Healthcheck?.Test.join(" ")).toContain("/health/ready")
    // the healthcheck fails while nothing answers on the port (it passes in the compose tests below)
    const idle = await podman("run", "-d", "--rm", "--entrypoint", "sleep", IMAGE, "60")
    try {
      expect((await run("podman", ["healthcheck", "run", idle], { allowFailure: true })).code).not.toBe(0)
    } finally {
      await run("podman", ["rm", "-f", "-v", "-t", "0", idle], { allowFailure: true })
    }
    // no embedded PostgreSQL in the image: without DATABASE_URL the writer's roles stop with a clear error
    const alone = await run("podman", ["run", "--rm", IMAGE], { allowFailure: true })
    expect(alone.code).toBe(1)
    expect(alone.stdout + alone.stderr).toContain("set DATABASE_URL")
  })
})

describe("compose.yaml", () => {
  const session = (name: string) => `ct-${process.pid}-${name}`

  test("profile all: `spoolway sites add` inside the container; the site's views reach PostgreSQL; the CLI works", async () => {
    dumpLogsOnFailure()
    await timed("profile all up (healthy)", () => up(["spoolway"]))
    // the README's second command: the site and its two keys
    const printed = await podman("exec", await container("spoolway"), "spoolway", "sites", "add", SITE_HOST, "--json")
    const added = JSON.parse(printed.slice(printed.indexOf("{"))) as {
      id: number
      hostname: string
      writeKey: string
      serverKey: string
    }
    expect(added.hostname).toBe(SITE_HOST)
    expect(added.writeKey).toMatch(/^sw_pub_/)
    expect(added.serverKey).toMatch(/^sw_sec_/)
    // the collector learns the site from the primary Redis; from then on the API wants its key
    await waitFor("the collector to enforce the site", async () => {
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { sites: { mode: string } }
      return health.sites.mode === "sites" ? true : undefined
    }, 30_000)
    expect((await sendView(session("no-key"), 0)).status).toBe(401)
    site = added
    const ids = await sendViews(session("all"), 20)
    expectExactlyOnce(await waitStored([session("all")], ids), ids)
    expect(Number(await psql("SELECT coalesce(sum(pageviews), 0) FROM daily_metrics"))).toBeGreaterThanOrEqual(20)
    // the stats query API of role all, with the site's server key: one visitor, one visit of 20 views
    const stats = await query(`http://127.0.0.1:${port}`, ["visitors", "visits", "pageviews"])
    expect(stats.status, JSON.stringify(stats.body)).toBe(200)
    expect(stats.metrics).toEqual([1, 1, 20])
    expect((await query(`http://127.0.0.1:${port}`, ["pageviews"], site!.writeKey)).status).toBe(401)
    // the tracker script the site's pages load is served from the image
    const script = await fetch(`http://127.0.0.1:${port}/sw.js`)
    expect(script.status).toBe(200)
    expect(await script.text()).toBe(readFileSync(join(ROOT, "tracker/dist/core.js"), "utf8"))

    const spoolway = await container("spoolway")
    // tini is PID 1 and spoolway (node) its child, so SIGTERM reaches a process that handles it
    expect(await podman("exec", spoolway, "cat", "/proc/1/comm")).toBe("tini")
    expect(await podman("exec", spoolway, "bash", "-c", "readlink /proc/$(cut -d' ' -f1 /proc/1/task/1/children)/exe")).toBe("/usr/local/bin/node")
    const status = JSON.parse(await podman("exec", spoolway, "spoolway", "status", "--json")) as {
      primary: { healthy: boolean }
      daemon: { reachable: boolean }
    }
    expect(status.primary.healthy).toBe(true)
    expect(status.daemon.reachable).toBe(true)
    expect(await podman("exec", spoolway, "spoolway", "migrate")).toContain("schema is up to date")
    expect(errorLines(await logsOf("spoolway"))).toEqual([])
  })

  test("SIGTERM while views arrive: Spoolway exits 0, and after the stack is recreated every 202 is stored exactly once", async () => {
    dumpLogsOnFailure()
    const sessions = [0, 1, 2, 3].map((i) => session(`sigterm-${i}`))
    const accepted: Array<string> = []
    const otherStatuses: Array<number> = []
    let stopping = false
    const sender = async (sessionId: string) => {
      for (let page = 0; ; page++) {
        try {
          const result = await sendView(sessionId, page)
          if (result.status === 202) accepted.push(result.eventId!)
          else otherStatuses.push(result.status)
        } catch (error) {
          if (stopping) return // the listener is closed
          throw error
        }
      }
    }
    const senders = Promise.all(sessions.map(sender))
    await waitFor("views flowing", async () => (accepted.length >= 200 ? true : undefined), 30_000)
    stopping = true
    const stopStarted = Date.now()
    // the whole stack, Spoolway first (podman stop: the image's STOPSIGNAL, SIGTERM)
    await compose("stop", "-t", String(STOP_TIMEOUT_S))
    console.log(`stack stopped in ${((Date.now() - stopStarted) / 1000).toFixed(1)} s with ${accepted.length} views accepted`)
    await senders
    expect(otherStatuses).toEqual([])
    expect(await exitCode("spoolway")).toBe(0)
    expect(await exitCode("redis")).toBe(0)
    expect(await exitCode("postgres")).toBe(0)
    expect(errorLines(await logsOf("spoolway"))).toEqual([])

    // new containers, same volumes
    await compose("down", "-t", "5")
    await up(["spoolway"])
    expectExactlyOnce(await waitStored(sessions, accepted), accepted)
    const after = await sendViews(session("after-restart"), 5)
    expectExactlyOnce(await waitStored([session("after-restart")], after), after)
  })

  test("primary Redis down: views are spooled in the /data volume and reach PostgreSQL after the stack is recreated", async () => {
    dumpLogsOnFailure()
    await podman("stop", "-t", "10", await container("redis"))
    const ids = await sendViews(session("spooled"), 30)
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { primaryHealthy: boolean; spoolDepth: number }
    expect(health.primaryHealthy).toBe(false)
    expect(health.spoolDepth).toBeGreaterThanOrEqual(30)
    expect(await storedRows([session("spooled")])).toEqual([])

    await compose("stop", "-t", String(STOP_TIMEOUT_S))
    expect(await exitCode("spoolway")).toBe(0)
    await compose("down", "-t", "5")
    await up(["spoolway"])
    expectExactlyOnce(await waitStored([session("spooled")], ids), ids)
  })

  test("profile split: separate collector, writer and api services; the api service answers for the site", async () => {
    dumpLogsOnFailure()
    await compose("down", "-t", String(STOP_TIMEOUT_S))
    await timed("profile split up (healthy)", () => up(["collector", "writer", "api"]))
    const ids = await sendViews(session("split"), 20)
    expectExactlyOnce(await waitStored([session("split")], ids), ids)
    // the api service (its own port, PostgreSQL only) counts every stored view of the site
    const views = Number(await psql(`SELECT count(*) FROM raw_events WHERE kind = 'view' AND NOT is_bot AND domain_id = ${site!.id}`))
    expect(views).toBeGreaterThanOrEqual(20 + 5 + 30)
    const stats = await query(`http://127.0.0.1:${apiPort}`, ["pageviews"])
    expect(stats.status, JSON.stringify(stats.body)).toBe(200)
    expect(stats.metrics).toEqual([views])
    expect((await query(`http://127.0.0.1:${apiPort}`, ["pageviews"], "sw_sec_wrong")).status).toBe(401)
    const writerHealth = await podman("exec", await container("writer"), "bash", "-c",
      "exec 3<>/dev/tcp/127.0.0.1/8787 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3")
    expect(writerHealth).toMatch(/"written":\s*(\d+)/)
    expect(Number(/"written":\s*(\d+)/.exec(writerHealth)![1])).toBeGreaterThanOrEqual(20)

    await compose("stop", "-t", String(STOP_TIMEOUT_S))
    expect(await exitCode("collector")).toBe(0)
    expect(await exitCode("writer")).toBe(0)
    expect(await exitCode("api")).toBe(0)
    expect(errorLines(await logsOf("collector"))).toEqual([])
    expect(errorLines(await logsOf("writer"))).toEqual([])
    expect(errorLines(await logsOf("api"))).toEqual([])
  })
})
