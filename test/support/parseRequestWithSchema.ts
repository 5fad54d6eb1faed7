/**
 * `parseRequest` without the hand-checked fast paths: the same shape check, then the Schema
 * only. The request-check tests hold the fast paths to it.
 */
import type { EventKind, NormalizedEvent } from "../../src/domain/Envelope.ts"
import { checkShape, decodeChecked } from "../../src/domain/ParseRequest.ts"
import type { InvalidRequest } from "../../src/domain/Validation.ts"

export const parseRequestWithSchema = (
  kind: EventKind,
  body: unknown,
  maxBatchEvents: number
): ReadonlyArray<NormalizedEvent> | InvalidRequest => checkShape(kind, body, maxBatchEvents) ?? decodeChecked(kind, body)
