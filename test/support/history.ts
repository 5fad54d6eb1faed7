/**
 * Random event histories for the property tests that go through the real writer
 * (test/stats-prop.test.ts, test/visits-prop.test.ts, test/stats-rollups.test.ts): 1–40 items, each an event of one of a few
 * sessions on one of four pages at a 30 s step of the day, delivered 1–3 times at random
 * positions of the stream; and the writing of such a stream through a writer.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Schema } from "effect"
import type { RawEventEnvelope } from "../../src/domain/Envelope.ts"
import { makeWriter } from "../../src/programs/Writer.ts"
import { cleanupKeys, domainFor, streamKeys, xadd } from "../writerSupport.ts"

export const T0 = Date.parse("2026-05-02T08:00:00.000Z")
/** two visitors' addresses: GB and SE in the test geo table (writerSupport.ts GEO_TABLE) */
export const IPS = ["81.2.69.160", "89.160.20.112"] as const

export const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/**
 * A random history: 1–40 items of sessions 0 … `sessions - 1`, each with a page (0–3), a step
 * (0–100, 30 s each from T0, so equal times are common) and its delivery positions (`ranks`, one
 * per copy), plus the test's own `fields` (which may replace these, e.g. a longer `step` range).
 */
export const historyOf = <const Fields extends Schema.Struct.Fields>(sessions: number, fields: Fields) =>
  Schema.Array(Schema.Struct({
    session: int(0, sessions - 1),
    page: int(0, 3),
    step: int(0, 100),
    ranks: Schema.Array(int(0, 500)).check(Schema.isMinLength(1), Schema.isMaxLength(3)),
    ...fields
  })).check(Schema.isMinLength(1), Schema.isMaxLength(40))

export interface HistoryEvent {
  readonly id: string
  readonly session: number
  readonly page: string
  readonly at: number
  readonly ranks: ReadonlyArray<number>
}

/** An item's event: a new id, its page path (`/p0` …) and time. */
export const historyEvent = (item: { readonly session: number; readonly page: number; readonly step: number; readonly ranks: ReadonlyArray<number> }): HistoryEvent => ({
  id: randomUUID(),
  session: item.session,
  page: `/p${item.page}`,
  at: T0 + item.step * 30_000,
  ranks: item.ranks
})

/** Every copy of every event, in delivery (rank) order. */
export const deliveries = <E extends { readonly ranks: ReadonlyArray<number> }>(events: ReadonlyArray<E>): Array<E> =>
  events
    .flatMap((e) => e.ranks.map((rank) => ({ rank, e })))
    .sort((a, b) => a.rank - b.rank)
    .map(({ e }) => e)

/**
 * Puts the envelopes on a new stream and drains it with a writer, `batchSize` events a batch and two
 * transactions in flight: on the test layer's PostgreSQL sink, or on the services of `on` (a memory sink).
 */
export const writeThroughWriter = <R = never>(
  name: string,
  envelopes: ReadonlyArray<RawEventEnvelope>,
  batchSize: number,
  on?: Context.Context<R>
) =>
  Effect.gen(function*() {
    const keys = streamKeys(name)
    yield* cleanupKeys(keys.streamKey)
    yield* xadd(keys.streamKey, envelopes)
    const make = makeWriter({ ...keys, consumer: `${name}-writer`, batchSize, transactions: 2 })
    const writer = yield* (on === undefined ? make : Effect.provide(make, on))
    yield* writer.drain
  })

/** A new registered site, and the envelopes made for its origin written through the writer (see {@link writeThroughWriter}). */
export const writeForNewSite = (name: string, batchSize: number, envelopesFor: (origin: string) => ReadonlyArray<RawEventEnvelope>) =>
  Effect.gen(function*() {
    const site = yield* domainFor(name)
    yield* writeThroughWriter(name, envelopesFor(site.origin), batchSize)
    return site
  })
