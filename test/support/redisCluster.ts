/**
 * A local Redis Cluster of 3 masters + 3 replicas for one test file (issue 18): six
 * `redis-server --cluster-enabled yes` on free loopback ports, joined with `redis-cli --cluster
 * create … --cluster-replicas 1 --cluster-yes`, each stopped by its pid. `clusterUnavailable()`
 * says why it cannot run here (no redis-cli with `--cluster`); the tests then skip loudly,
 * and fail under `CI` (`.ci/run` installs redis-server/redis-cli).
 */
import { execFile, execFileSync, spawnSync } from "node:child_process"
import { Redis } from "ioredis"
import { type RedisProcess, redisProcess } from "./redisProcess.ts"

export interface RedisCluster {
  readonly nodes: ReadonlyArray<RedisProcess>
  /** `host:port` of every node (PRIMARY_REDIS_CLUSTER) */
  readonly seeds: ReadonlyArray<string>
  /** the node currently serving `key`'s slot as master */
  masterOf(key: string): Promise<RedisProcess>
  /** waits until every live node reports cluster_state:ok and agrees on 3 masters */
  awaitHealthy(): Promise<void>
  cleanup(): Promise<void>
}

/** Why a cluster cannot be started here, or undefined when it can. */
export const clusterUnavailable = (): string | undefined => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
    // (prints its help and exits 1)
    const help = spawnSync("redis-cli", ["--cluster", "help"], { encoding: "utf8" })
    if (help.error !== undefined) return `redis-cli: ${help.error.message}`
    if (!`${help.stdout}${help.stderr}`.includes("create")) return "redis-cli has no --cluster create"
    return undefined
  } catch (cause) {
    return `redis-server / redis-cli --cluster not available: ${cause instanceof Error ? cause.message : String(cause)}`
  }
}

const info = async (node: RedisProcess, section: "INFO" | "NODES" | "SLOTS"): Promise<unknown> => {
  const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    await client.connect()
    return await client.call("CLUSTER", section)
  } finally {
    client.disconnect()
  }
}

const alive = (node: RedisProcess) => node.pid() !== undefined

export const startRedisCluster = async (options: { nodeTimeoutMs?: number; appendonly?: boolean } = {}): Promise<RedisCluster> => {
  const nodes: Array<RedisProcess> = []
  const cleanup = async () => {
    await Promise.all(nodes.map((n) => n.cleanup()))
  }
  try {
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await redisProcess({
          appendonly: options.appendonly ?? true,
          extraArgs: [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", String(options.nodeTimeoutMs ?? 2000),
            // a replica with stale data may still be promoted (the test kills masters on purpose)
            "--cluster-replica-validity-factor", "0"
          ]
        })
      )
    }
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`)
    await new Promise<void>((resolve, reject) =>
      execFile("redis-cli", ["--cluster", "create", ...seeds, "--cluster-replicas", "1", "--cluster-yes"], { timeout: 60_000 }, (error, _out, stderr) =>
        error ? reject(new Error(`redis-cli --cluster create failed: ${stderr || error.message}`)) : resolve())
    )
    const cluster: RedisCluster = {
      nodes,
      seeds,
      masterOf: async (key) => {
        const live = nodes.find(alive)!
        const slot = Number(await (async () => {
          const client = new Redis(live.url)
          try {
            return await client.call("CLUSTER", "KEYSLOT", key)
          } finally {
            client.disconnect()
          }
        })())
        const slots = await info(live, "SLOTS") as Array<[number, number, [string, number, ...Array<unknown>], ...Array<unknown>]>
        const range = slots.find(([from, to]) => slot >= from && slot <= to)
        if (range === undefined) throw new Error(`slot ${slot} has no owner`)
        const port = Number(range[2][1])
        return nodes.find((n) => n.port === port)!
      },
      awaitHealthy: async () => {
        for (let i = 0; i < 600; i++) {
          const states = await Promise.all(nodes.filter(alive).map(async (n) => {
            try {
              const text = String(await info(n, "INFO"))
              return text.includes("cluster_state:ok") && /cluster_size:3\b/.test(text)
            } catch {
              return false
            }
          }))
          if (states.length > 0 && states.every(Boolean)) return
          await new Promise((r) => setTimeout(r, 50))
        }
        throw new Error("the cluster did not become healthy in 30 s")
      },
      cleanup
    }
    await cluster.awaitHealthy()
    return cluster
  } catch (error) {
    await cleanup()
    throw error
  }
}
