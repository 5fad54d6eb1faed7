import { HttpServerResponse } from "effect/http"
import type { FieldIssue } from "../domain/Validation.ts"

export const json = (status: number, body: unknown, headers?: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json", ...(headers ? { headers } : {}) })

export const errorResponse = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  json(status, { error, message }, headers)

export const invalidResponse = (issues: ReadonlyArray<FieldIssue>) => json(400, { error: "invalid_request", issues })
