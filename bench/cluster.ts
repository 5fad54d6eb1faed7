/**
 * The event log on one Redis vs a 3-master Redis Cluster (issue 18, docs/scaling.md), same run:
 * the collector (`serve --role collector`) under the same paced load of batch requests, p50/p99
 * latency and CPU per event (collector, and all redis-servers together), for
 *   single   — PRIMARY_REDIS_URL (the default),
 *   cluster  — PRIMARY_REDIS_CLUSTER, 16 partitions,
 *   cluster+WAIT — the same with REDIS_MIN_REPLICAS_ACK=1;
 * then failover, with and without REDIS_MIN_REPLICAS_ACK=1, each on a fresh cluster: under load,
 * SIGKILL the master of partition 0 (restarted at +12 s: it rejoins as a replica) and measure how the answers went (non-2xx, the longest gap
 * between two 2xx), the time until the collector routes to the cluster again with an empty spool
 * (the promoted replica serves), and how many events answered 202 are in no partition afterwards
 * (lost with the master: what REDIS_MIN_REPLICAS_ACK is for).
 *
 *   flock /tmp/spoolway-bench.lock npx node bench/cluster.ts
 *   knobs: BENCH_RATE=800 (req/s) BENCH_BATCH=5 (events/request) BENCH_SECONDS=10 BENCH_ROUNDS=2
 *
 * This 2-core machine cannot show the cluster scaling out (all six redis-servers, the collector
 * and the load share the two cores): the point is the cost per event and the latency of the
 * partitioned write and of WAIT, and the failover.
 */
import { execFile } from "node:child_process"
import { Agent, request } from "node:http"
import { Cluster } from "ioredis"
import { join } from "node:path"
import {
  cpuSampler,
  log,
  machineInfo,
  requireNode24,
  round,
  runBench,
  sleep,
  stamp,
  startCollector,
  startRedis,
  type RedisServer,
  restartRedis,
  tempDir,
  writeResult
} from "./lib.ts"

requireNode24()

const RATE = Number(process.env.BENCH_RATE ?? 800)
const BATCH = Number(process.env.BENCH_BATCH ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)

interface LoadResult {
  readonly sent: number
  /** the sessionIds of every event answered 202 */
  readonly accepted: Set<string>
  readonly statuses: Record<string, number>
  readonly p50: number
  readonly p99: number
  /** longest time between two consecutive 2xx answers, ms */
  readonly maxGap2xxMs: number
}

/** Paced batch requests to `url` for `seconds`; latency per request. */
const load = async (url: string, seconds: number, onTick?: (elapsedMs: number) => void): Promise<LoadResult> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const latencies: Array<number> = []
  const statuses: Record<string, number> = {}
  let last2xx = 0
  let maxGap = 0
  let sent = 0
  const accepted = new Set<string>()
  const start = Date.now()
  const inFlight = new Set<Promise<void>>()
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const sessions = Array.from({ length: BATCH }, (_, k) => `b${start}-${i}-${k}`)
      const body = JSON.stringify({ events: sessions.map((sessionId) => ({ eventType: "bench", sessionId })) })
      const t0 = performance.now()
      const req = request(`${url}/track/batch`, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
        res.resume()
        res.on("end", () => {
          latencies.push(performance.now() - t0)
          const code = String(res.statusCode)
          statuses[code] = (statuses[code] ?? 0) + 1
          if (res.statusCode === 202) {
            for (const session of sessions) accepted.add(session)
            const now = Date.now()
            if (last2xx > 0) maxGap = Math.max(maxGap, now - last2xx)
            last2xx = now
          }
          resolve()
        })
      })
      req.on("error", () => {
        statuses["error"] = (statuses["error"] ?? 0) + 1
        resolve()
      })
      req.end(body)
    })
  while (Date.now() - start < seconds * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * RATE)
    while (sent < due) {
      const p = one(sent++)
      inFlight.add(p)
      void p.then(() => inFlight.delete(p))
    }
    onTick?.(Date.now() - start)
    await sleep(5)
  }
  await Promise.all(inFlight)
  agent.destroy()
  latencies.sort((a, b) => a - b)
  const at = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0, 2)
  return { sent, accepted, statuses, p50: at(0.5), p99: at(0.99), maxGap2xxMs: maxGap }
}

const clusterArgs = ["--appendonly", "yes", "--appendfsync", "everysec", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]

const startCluster = async (): Promise<{ nodes: Array<RedisServer>; seeds: string }> => {
  const nodes: Array<RedisServer> = []
  for (let i = 0; i < 6; i++) nodes.push(await startRedis({ name: `cluster-${i}`, persistence: clusterArgs }))
  const seeds = nodes.map((n) => `127.0.0.1:${n.port}`)
  await new Promise<void>((resolve, reject) =>
    execFile("redis-cli", ["--cluster", "create", ...seeds, "--cluster-replicas", "1", "--cluster-yes"], (e, _o, err) => (e ? reject(new Error(err)) : resolve()))
  )
  // every node ok, every replica in sync
  for (let i = 0; i < 600; i++) {
    let ok = true
    for (const n of nodes) {
      const c = n.client()
      try {
        const info = String(await c.call("CLUSTER", "INFO"))
        const repl = await c.info("replication")
        ok &&= info.includes("cluster_state:ok") && (repl.includes("role:master") || repl.includes("master_link_status:up"))
      } catch {
        ok = false
      } finally {
        c.disconnect()
      }
    }
    if (ok) break
    await sleep(100)
  }
  return { nodes, seeds: seeds.join(",") }
}

const masterOfSlotZeroKey = async (nodes: Array<RedisServer>, key: string): Promise<RedisServer> => {
  const c = nodes[0]!.client()
  try {
    const slot = Number(await c.call("CLUSTER", "KEYSLOT", key))
    const slots = await c.call("CLUSTER", "SLOTS") as Array<[number, number, [string, number]]>
    const port = Number(slots.find(([a, b]) => slot >= a && slot <= b)![2][1])
    return nodes.find((n) => n.port === port)!
  } finally {
    c.disconnect()
  }
}

runBench(async () => {
  const machine = machineInfo()
  const lines: Array<string> = []
  const out = (line: string) => {
    lines.push(line)
    log(line)
  }
  out(`# cluster bench ${new Date().toISOString()}: ${RATE} req/s × ${BATCH} events, ${SECONDS} s per measurement, ${ROUNDS} round(s)`)
  out(`machine: ${machine.nproc} cores (${machine.cpuModel}), node ${machine.node}, ${machine.redis}, git ${machine.git}`)

  const single = await startRedis({ name: "primary", persistence: ["--appendonly", "yes", "--appendfsync", "everysec"] })
  const spool = await startRedis({ name: "spool", persistence: ["--appendonly", "yes", "--appendfsync", "everysec"] })
  const cluster = await startCluster()
  const dir = tempDir("cluster-bench")

  const configs: Record<string, Record<string, string>> = {
    single: {},
    cluster: { PRIMARY_REDIS_CLUSTER: cluster.seeds, STREAM_PARTITIONS: "16" },
    "cluster+WAIT": { PRIMARY_REDIS_CLUSTER: cluster.seeds, STREAM_PARTITIONS: "16", REDIS_MIN_REPLICAS_ACK: "1", REDIS_REPLICAS_ACK_TIMEOUT_MS: "100" }
  }
  const rows: Array<string> = []
  const results: Array<unknown> = []
  for (let round_ = 0; round_ < ROUNDS; round_++) {
    const order = round_ % 2 === 0 ? Object.keys(configs) : Object.keys(configs).reverse()
    for (const name of order) {
      const collector = await startCollector({
        name: `collector-${name}`,
        primaryUrl: single.url,
        spoolUrl: spool.url,
        streamPrefix: `bench${round_}${name.replace(/\W/g, "")}`,
        probeIntervalMs: 500,
        env: { LOG_LEVEL: "warn", ...configs[name] },
        logFile: join(dir, `collector-${name}-${round_}.log`)
      })
      await load(collector.url, 2) // warm-up
      const redisPids = Object.fromEntries([single, ...cluster.nodes].map((n) => [n.name, n.child.pid]))
      const sampler = cpuSampler({ collector: collector.child.pid, ...redisPids })
      const r = await load(collector.url, SECONDS)
      const cpu = sampler.stop()
      const events = (r.statuses["202"] ?? 0) * BATCH
      const collectorUs = round((cpu.used["collector"]!.cpuS * 1e6) / Math.max(1, events), 1)
      const redisS = Object.entries(cpu.used).filter(([k]) => k.startsWith("primary") || k.startsWith("cluster")).reduce((n, [, u]) => n + u.cpuS, 0)
      const redisUs = round((redisS * 1e6) / Math.max(1, events), 1)
      const row = `| ${round_ + 1} | ${name} | ${r.sent} | ${JSON.stringify(r.statuses)} | ${r.p50} | ${r.p99} | ${collectorUs} | ${redisUs} | ${cpu.used["__other"]?.pctOfOneCore ?? "?"} |`
      rows.push(row)
      const { accepted: _accepted, ...summary } = r
      results.push({ round: round_ + 1, name, ...summary, collectorUsPerEvent: collectorUs, redisUsPerEvent: redisUs, other: cpu.used["__other"] })
      out(row)
      collector.child.kill("SIGTERM")
      await sleep(500)
    }
  }
  out("")
  out("| round | log | requests | statuses | p50 ms | p99 ms | collector CPU µs/event | redis CPU µs/event | other processes, % of a core |")
  out("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
  for (const row of rows) out(row)

  // the comparison's cluster is done: free its CPU for the failover runs
  for (const n of cluster.nodes) n.child.kill("SIGKILL")

  // failover: kill the master of partition 0 under load, on a fresh cluster, with and without WAIT
  for (const [label, ack] of [["REDIS_MIN_REPLICAS_ACK=1", "1"], ["REDIS_MIN_REPLICAS_ACK=0", "0"]] as const) {
    const fresh = await startCluster()
    const prefix = `benchfailover${ack}`
    const collector = await startCollector({
      name: `collector-failover-${ack}`,
      primaryUrl: single.url,
      spoolUrl: spool.url,
      streamPrefix: prefix,
      probeIntervalMs: 250,
      env: { LOG_LEVEL: "info", PRIMARY_REDIS_CLUSTER: fresh.seeds, STREAM_PARTITIONS: "16", REDIS_MIN_REPLICAS_ACK: ack, REDIS_REPLICAS_ACK_TIMEOUT_MS: "100" },
      logFile: join(dir, `collector-failover-${ack}.log`)
    })
    const master = await masterOfSlotZeroKey(fresh.nodes, `${prefix}:{0}:events`)
    let killedAt = 0
    let backAt = 0
    let spooledPeak = 0
    const poll = setInterval(async () => {
      if (killedAt === 0 || backAt !== 0) return
      try {
        const res = await fetch(`${collector.url}/health`)
        const body = await res.json() as { primaryHealthy: boolean; spoolDepth: number | null }
        spooledPeak = Math.max(spooledPeak, body.spoolDepth ?? 0)
        if (body.primaryHealthy && body.spoolDepth === 0 && Date.now() - killedAt > 500) backAt = Date.now()
      } catch {}
    }, 50)
    let restarting: Promise<void> | undefined
    const r = await load(collector.url, 25, (elapsed) => {
      if (killedAt === 0 && elapsed > 5000) {
        killedAt = Date.now()
        process.kill(master.child.pid!, "SIGKILL")
        log(`SIGKILL master ${master.name} (port ${master.port})`)
      }
      // the dead node comes back at +12 s and rejoins as the replica of the promoted one
      if (restarting === undefined && elapsed > 12_000) {
        restarting = restartRedis(master, clusterArgs).then(() => log(`restarted ${master.name} (port ${master.port})`))
      }
    })
    await restarting
    clearInterval(poll)
    // let the spool drain, then count the acknowledged events that are in no partition (and not
    // still in the spool: not lost, only not yet forwarded)
    for (let i = 0; i < 300 && backAt === 0; i++) await sleep(100)
    const cluster = new Cluster(fresh.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })))
    const stored = new Set<string>()
    const sessionOf = (fields: Array<string>) => (JSON.parse(String(fields[1])) as { payload: { sessionId: string } }).payload.sessionId
    for (let p = 0; p < 16; p++) {
      for (const [, fields] of await cluster.xrange(`${prefix}:{${p}}:events`, "-", "+")) stored.add(sessionOf(fields))
    }
    cluster.disconnect()
    const spoolClient = spool.client()
    const inSpool = new Set((await spoolClient.xrange(`${prefix}:spool`, "-", "+")).map(([, fields]) => sessionOf(fields)))
    spoolClient.disconnect()
    let lost = 0
    let spooledOnly = 0
    for (const session of r.accepted) {
      if (stored.has(session)) continue
      if (inSpool.has(session)) spooledOnly++
      else lost++
    }
    out("")
    out(`failover, ${label} (${RATE} req/s × ${BATCH} events, master of partition 0 SIGKILLed at +5 s, cluster-node-timeout 2000 ms):`)
    out(`  requests ${r.sent}, statuses ${JSON.stringify(r.statuses)}, p99 ${r.p99} ms, longest gap between two 2xx ${r.maxGap2xxMs} ms`)
    out(`  back on the cluster with an empty spool after ${backAt === 0 ? "(not within the run)" : `${backAt - killedAt} ms`}; spool peak ${spooledPeak} events`)
    out(`  acknowledged events: ${r.accepted.size}; afterwards only in the spool (not yet forwarded): ${spooledOnly}; in neither (lost): ${lost}`)
    results.push({ failover: { label, sent: r.sent, statuses: r.statuses, p99: r.p99, maxGap2xxMs: r.maxGap2xxMs, backMs: backAt === 0 ? null : backAt - killedAt, spooledPeak, accepted: r.accepted.size, spooledOnly, lost } })
    collector.child.kill("SIGTERM")
    await sleep(500)
    for (const n of fresh.nodes) n.child.kill("SIGKILL")
  }

  const file = `cluster-${stamp()}`
  writeResult(`${file}.txt`, lines.join("\n") + "\n")
  writeResult(`${file}.json`, JSON.stringify({ machine, rate: RATE, batch: BATCH, seconds: SECONDS, results }, null, 2))
})
