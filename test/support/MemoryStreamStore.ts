/**
 * Test double: an in-memory StreamStore (the same interface as the Redis one) that a
 * test can switch between up, down (every call fails at once, writing nothing), hung (every
 * call never returns and never writes; the queue's command timeout must cut it), late (every
 * call answers `lateMs` later, on the Clock, and a write then lands — a starved Redis) and
 * lost (a write lands but its answer is an error that does not say nothing was written — a
 * connection lost after sending).
 */
import { Effect } from "effect"
import { RedisError } from "../../src/layers/RedisClient.ts"
import { forkWithin, type StreamEntry, type StreamStore } from "../../src/layers/StreamStore.ts"

export type StoreMode = "up" | "down" | "hang" | "late" | "lost"

export interface MemoryStreamStore extends StreamStore {
  mode: StoreMode
  /** how late a call answers in mode "late", ms (default 2000) */
  lateMs: number
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
    lateMs: 2000,
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
    appendWithin: (payloads, withinMs) => forkWithin(store.append(payloads), withinMs),
    appendBoundedWithin: (payloads, max, withinMs) => forkWithin(store.appendBounded(payloads, max), withinMs),
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
  const guard = <A>(effect: Effect.Effect<A>): Effect.Effect<A, RedisError> => {
    switch (store.mode) {
      case "up":
        return effect
      case "down":
        return Effect.fail(new RedisError({ target: name, operation: "call", message: `${name} is down`, notWritten: true }))
      case "hang":
        return Effect.never
      case "late":
        return Effect.andThen(Effect.sleep(store.lateMs), effect)
      case "lost":
        return Effect.andThen(effect, Effect.fail(new RedisError({ target: name, operation: "call", message: `${name}: connection lost` })))
    }
  }
  return store
}
