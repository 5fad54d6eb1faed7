/**
 * WRITER_GROUP_BY_SITE (docs/scaling.md): a batch read from the stream is written as one
 * transaction per site, so that on a PostgreSQL distributed by site (Citus) every transaction
 * touches one shard. Pure; the writer's intake (programs/WriterIntake.ts) applies it.
 *
 * The site of an entry is the one the collector admitted it for (`edge.site`), else the host of
 * its Origin, else of its page URL — the same inputs the writer's tenant resolution starts
 * from; entries with none of them (and entries that do not parse: poison) form one group.
 * Grouping changes which entries share a transaction, never what is stored.
 */
import type { BatchEntry } from "./Batch.ts"

const hostOf = (url: unknown): string | undefined => {
  if (typeof url !== "string") return undefined
  const start = url.indexOf("//")
  if (start < 0) return undefined
  const rest = url.slice(start + 2)
  const end = rest.search(/[/?#]/)
  return (end < 0 ? rest : rest.slice(0, end)).toLowerCase()
}

/** The site key of an encoded envelope ("" when it has none or does not parse). */
export const siteKeyOfPayload = (payload: string): string => {
  try {
    const envelope = JSON.parse(payload) as {
      edge?: { site?: unknown; headers?: { origin?: unknown } }
      payload?: { pageUrl?: unknown }
    }
    if (typeof envelope.edge?.site === "number") return `#${envelope.edge.site}`
    return hostOf(envelope.edge?.headers?.origin) ?? hostOf(envelope.payload?.pageUrl) ?? ""
  } catch {
    return ""
  }
}

/** `entries` split by site: groups in order of first appearance, each in stream order. */
export const groupBySite = (entries: ReadonlyArray<BatchEntry>): Array<ReadonlyArray<BatchEntry>> => {
  const groups = new Map<string, Array<BatchEntry>>()
  for (const entry of entries) {
    const key = siteKeyOfPayload(entry.payload)
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [entry])
    else group.push(entry)
  }
  return [...groups.values()]
}
