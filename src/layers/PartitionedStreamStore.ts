/**
 * The partitioned event log as one StreamStore (issue 18, docs/scaling.md): every payload goes to
 * the part (stream) its partition names, a call touching several parts runs them concurrently,
 * and it succeeds only when every part succeeded. A write that fails in one part after others
 * stored theirs is a failure that does not prove "nothing written" (RedisError without
 * `notWritten`): the collector then writes the whole batch to the spool, and the parts stored
 * twice are absorbed by the writer's idempotent insert.
 *
 * Only the producer side is partitioned: `append` / `appendWithin` (the request path, the spool
 * drain, `replay-failures`), `ping` (every part answers) and `length` (the sum). The spool is a
 * single stream, so `appendBounded`, `head` and `remove` are refused here.
 */
import { Effect, Exit } from "effect"
import { RedisError } from "./RedisClient.ts"
import { type StreamStore, WritePending } from "./StreamStore.ts"

export interface PartitionedStoreOptions {
  readonly name: string
  /** one store per partition, index = partition */
  readonly parts: ReadonlyArray<StreamStore>
  /** the partition of an encoded envelope */
  readonly partitionOf: (payload: string) => number
}

/** payloads by part, each part's in the order given */
const groupByPart = (payloads: ReadonlyArray<string>, partitionOf: (payload: string) => number) => {
  const groups = new Map<number, Array<string>>()
  for (const payload of payloads) {
    const p = partitionOf(payload)
    const group = groups.get(p)
    if (group === undefined) groups.set(p, [payload])
    else group.push(payload)
  }
  return groups
}

export const partitionedStreamStore = (options: PartitionedStoreOptions): StreamStore => {
  const { name, parts, partitionOf } = options
  const partOf = (payload: string) => Math.min(parts.length - 1, Math.max(0, partitionOf(payload)))

  /** The failure of a multi-part write: "nothing written" only when no part can have written. */
  const combined = (failures: ReadonlyArray<RedisError>, anyStored: boolean) => {
    const notWritten = !anyStored && failures.every((e) => e.notWritten === true)
    const message = `${failures.length} part(s) failed${anyStored ? " (others stored)" : ""}: ${failures[0]!.message}`
    return notWritten
      ? new RedisError({ target: name, operation: "XADD", message, notWritten: true })
      : new RedisError({ target: name, operation: "XADD", message })
  }

  const append = (payloads: ReadonlyArray<string>): Effect.Effect<void, RedisError> => {
    const groups = groupByPart(payloads, partOf)
    if (groups.size <= 1) {
      const [[p, group]] = groups.size === 0 ? [[0, []] as const] : [...groups]
      return parts[p]!.append(group)
    }
    return Effect.all([...groups].map(([p, group]) => Effect.exit(parts[p]!.append(group))), { concurrency: "unbounded" }).pipe(
      Effect.flatMap((exits) => {
        const failures = exits.flatMap((exit) => (Exit.isFailure(exit) ? [failureOf(exit, name)] : []))
        return failures.length === 0 ? Effect.void : Effect.fail(combined(failures, failures.length < exits.length))
      })
    )
  }

  const appendWithin = (payloads: ReadonlyArray<string>, withinMs: number): Effect.Effect<void | WritePending<void>, RedisError> => {
    const groups = groupByPart(payloads, partOf)
    if (groups.size <= 1) {
      const [[p, group]] = groups.size === 0 ? [[0, []] as const] : [...groups]
      return parts[p]!.appendWithin(group, withinMs)
    }
    return Effect.all([...groups].map(([p, group]) => Effect.exit(parts[p]!.appendWithin(group, withinMs))), {
      concurrency: "unbounded"
    }).pipe(
      Effect.flatMap((exits): Effect.Effect<void | WritePending<void>, RedisError> => {
        const failures: Array<RedisError> = []
        const pending: Array<Effect.Effect<void, RedisError>> = []
        let stored = 0
        for (const exit of exits) {
          if (Exit.isFailure(exit)) failures.push(failureOf(exit, name))
          else if (exit.value instanceof WritePending) pending.push(exit.value.outcome)
          else stored++
        }
        // a part failed: the whole write failed, and it may have written if any part stored or is in flight
        if (failures.length > 0) return Effect.fail(combined(failures, stored > 0 || pending.length > 0))
        if (pending.length === 0) return Effect.void
        // every part that answered stored; the rest are in flight: done when all of them are
        return Effect.succeed(
          new WritePending<void>(
            Effect.all(pending.map(Effect.exit), { concurrency: "unbounded" }).pipe(
              Effect.flatMap((late) => {
                const lateFailures = late.flatMap((exit) => (Exit.isFailure(exit) ? [failureOf(exit, name)] : []))
                return lateFailures.length === 0 ? Effect.void : Effect.fail(combined(lateFailures, true))
              })
            )
          )
        )
      })
    )
  }

  const refused = (operation: string) =>
    Effect.fail(new RedisError({ target: name, operation, message: "not supported on the partitioned log", notWritten: true }))

  const length = Effect.all(parts.map((part) => part.length), { concurrency: "unbounded" }).pipe(
    Effect.map((lengths) => lengths.reduce((a, b) => a + b, 0))
  )

  return {
    name,
    // every partition's node answers (a keyed command reaches the node that owns its slot)
    ping: Effect.asVoid(length),
    append,
    appendBounded: () => refused("EVAL"),
    appendWithin,
    appendBoundedWithin: () => refused("EVAL"),
    head: () => refused("XRANGE"),
    remove: () => refused("XDEL"),
    length
  }
}

/** The RedisError of a failed part (a defect or interruption becomes one that proves nothing). */
const failureOf = (exit: Exit.Failure<unknown, RedisError>, name: string): RedisError => {
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") return reason.error
  }
  return new RedisError({ target: name, operation: "XADD", message: "a partition write died" })
}
