/**
 * Test double: an in-memory StreamStore (the same interface as the Redis one) that a
 * test can switch between up, down (every call fails at once) and hung (every call
 * never returns; the queue's command timeout must cut it).
 */
import { Effect } from "effect"
import { RedisError } from "../../src/layers/RedisClient.ts"
import type { StreamEntry, StreamStore } from "../../src/layers/StreamStore.ts"

export type StoreMode = "up" | "down" | "hang"

export interface MemoryStreamStore extends StreamStore {
  mode: StoreMode
  /** the stored entries, oldest first */
  readonly entries: Array<StreamEntry>
  /** every payload ever appended, in order (survives removal) */
  readonly appended: Array<string>
}

export const memoryStreamStore = (name: string): MemoryStreamStore => {
  let seq = 0
  const store: MemoryStreamStore = {
    name,
    mode: "up",
    entries: [],
    appended: [],
    ping: Effect.suspend(() => guard(Effect.void)),
    append: (payloads) =>
      Effect.suspend(() =>
        guard(Effect.sync(() => {
          for (const payload of payloads) add(payload)
        }))
      ),
    appendBounded: (payloads, max) =>
      Effect.suspend(() =>
        guard(Effect.sync(() => {
          if (store.entries.length + payloads.length > max) return false
          for (const payload of payloads) add(payload)
          return true
        }))
      ),
    head: (count) => Effect.suspend(() => guard(Effect.sync(() => store.entries.slice(0, count)))),
    remove: (ids) =>
      Effect.suspend(() =>
        guard(Effect.sync(() => {
          const drop = new Set(ids)
          for (let i = store.entries.length - 1; i >= 0; i--) if (drop.has(store.entries[i]!.id)) store.entries.splice(i, 1)
        }))
      ),
    length: Effect.suspend(() => guard(Effect.sync(() => store.entries.length)))
  }
  const add = (payload: string) => {
    store.entries.push({ id: `0-${++seq}`, payload })
    store.appended.push(payload)
  }
  const guard = <A>(effect: Effect.Effect<A>): Effect.Effect<A, RedisError> =>
    store.mode === "up"
      ? effect
      : store.mode === "down"
      ? Effect.fail(new RedisError({ target: name, operation: "call", message: `${name} is down` }))
      : Effect.never
  return store
}
