import { HttpServerResponse } from "effect/http"
import type { FieldIssue } from "../domain/Validation.ts"

export const json = (status: number, body: unknown, headers?: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json", ...(headers ? { headers } : {}) })

export const errorResponse = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  json(status, { error, message }, headers)

export const invalidResponse = (issues: ReadonlyArray<FieldIssue>) => json(400, { error: "invalid_request", issues })

const acceptedOptions = { status: 202, contentType: "application/json" } as const

const acceptedOptionsWith = (headers: Readonly<Record<string, string>> | undefined) =>
  headers === undefined ? acceptedOptions : { ...acceptedOptions, headers }

/**
 * `202 {"success":true,"eventId":"…"}` — the bytes `json(202, { success: true, eventId })` gives,
 * without the intermediate object (hot path; an eventId is a UUID, nothing to escape). `headers`
 * (CORS) are built into the response at once: adding them afterwards copies it.
 */
export const accepted = (eventId: string, headers?: Readonly<Record<string, string>>) =>
  HttpServerResponse.text(`{"success":true,"eventId":"${eventId}"}`, acceptedOptionsWith(headers))

/** `202 {"success":true,"count":n}` */
export const batchAccepted = (count: number, headers?: Readonly<Record<string, string>>) =>
  HttpServerResponse.text(`{"success":true,"count":${count}}`, acceptedOptionsWith(headers))
