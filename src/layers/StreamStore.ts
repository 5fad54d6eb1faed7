/**
 * The collector's queue mechanism: one Redis stream per side (primary, spool), each entry
 * holding one encoded envelope (docs/architecture.md, durability). `StreamStore` is the
 * interface the queue uses; `redisStreamStore` is the real one (test/support has an
 * in-memory one that tests make fail or hang). Every XADD Spoolway sends goes through here:
 * the request path, the spool drain and `replay-failures`.
 */
import { Effect, Exit, Fiber } from "effect"
import type { Cluster, Redis } from "ioredis"
import { ENVELOPE_FIELD } from "../domain/Envelope.ts"
import { coalesceWrites, messageOf, provesNotWritten, RedisError } from "./RedisClient.ts"

export interface StreamEntry {
  readonly id: string
  readonly payload: string
}

/**
 * A write that gave no answer within its bound and is still running (not abandoned): `outcome`
 * waits for its real answer — stored (its value) or a RedisError. The collector keeps it so that
 * a slow write that lands is never answered 503 (EventQueue.ts).
 */
export class WritePending<A> {
  readonly _tag = "WritePending"
  readonly outcome: Effect.Effect<A, RedisError>
  constructor(outcome: Effect.Effect<A, RedisError>) {
    this.outcome = outcome
  }
}

export interface StreamStore {
  readonly name: string
  /** Every call of this store already fails (RedisError) after at most this many ms. */
  readonly boundedMs?: number
  /** PING; fails when the server is unreachable. */
  readonly ping: Effect.Effect<void, RedisError>
  /** Appends every payload atomically (MULTI/EXEC): all are stored or none. */
  readonly append: (payloads: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  /**
   * Appends every payload atomically unless the stream would then hold more than
   * `maxLength` entries; `false` (nothing written) when it would.
   */
  readonly appendBounded: (payloads: ReadonlyArray<string>, maxLength: number) => Effect.Effect<boolean, RedisError>
  /** `append`, waiting at most `withinMs` for the answer, then `WritePending` (the write runs on). */
  readonly appendWithin: (payloads: ReadonlyArray<string>, withinMs: number) => Effect.Effect<void | WritePending<void>, RedisError>
  /** `appendBounded`, waiting at most `withinMs` for the answer, then `WritePending`. */
  readonly appendBoundedWithin: (
    payloads: ReadonlyArray<string>,
    maxLength: number,
    withinMs: number
  ) => Effect.Effect<boolean | WritePending<boolean>, RedisError>
  /** The oldest `count` entries, oldest first. */
  readonly head: (count: number) => Effect.Effect<ReadonlyArray<StreamEntry>, RedisError>
  /** Deletes entries by id. */
  readonly remove: (ids: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  readonly length: Effect.Effect<number, RedisError>
}

/** Atomic (a Lua script runs alone) bounded append: all payloads or none. */
const APPEND_BOUNDED = `
local max = tonumber(ARGV[1])
local n = #ARGV - 2
if redis.call('XLEN', KEYS[1]) + n > max then return 0 end
for i = 3, #ARGV do redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i]) end
return 1
`


/**
 * A StreamStore on one stream key of an ioredis client. With `timeoutMs`, every call fails
 * with `timed out after <timeoutMs> ms` once that long passed without an answer — the same
 * error `withTimeout` gives, but with one timer per call instead of a racing fiber (the
 * enqueue of every tracking request goes through here). A timed-out write may still land
 * later; the writer's idempotent insert absorbs that.
 */
export const redisStreamStore = (options: {
  readonly name: string
  /** a Cluster client: `key` must carry a hash tag (every command of the store on one slot) */
  readonly client: Redis | Cluster
  readonly key: string
  readonly timeoutMs?: number
  /**
   * REDIS_MIN_REPLICAS_ACK: an append succeeds only once this many replicas acknowledged it
   * (`WAIT`, or `WAITAOF` — also on their AOF — where the server has it, Redis ≥ 7.2), within
   * `timeoutMs`; fewer is a failure that does not prove nothing was written (→ the spool).
   */
  readonly replicasAck?: { readonly replicas: number; readonly timeoutMs: number }
}): StreamStore => {
  const { client, key, name, replicasAck, timeoutMs } = options
  const failure = (operation: string, cause: unknown) =>
    provesNotWritten(cause)
      ? new RedisError({ target: name, operation, message: messageOf(cause), notWritten: true })
      : new RedisError({ target: name, operation, message: messageOf(cause) })
  /**
   * Runs `f` bounded by `boundMs`: past it, `onLate(promise)` answers (a timeout error, or
   * WritePending around the promise, which runs on).
   */
  const run = <A, B>(
    operation: string,
    f: () => Promise<A>,
    boundMs: number | undefined,
    onLate: (promise: Promise<A>) => Effect.Effect<B, RedisError>
  ): Effect.Effect<A | B, RedisError> =>
    Effect.callback<A | B, RedisError>((resume) => {
      let settled = false
      let timer: ReturnType<typeof setTimeout> | undefined
      let promise: Promise<A>
      const settle = (effect: Effect.Effect<A | B, RedisError>) => {
        if (settled) return
        settled = true
        if (timer !== undefined) clearTimeout(timer)
        resume(effect)
      }
      try {
        coalesceWrites(client)
        promise = f()
      } catch (cause) {
        // thrown before anything was sent
        return settle(Effect.fail(new RedisError({ target: name, operation, message: messageOf(cause), notWritten: true })))
      }
      if (boundMs !== undefined) timer = setTimeout(() => settle(onLate(promise)), boundMs)
      promise.then(
        (value) => settle(Effect.succeed(value)),
        (cause) => settle(Effect.fail(failure(operation, cause)))
      )
    })
  const timedOut = (operation: string) => () =>
    Effect.fail(new RedisError({ target: name, operation, message: `timed out after ${timeoutMs} ms` }))
  const call = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, RedisError> =>
    run(operation, f, timeoutMs, timedOut(operation))
  const within = <A>(operation: string, f: () => Promise<A>, withinMs: number): Effect.Effect<A | WritePending<A>, RedisError> =>
    run(operation, f, withinMs, (promise) =>
      Effect.succeed(
        new WritePending<A>(Effect.tryPromise({ try: () => promise, catch: (cause) => failure(operation, cause) }))
      ))
  // WAITAOF where the server knows it (asked once, on the first replicated append)
  let waitaof: Promise<boolean> | undefined
  const hasWaitaof = () =>
    waitaof ??= Promise.resolve(client.call("COMMAND", "INFO", "WAITAOF")).then(
      (reply) => Array.isArray(reply) && reply[0] !== null && reply[0] !== undefined,
      () => false
    )
  /**
   * The XADDs and then WAIT/WAITAOF in one pipeline: on a Cluster the pipeline goes to the node
   * that owns `key`, and WAIT counts the replicas that have this connection's writes so far.
   */
  const appendReplicated = async (payloads: ReadonlyArray<string>, ack: { readonly replicas: number; readonly timeoutMs: number }) => {
    const aof = await hasWaitaof()
    const pipeline = client.pipeline()
    for (const payload of payloads) pipeline.xadd(key, "*", ENVELOPE_FIELD, payload)
    if (aof) pipeline.call("WAITAOF", 0, ack.replicas, ack.timeoutMs)
    else pipeline.call("WAIT", ack.replicas, ack.timeoutMs)
    const results = await pipeline.exec()
    if (results === null) throw new Error("pipeline aborted")
    const appends = results.slice(0, payloads.length)
    const errors = appends.filter(([err]) => err)
    if (errors.length === appends.length) throw errors[0]![0]
    if (errors.length > 0) throw new Error(`${errors.length} of ${appends.length} appends failed: ${messageOf(errors[0]![0])}`)
    const [waitError, reply] = results[payloads.length]!
    if (waitError) throw new Error(`${aof ? "WAITAOF" : "WAIT"} failed: ${messageOf(waitError)}`)
    const acked = aof ? Number(Array.isArray(reply) ? reply[1] : 0) : Number(reply)
    if (!(acked >= ack.replicas)) {
      throw new Error(`${aof ? "WAITAOF" : "WAIT"}: ${acked} of ${ack.replicas} replica(s) acknowledged within ${ack.timeoutMs} ms`)
    }
  }
  const appendAll = async (payloads: ReadonlyArray<string>) => {
    if (payloads.length === 0) return
    if (replicasAck !== undefined && replicasAck.replicas > 0) return appendReplicated(payloads, replicasAck)
    if (payloads.length === 1) {
      await client.xadd(key, "*", ENVELOPE_FIELD, payloads[0]!)
      return
    }
    const tx = client.multi()
    for (const payload of payloads) tx.xadd(key, "*", ENVELOPE_FIELD, payload)
    const results = await tx.exec()
    if (results === null) throw new Error("transaction aborted")
    // the XADDs share one key: they fail alike (nothing written) or some landed (unknown)
    const errors = results.filter(([err]) => err)
    if (errors.length === results.length) throw errors[0]![0]
    if (errors.length > 0) throw new Error(`${errors.length} of ${results.length} appends failed: ${messageOf(errors[0]![0])}`)
  }
  const appendAllBounded = async (payloads: ReadonlyArray<string>, maxLength: number) => {
    if (payloads.length === 0) return true
    const added = await client.eval(APPEND_BOUNDED, 1, key, maxLength, ENVELOPE_FIELD, ...payloads)
    return added === 1
  }
  return {
    name,
    ...(timeoutMs !== undefined ? { boundedMs: timeoutMs } : {}),
    ping: call("PING", () => client.ping()).pipe(Effect.asVoid),
    append: (payloads) => call("XADD", () => appendAll(payloads)),
    appendBounded: (payloads, maxLength) => call("EVAL", () => appendAllBounded(payloads, maxLength)),
    appendWithin: (payloads, withinMs) => within("XADD", () => appendAll(payloads), withinMs),
    appendBoundedWithin: (payloads, maxLength, withinMs) => within("EVAL", () => appendAllBounded(payloads, maxLength), withinMs),
    head: (count) =>
      call("XRANGE", async () => {
        const rows = await client.xrange(key, "-", "+", "COUNT", count)
        return rows.map(([id, fields]) => ({ id, payload: fieldValue(fields) }))
      }),
    remove: (ids) =>
      call("XDEL", async () => {
        if (ids.length > 0) await client.xdel(key, ...ids)
      }),
    length: call("XLEN", () => client.xlen(key))
  }
}

/**
 * Bounds every call of `store` by `timeoutMs` (a hung server must not hang requests).
 * A timed-out write may still land later; the writer's idempotent insert absorbs that.
 */
export const withTimeout = (store: StreamStore, timeoutMs: number): StreamStore => {
  if (store.boundedMs !== undefined && store.boundedMs <= timeoutMs) return store
  const bound = <A>(effect: Effect.Effect<A, RedisError>): Effect.Effect<A, RedisError> =>
    Effect.timeoutOrElse(effect, {
      duration: timeoutMs,
      orElse: () => Effect.fail(new RedisError({ target: store.name, operation: "call", message: `timed out after ${timeoutMs} ms` }))
    })
  return {
    name: store.name,
    boundedMs: timeoutMs,
    ping: bound(store.ping),
    append: (payloads) => bound(store.append(payloads)),
    appendBounded: (payloads, max) => bound(store.appendBounded(payloads, max)),
    // these carry their own bound and never abandon the write
    appendWithin: store.appendWithin,
    appendBoundedWithin: store.appendBoundedWithin,
    head: (count) => bound(store.head(count)),
    remove: (ids) => bound(store.remove(ids)),
    length: bound(store.length)
  }
}

/**
 * `effect` bounded by `withinMs` without abandoning it: its result, or WritePending with the
 * still-running fiber's outcome. For stores whose calls are plain Effects (tests); the Redis
 * store does the same with one timer per call.
 */
export const forkWithin = <A>(effect: Effect.Effect<A, RedisError>, withinMs: number): Effect.Effect<A | WritePending<A>, RedisError> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkDetach(effect)
    const first = yield* Effect.timeoutOption(Fiber.await(fiber), withinMs)
    if (first._tag === "None") return new WritePending<A>(Fiber.join(fiber))
    return yield* Exit.isSuccess(first.value) ? Effect.succeed(first.value.value) : Fiber.join(fiber)
  })

/**
 * The envelope of a stream entry's flat [field, value, …] list ("" when missing or not a
 * string): how both the queue and the writer's consumer read an entry.
 */
export const fieldValue = (fields: unknown): string => {
  if (!Array.isArray(fields)) return ""
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === ENVELOPE_FIELD) {
      const value: unknown = fields[i + 1]
      return typeof value === "string" ? value : ""
    }
  }
  return ""
}
