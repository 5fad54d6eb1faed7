/**
 * Turns schema failures into the 400 body of the tracking API (docs/api.md):
 * `{"error":"invalid_request","issues":[{"path":[…],"message":"…"}]}`.
 */
import { Schema, SchemaIssue } from "effect"

export interface FieldIssue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  issues: Schema.Array(Schema.Struct({ path: Schema.Array(Schema.Union([Schema.String, Schema.Number])), message: Schema.String }))
}) {}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const segment = (key: unknown): string | number => {
  const k = typeof key === "object" && key !== null && "key" in key ? (key as { key: unknown }).key : key
  return typeof k === "number" ? k : String(k)
}

export const issuesOf = (issue: SchemaIssue.Issue): ReadonlyArray<FieldIssue> =>
  formatter(issue).issues.map((i) => ({ path: (i.path ?? []).map(segment), message: i.message }))

export const invalid = (path: ReadonlyArray<string | number>, message: string) =>
  new InvalidRequest({ issues: [{ path: [...path], message }] })
