/**
 * The queue mechanism of SPEC §4: one Redis stream per side. `StreamStore` is the
 * interface the programs use; `redisStreamStore` is the real one and
 * `memoryStreamStore` an in-memory one that tests can make fail or hang.
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import { StoreError } from "../domain/Errors.ts"
import { ENVELOPE_FIELD } from "../domain/Envelope.ts"
import { coalesceWrites } from "./RedisClient.ts"

export interface StreamEntry {
  readonly id: string
  readonly payload: string
}

export interface StreamStore {
  readonly name: string
  /** Every call of this store already fails (StoreError) after at most this many ms. */
  readonly boundedMs?: number
  /** PING; fails when the server is unreachable. */
  readonly ping: Effect.Effect<void, StoreError>
  /** Appends every payload atomically (MULTI/EXEC): all are stored or none. */
  readonly append: (payloads: ReadonlyArray<string>) => Effect.Effect<void, StoreError>
  /**
   * Appends every payload atomically unless the stream would then hold more than
   * `maxLength` entries; `false` (nothing written) when it would.
   */
  readonly appendBounded: (payloads: ReadonlyArray<string>, maxLength: number) => Effect.Effect<boolean, StoreError>
  /** The oldest `count` entries, oldest first. */
  readonly head: (count: number) => Effect.Effect<ReadonlyArray<StreamEntry>, StoreError>
  /** Deletes entries by id. */
  readonly remove: (ids: ReadonlyArray<string>) => Effect.Effect<void, StoreError>
  readonly length: Effect.Effect<number, StoreError>
}

/** Atomic (a Lua script runs alone) bounded append: all payloads or none. */
const APPEND_BOUNDED = `
local max = tonumber(ARGV[1])
local n = #ARGV - 2
if redis.call('XLEN', KEYS[1]) + n > max then return 0 end
for i = 3, #ARGV do redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i]) end
return 1
`

const toStoreError = (store: string) => (cause: unknown) =>
  new StoreError({ store, message: cause instanceof Error ? cause.message : String(cause) })

/**
 * A StreamStore on one stream key of an ioredis client. With `timeoutMs`, every call fails
 * with `timed out after <timeoutMs> ms` once that long passed without an answer — the same
 * error `withTimeout` gives, but with one timer per call instead of a racing fiber (the
 * enqueue of every tracking request goes through here). A timed-out write may still land
 * later; the writer's idempotent insert absorbs that.
 */
export const redisStreamStore = (options: {
  readonly name: string
  readonly client: Redis
  readonly key: string
  readonly timeoutMs?: number
}): StreamStore => {
  const { client, key, name, timeoutMs } = options
  const onError = toStoreError(name)
  const call = <A>(f: () => Promise<A>): Effect.Effect<A, StoreError> =>
    Effect.callback<A, StoreError>((resume) => {
      let settled = false
      let timer: ReturnType<typeof setTimeout> | undefined
      const settle = (effect: Effect.Effect<A, StoreError>) => {
        if (settled) return
        settled = true
        if (timer !== undefined) clearTimeout(timer)
        resume(effect)
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => settle(Effect.fail(new StoreError({ store: name, message: `timed out after ${timeoutMs} ms` }))), timeoutMs)
      }
      let promise: Promise<A>
      try {
        coalesceWrites(client)
        promise = f()
      } catch (cause) {
        return settle(Effect.fail(onError(cause)))
      }
      promise.then((value) => settle(Effect.succeed(value)), (cause) => settle(Effect.fail(onError(cause))))
    })
  return {
    name,
    ...(timeoutMs !== undefined ? { boundedMs: timeoutMs } : {}),
    ping: call(() => client.ping()).pipe(Effect.asVoid),
    append: (payloads) =>
      call(async () => {
        if (payloads.length === 0) return
        if (payloads.length === 1) {
          await client.xadd(key, "*", ENVELOPE_FIELD, payloads[0]!)
          return
        }
        const tx = client.multi()
        for (const payload of payloads) tx.xadd(key, "*", ENVELOPE_FIELD, payload)
        const results = await tx.exec()
        if (results === null) throw new Error("transaction aborted")
        for (const [err] of results) if (err) throw err
      }),
    appendBounded: (payloads, maxLength) =>
      call(async () => {
        if (payloads.length === 0) return true
        const added = await client.eval(APPEND_BOUNDED, 1, key, maxLength, ENVELOPE_FIELD, ...payloads)
        return added === 1
      }),
    head: (count) =>
      call(async () => {
        const rows = await client.xrange(key, "-", "+", "COUNT", count)
        return rows.map(([id, fields]) => ({ id, payload: fieldValue(fields) }))
      }),
    remove: (ids) =>
      call(async () => {
        if (ids.length > 0) await client.xdel(key, ...ids)
      }),
    length: call(() => client.xlen(key))
  }
}

/**
 * Bounds every call of `store` by `timeoutMs` (a hung server must not hang requests).
 * A timed-out write may still land later; the writer's idempotent insert absorbs that.
 */
export const withTimeout = (store: StreamStore, timeoutMs: number): StreamStore => {
  if (store.boundedMs !== undefined && store.boundedMs <= timeoutMs) return store
  const bound = <A>(effect: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError> =>
    Effect.timeoutOrElse(effect, {
      duration: timeoutMs,
      orElse: () => Effect.fail(new StoreError({ store: store.name, message: `timed out after ${timeoutMs} ms` }))
    })
  return {
    name: store.name,
    boundedMs: timeoutMs,
    ping: bound(store.ping),
    append: (payloads) => bound(store.append(payloads)),
    appendBounded: (payloads, max) => bound(store.appendBounded(payloads, max)),
    head: (count) => bound(store.head(count)),
    remove: (ids) => bound(store.remove(ids)),
    length: bound(store.length)
  }
}

/** The envelope field of a stream entry's flat [field, value, …] list ("" when missing). */
export const fieldValue = (fields: ReadonlyArray<string>): string => {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === ENVELOPE_FIELD) return fields[i + 1] ?? ""
  }
  return ""
}
