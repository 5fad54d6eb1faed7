/**
 * String caps of the tracking API (docs/api.md), shared by the request and envelope schemas so both
 * sides of the collector → writer contract enforce the same bounds.
 */
import { Schema } from "effect"

export const MAX_ID = 128
export const MAX_URL = 4096
export const MAX_EVENT_TYPE = 100
/** Free-text attribute fields without a cap of their own (utm values, labels). */
export const MAX_TEXT = 512
export const MAX_METADATA_BYTES = 16 * 1024

/** A string of 1..`max` characters. */
export const boundedId = (max: number = MAX_ID) =>
  Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(max))

/** A string of at most `max` characters (may be empty). */
export const boundedText = (max: number) => Schema.String.check(Schema.isMaxLength(max))

export const Id = boundedId(MAX_ID)

/** Server-assigned session ids start with it (domain/Visits.ts); a client's may not. */
export const SERVER_SESSION_PREFIX = "~"

/**
 * A session id sent by a client: an {@link Id} that does not start with "~" (the prefix of
 * the ids the writer assigns to events sent without one, so the two never collide).
 */
export const ClientSessionId = Id.check(
  Schema.makeFilter((s: string) =>
    s.startsWith(SERVER_SESSION_PREFIX) ? `must not start with "${SERVER_SESSION_PREFIX}" (reserved for server-assigned sessions)` : undefined
  )
).pipe(Schema.annotate({
  description:
    "Optional. Without it the server assigns the session: same site, same daily visitor, less than 30 minutes since that visitor's last event. May not start with \"~\"."
}))
export const Url = boundedText(MAX_URL)
export const EventType = boundedId(MAX_EVENT_TYPE)
export const Text = boundedText(MAX_TEXT)

/** Serialized size in bytes, or undefined when the value cannot be serialized (too deep). */
export const serializedSize = (value: unknown): number | undefined => {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? "", "utf8")
  } catch {
    // JSON.parse accepts nesting deeper than JSON.stringify's stack allows; never throw from a filter
    return undefined
  }
}

/** A JSON object whose serialized form is at most 16 KiB. */
export const Metadata = Schema.Record(Schema.String, Schema.Unknown).check(
  Schema.makeFilter((value) => {
    const size = serializedSize(value)
    if (size === undefined) return "metadata is nested too deeply"
    return size <= MAX_METADATA_BYTES ? undefined : `metadata must serialize to at most ${MAX_METADATA_BYTES} bytes`
  })
)
export type Metadata = typeof Metadata.Type

export const FiniteNumber = Schema.Finite
/** Timestamps: numbers are epoch milliseconds; strings are parsed as dates (unparseable → absent). */
export const TimestampInput = Schema.Union([Schema.Finite, boundedText(64)])
