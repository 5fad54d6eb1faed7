/**
 * Session lanes (docs/architecture.md, writer): a batch read from the stream is written as up to
 * `lanes` transactions (WRITER_TRANSACTIONS, the writes one writer keeps in flight), split by a
 * hash of each entry's session, so that the writes in flight touch disjoint sessions.
 *
 * Why: consecutive reads share most of their visits (a visit's events arrive over minutes, a
 * read covers a fraction of a second at a high rate). Two transactions in flight on consecutive
 * reads therefore wait for each other on the first shared session row (`session_fingerprints`,
 * early in the transaction), and the second ran only once the first had committed. Split by
 * session, they share only rollup rows (an hour's totals, popular values), which each statement
 * writes after its own rows: they run side by side up to there.
 *
 * The lane key of an entry is its `sessionId`; without one (the writer assigns the visit from
 * site + daily visitor id), its client IP, so a visitor's events stay together; with neither
 * (or an entry that is not an envelope: poison), the empty key — lane 0. It is read from the
 * encoded envelope with a pattern rather than a JSON parse (the prepare stage parses every entry
 * anyway, after the split): a key it misses only puts an entry in another lane. Lanes change
 * which entries share a transaction, never what is stored. Pure; the writer's intake
 * (programs/WriterIntake.ts) applies it.
 */
import type { BatchEntry } from "./Batch.ts"
import { partitionOf } from "./Partition.ts"

const SESSION_ID = /"sessionId"\s*:\s*"((?:[^"\\]|\\.)*)"/
const CLIENT_IP = /"ip"\s*:\s*"((?:[^"\\]|\\.)*)"/

/** The lane key of an encoded envelope: its sessionId, else its client IP, else "". */
export const laneKeyOfPayload = (payload: string): string =>
  SESSION_ID.exec(payload)?.[1] ?? CLIENT_IP.exec(payload)?.[1] ?? ""

/** The lane of an encoded envelope among `lanes`: its key hashed as the event log's partitions are (domain/Partition.ts). */
export const laneOfPayload = (payload: string, lanes: number): number => partitionOf(laneKeyOfPayload(payload), lanes)

/**
 * `entries` split into at most `lanes` groups by lane key (one entry's session always in one
 * group): the non-empty groups in lane order, each in stream order.
 */
export const splitIntoLanes = (entries: ReadonlyArray<BatchEntry>, lanes: number): Array<ReadonlyArray<BatchEntry>> => {
  if (lanes <= 1 || entries.length < 2) return entries.length === 0 ? [] : [entries]
  const groups: Array<Array<BatchEntry>> = Array.from({ length: lanes }, () => [])
  for (const entry of entries) groups[laneOfPayload(entry.payload, lanes)]!.push(entry)
  return groups.filter((group) => group.length > 0)
}
