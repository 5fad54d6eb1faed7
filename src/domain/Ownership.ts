/**
 * Which writer owns which partition of the event log (issue 18, docs/scaling.md). Pure:
 * rendezvous (highest random weight) hashing — the owner of partition `p` is the live writer
 * whose hash of (writer, p) is highest. Every writer computes the same answer from the same
 * list of live writers, without talking to the others; when a writer joins or leaves, only the
 * partitions it gains or loses move.
 *
 * Ownership is about spreading the work and keeping one visit's events in one writer; it is not
 * what makes a write safe: two writers that briefly both read one partition (while they disagree
 * on who is live) share its consumer group, which hands each entry to one of them, and the
 * idempotent insert absorbs a redelivery.
 */
import { hash32 } from "./Partition.ts"

/** The weight of `writer` for `partition`. */
const weight = (writer: string, partition: number) => hash32(`${writer}\u0000${partition}`)

/** The owner of `partition` among `writers` (undefined when there is none). */
export const ownerOf = (partition: number, writers: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestWeight = -1
  for (const writer of writers) {
    const w = weight(writer, partition)
    // ties (astronomically rare) go to the smaller name, so every writer agrees
    if (w > bestWeight || (w === bestWeight && best !== undefined && writer < best)) {
      best = writer
      bestWeight = w
    }
  }
  return best
}

/** The partitions (0 … partitions − 1) that `me` owns among the live `writers`, ascending. */
export const ownedPartitions = (me: string, partitions: number, writers: ReadonlyArray<string>): Array<number> => {
  const live = writers.includes(me) ? writers : [...writers, me]
  const owned: Array<number> = []
  for (let p = 0; p < partitions; p++) if (ownerOf(p, live) === me) owned.push(p)
  return owned
}
