/**
 * Leaving a consumer group must never drop an entry (issue 18: partitions change owner under
 * load). A writer that stops a partition interrupts its blocking `XREADGROUP`, but the command
 * stays blocked in Redis and is served by the next `XADD` — the entry then becomes pending for
 * the leaving consumer. If that happens between "does it hold anything?" and `XGROUP
 * DELCONSUMER`, the delete takes the entry's pending record with it: delivered, never
 * acknowledged, claimable by nobody — an accepted event that never reaches raw_events.
 *
 * The test puts the XADD exactly there (after leaveGroup's first command answered) and checks
 * that another consumer can still get the entry.
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import { afterAll, describe, expect, it } from "vitest"
import * as Stream from "../src/layers/StreamConsumer.ts"
import { uniquePrefix } from "./support/collector.ts"
import { REDIS_URL } from "./support/services.ts"

const clients: Array<Redis> = []
const connect = (name: string) => {
  const c = new Redis(REDIS_URL, { connectionName: name })
  clients.push(c)
  return c
}

afterAll(() => {
  for (const c of clients) c.disconnect()
})

/** Waits until the connection named `name` is blocked in XREADGROUP. */
const awaitBlocked = async (admin: Redis, name: string) => {
  for (let i = 0; i < 200; i++) {
    const list = String(await admin.call("CLIENT", "LIST"))
    if (list.split("\n").some((line) => line.includes(` name=${name} `) && /\bflags=\S*b/.test(line) && line.includes("cmd=xreadgroup"))) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`${name} never blocked`)
}

describe("leaving a consumer group while its blocking read is still queued in Redis", () => {
  it("an entry delivered to the leaving consumer at that moment stays claimable by the others", async () => {
    const key = `${uniquePrefix("leave")}:events`
    const group = "writers"
    const tag = Math.random().toString(36).slice(2, 8)
    const blockingName = `leave-blocking-${tag}`
    const admin = connect(`leave-admin-${tag}`)
    const client = connect(`leave-client-${tag}`)
    const blocking = connect(blockingName)
    await admin.call("XGROUP", "CREATE", key, group, "0", "MKSTREAM")

    // the writer loop's last read, interrupted on our side but still blocked in Redis
    const read = blocking.call("XREADGROUP", "GROUP", group, "leaver", "COUNT", "10", "BLOCK", "10000", "STREAMS", key, ">")
    await awaitBlocked(admin, blockingName)

    // after leaveGroup's first command has been answered, an event arrives and is delivered to
    // the blocked read (i.e. becomes pending for "leaver") before leaveGroup goes on
    let injected = false
    const racing = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== "call") return Reflect.get(target, prop, receiver)
        return async (...args: Array<string | number>) => {
          const reply = await target.call(String(args[0]), ...args.slice(1))
          if (!injected) {
            injected = true
            await admin.xadd(key, "*", "e", "accepted-event")
            await read
          }
          return reply
        }
      }
    }) as Redis

    await Effect.runPromise(Stream.leaveGroup({ key, group, consumer: "leaver", client: racing, blocking }))
    expect(injected).toBe(true)

    // another writer must still be able to get it: as new (never delivered) or by claiming it
    const fresh = await admin.call("XREADGROUP", "GROUP", group, "other", "COUNT", "10", "STREAMS", key, ">") as Array<[string, Array<unknown>]> | null
    const claimed = await admin.call("XAUTOCLAIM", key, group, "other", "0", "0-0", "COUNT", "10") as [string, Array<unknown>, ...Array<unknown>]
    const reachable = (fresh?.[0]?.[1]?.length ?? 0) + claimed[1].length
    expect(reachable).toBe(1)
    await admin.del(key)
  })
})
