/**
 * Sink: where the writer stores its batches — the seam between the sink-neutral writer (the
 * prepare stage and the loop, src/programs) and a store. Implementations:
 * - PgSink.ts: PostgreSQL, one transaction per batch (the production sink);
 * - MemorySink.ts: in memory, with the same exactly-once rules and injectable failures (tests).
 *
 * The contract every sink keeps (docs/architecture.md, writer):
 * - `write` is atomic: all of the batch is stored or nothing is, and it returns only once what
 *   it stored is durable (the writer acknowledges the entries after it);
 * - it is idempotent per event key (eventId, receivedAt): an event stored before is a duplicate
 *   and changes nothing — no row, no rollup, no session, no visitor;
 * - it fails with a `BatchWriteError` saying whether a retry of the same batch can succeed
 *   (`transient`) or the data itself is refused (permanent: the writer splits the batch to
 *   isolate the entry and keeps that entry as poison);
 * - several writers (and several writes of one writer, up to WRITER_TRANSACTIONS) may write at
 *   once: a sink orders its locks so that they never deadlock.
 *
 * `stage` is the sink's own CPU work for a batch (PostgreSQL: statement parameters, sorted
 * rows), run ahead while the previous batches are being written; what it computes is opaque
 * to the writer (`plan`). Adding a sink means a new Layer of this service, nothing in the writer.
 * New kinds of rows (visits, network columns) arrive in `PreparedBatch` (domain/Batch.ts) and
 * each sink stores them in its `write`.
 */
import { Context, Effect, Schema } from "effect"
import type { PreparedBatch, WriteResult } from "../domain/Batch.ts"

/** A batch could not be written. `transient` → retry the same batch later. */
export class BatchWriteError extends Schema.TaggedError<BatchWriteError>()("BatchWriteError", {
  message: Schema.String,
  transient: Schema.Boolean,
  cause: Schema.Defect()
}) {}

/** A prepared batch with the sink's own work for it, done ahead (opaque outside its sink). */
export interface StagedBatch {
  readonly batch: PreparedBatch
  readonly plan: unknown
}

export class Sink extends Context.Service<Sink, {
  /** for logs and health ("postgres", "memory") */
  readonly name: string
  /** The sink's work ahead of the write (outside any transaction); yields between slices. */
  stage(batch: PreparedBatch): Effect.Effect<StagedBatch>
  /** Stores the batch atomically (see above); may be retried with the same staged batch. */
  write(staged: StagedBatch): Effect.Effect<WriteResult, BatchWriteError>
  /** When the writer starts: what the store needs before the first write (partitions ahead). */
  ready(nowMs: number): Effect.Effect<void, BatchWriteError>
  /** Hourly: the store's housekeeping (partitions ahead, retention of raw events). */
  maintain(options: { readonly nowMs: number; readonly retentionDays: number }): Effect.Effect<void, BatchWriteError>
}>()("spoolway/layers/Sink") {}

/** A sink's `stage` for a batch with nothing to plan (no events). */
export const unplanned = (batch: PreparedBatch): Effect.Effect<StagedBatch> => Effect.succeed({ batch, plan: undefined })
