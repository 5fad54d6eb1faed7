/**
 * Parameter encoding of the PostgreSQL sink's statements: every multi-row statement takes
 * one binary array per column (`unnest($1::uuid[], …)`), so a batch is one round trip per
 * table whatever its size. Values PostgreSQL cannot hold are made storable here (NUL in text
 * and jsonb) rather than failing the batch; what still cannot be encoded fails the batch
 * permanently (`ParamsOrError`).
 */
import { PgTypes } from "@effect/sql-pg"
import { Result } from "effect"

/** PostgreSQL text cannot hold NUL characters. */
export const noNul = (text: string): string => (text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text)
export const noNulOrNull = (text: string | null | undefined): string | null => (text == null ? null : noNul(text))

class ParameterError extends Error {}

export const arrayOf = (values: ReadonlyArray<unknown>, oid: number): PgTypes.Parameter => {
  const result = PgTypes.array(values, oid)
  if (Result.isFailure(result)) throw new ParameterError(result.failure.message)
  return result.success
}
export const textArray = (values: ReadonlyArray<string | null>) => arrayOf(values, PgTypes.OID.text)
export const uuidArray = (values: ReadonlyArray<string>) => arrayOf(values, PgTypes.OID.uuid)
export const int4Array = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.int4)
export const int8Array = (values: ReadonlyArray<number>) => arrayOf(values.map((v) => BigInt(Math.round(v))), PgTypes.OID.int8)
export const int8OrNullArray = (values: ReadonlyArray<number | null>) =>
  arrayOf(values.map((v) => (v === null ? null : BigInt(Math.round(v)))), PgTypes.OID.int8)
export const float8Array = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.float8)
export const boolArray = (values: ReadonlyArray<boolean | null>) => arrayOf(values, PgTypes.OID.bool)
export const byteaArray = (values: ReadonlyArray<Uint8Array | null>) => arrayOf(values, PgTypes.OID.bytea)
export const tsArray = (values: ReadonlyArray<number | null>) => arrayOf(values, PgTypes.OID.timestamptz)

export type Params = ReadonlyArray<unknown>
/** Parameters, or the reason they cannot be encoded (a permanent failure of the batch). */
export type ParamsOrError = { readonly params: Params } | { readonly error: string }

export const tryParams = (build: () => Params): ParamsOrError => {
  try {
    return { params: build() }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) }
  }
}

export const metadataJson = (metadata: Readonly<Record<string, unknown>> | null): string | null => {
  if (metadata === null) return null
  const json = JSON.stringify(metadata)
  // jsonb cannot hold U+0000 (escaped or not)
  return json.includes("\\u0000")
    ? JSON.stringify(metadata, (_k, v) => (typeof v === "string" ? noNul(v) : v)).replaceAll("\\u0000", "\\ufffd")
    : json
}

export const finite = (value: number | undefined): number | null => (value !== undefined && Number.isFinite(value) ? value : null)
