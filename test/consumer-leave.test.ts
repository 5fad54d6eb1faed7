/**
 * Leaving the consumer group and pruning dead consumers never strand an entry (real Redis).
 *
 * `XGROUP DELCONSUMER` drops the consumer's pending entries, and the group has already moved
 * past them: an entry delivered to the consumer between a separate "nothing pending?" check and
 * the delete would never be delivered again. That happened in a cluster run: a partition's writer
 * stopped (ownership moved) while its `XREADGROUP … BLOCK` was still waiting on the server; an
 * event arriving then was delivered to it between `leaveGroup`'s XPENDING and DELCONSUMER, and
 * stayed in the stream, delivered, pending nowhere.
 *
 * Each case below runs the operation against a client that lets one delivery happen after its
 * k-th Redis command, for every k, and then checks the entry can still be claimed by another
 * consumer.
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { autoClaim, ensureGroup, leaveGroup, pruneConsumers, type StreamHandles } from "../src/layers/StreamConsumer.ts"
import { uniquePrefix } from "./support/collector.ts"
import { REDIS_URL } from "./support/services.ts"

const clients: Array<Redis> = []
const connect = () => {
  const client = new Redis(REDIS_URL)
  clients.push(client)
  return client
}
let admin: Redis
beforeAll(() => {
  admin = connect()
})
afterAll(() => {
  for (const client of clients) client.disconnect()
})

/**
 * `client`, except that after its `k`-th `call` (0: before the first) it runs `deliver` and waits
 * for it before answering: a delivery landing exactly between two commands of the operation.
 */
const interleaved = (client: Redis, k: number, deliver: () => Promise<unknown>) => {
  let calls = 0
  let delivered = false
  const once = async () => {
    if (delivered) return
    delivered = true
    await deliver()
  }
  const proxy = new Proxy(client, {
    get(target, property, receiver) {
      if (property !== "call") return Reflect.get(target, property, receiver)
      return async (...args: Array<unknown>) => {
        if (calls === k) await once()
        calls++
        const reply = await (target.call as (...a: Array<unknown>) => Promise<unknown>)(...args)
        if (calls === k) await once()
        return reply
      }
    }
  })
  return { client: proxy, after: once }
}

const blockedOn = async (clientId: number) => {
  for (let i = 0; i < 200; i++) {
    const line = String(await admin.call("CLIENT", "LIST", "ID", clientId))
    if (line.includes("cmd=xreadgroup") && /flags=\S*b/.test(line)) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error("the read never blocked")
}

const claimable = async (key: string, group: string) => {
  const taker: StreamHandles = { key, group, consumer: "taker", client: admin, blocking: admin }
  const claimed = await Effect.runPromise(autoClaim(taker, 0, "0-0", 100))
  return claimed.entries.map((e) => e.id)
}

describe("a delivery racing leaveGroup / pruneConsumers", () => {
  for (const k of [0, 1, 2, 3, 4]) {
    it(`leaveGroup, while the leaving consumer's blocked read is served after command ${k}: the entry stays claimable`, async () => {
      const key = `${uniquePrefix("leave")}:events`
      const group = "writers"
      const blocking = connect()
      const producer = connect()
      const base: StreamHandles = { key, group, consumer: "leaving", client: admin, blocking }
      await Effect.runPromise(ensureGroup(base))
      // the leaving writer's read: still blocked on the server, its answer no longer awaited
      const clientId = Number(await blocking.call("CLIENT", "ID"))
      const read = blocking.xreadgroup("GROUP", group, "leaving", "COUNT", 10, "BLOCK", 10_000, "STREAMS", key, ">")
      await blockedOn(clientId)
      let id = ""
      const { client, after } = interleaved(admin, k, async () => {
        id = String(await producer.xadd(key, "*", "e", "1"))
        await read
      })
      await Effect.runPromise(leaveGroup({ ...base, client }))
      await after()
      expect(id).not.toBe("")
      expect(await claimable(key, group)).toEqual([id])
      await admin.del(key)
    })

    it(`pruneConsumers, while the idle consumer reads again after command ${k}: the entry stays claimable`, async () => {
      const key = `${uniquePrefix("prune")}:events`
      const group = "writers"
      const base: StreamHandles = { key, group, consumer: "pruner", client: admin, blocking: admin }
      await Effect.runPromise(ensureGroup(base))
      // a consumer that read nothing for a while: a candidate for pruning
      await admin.call("XGROUP", "CREATECONSUMER", key, group, "comeback")
      await new Promise((r) => setTimeout(r, 60))
      let id = ""
      const { client, after } = interleaved(admin, k, async () => {
        id = String(await admin.xadd(key, "*", "e", "1"))
        // it owns the partition again and reads
        await admin.xreadgroup("GROUP", group, "comeback", "COUNT", 10, "STREAMS", key, ">")
      })
      await Effect.runPromise(pruneConsumers({ ...base, client }, 50))
      await after()
      expect(id).not.toBe("")
      expect(await claimable(key, group)).toEqual([id])
      await admin.del(key)
    })
  }
})
