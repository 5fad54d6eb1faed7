/**
 * A local Redis Cluster of 3 masters + 3 replicas for one test file (issue 18): six
 * `redis-server --cluster-enabled yes` on free loopback ports, joined with `redis-cli --cluster
 * create … --cluster-replicas 1 --cluster-yes`, each stopped by its pid. `clusterUnavailable()`
 * says why it cannot run here (no redis-cli with `--cluster`); the tests then skip loudly,
 * and fail under `CI` (`.ci/run` installs redis-server/redis-cli).
 */
import { type ChildProcess, execFile, execFileSync, spawnSync } from "node:child_process"
import { Redis } from "ioredis"
import { type RedisProcess, redisProcess } from "./redisProcess.ts"

export interface RedisCluster {
  readonly nodes: ReadonlyArray<RedisProcess>
  /** `host:port` of every node (PRIMARY_REDIS_CLUSTER) */
  readonly seeds: ReadonlyArray<string>
  /** the node currently serving `key`'s slot as master */
  masterOf(key: string): Promise<RedisProcess>
  /** the replica of `master` (a node that replicates it) */
  replicaOf(master: RedisProcess): Promise<RedisProcess>
  /** waits until every live node reports cluster_state:ok and 3 masters, and every live replica is in sync */
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

const replication = async (node: RedisProcess): Promise<string> => {
  const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    await client.connect()
    return await client.info("replication")
  } finally {
    client.disconnect()
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

export const startRedisCluster = async (
  options: {
    nodeTimeoutMs?: number
    appendonly?: boolean
    /** each node's dir is made in it (default: the OS temp dir) */
    parentDir?: string
    /** every redis-server child, at each (re)start (chaos/procs.ts tracks them) */
    onSpawn?: (child: ChildProcess) => void
    extraArgs?: ReadonlyArray<string>
  } = {}
): Promise<RedisCluster> => {
  const nodes: Array<RedisProcess> = []
  const cleanup = async () => {
    await Promise.all(nodes.map((n) => n.cleanup()))
  }
  try {
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await redisProcess({
          appendonly: options.appendonly ?? true,
          ...(options.parentDir !== undefined ? { parentDir: options.parentDir } : {}),
          ...(options.onSpawn !== undefined ? { onSpawn: options.onSpawn } : {}),
          extraArgs: [
            ...(options.extraArgs ?? []),
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
      replicaOf: async (master) => {
        const text = String(await info(master, "NODES"))
        const lines = text.split("\n").filter((l) => l.trim().length > 0).map((l) => l.split(" "))
        const self = lines.find((f) => f[2]!.includes("myself"))!
        const replica = lines.find((f) => f[2]!.includes("slave") && f[3] === self[0])
        if (replica === undefined) throw new Error(`no replica of 127.0.0.1:${master.port}`)
        const port = Number(replica[1]!.split("@")[0]!.split(":")[1])
        return nodes.find((n) => n.port === port)!
      },
      awaitHealthy: async () => {
        for (let i = 0; i < 600; i++) {
          const states = await Promise.all(nodes.filter(alive).map(async (n) => {
            try {
              const text = String(await info(n, "INFO"))
              if (!(text.includes("cluster_state:ok") && /cluster_size:3\b/.test(text))) return false
              // replicas in sync (a replica still loading its first copy acknowledges no WAIT)
              const repl = await replication(n)
              return repl.includes("role:master") || repl.includes("master_link_status:up")
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
