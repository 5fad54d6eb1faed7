/**
 * Hand-checked copies of the Schema structs that requests and envelopes share, for the fast
 * paths of RequestCheck.ts (collector) and EnvelopeDecode.ts (writer): a valid value copied
 * the way the Schema decodes it — only the Schema's fields, in the Schema's key order, unknown
 * keys dropped — or `undefined` when any field is invalid, so that the caller declines and the
 * Schema decides. Field lists come from the Schemas, so a field added there without a check
 * here turns the copy off (always `undefined`) rather than letting it drift from the Schema.
 * Input comes from `JSON.parse`.
 */
import { AttributionInput, ClientDevice } from "./Envelope.ts"
import { MAX_TEXT, MAX_URL } from "./Limits.ts"

export type Fields = Record<string, unknown>
type Check = (value: unknown) => boolean

export const isRecord = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Schema.Finite */
export const isFinite = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value)
const text: Check = (value) => typeof value === "string" && value.length <= MAX_TEXT
const url: Check = (value) => typeof value === "string" && value.length <= MAX_URL

/** A copier for a struct with the given fields, each checked by its entry in `checks`. */
const structCopier = (fields: ReadonlyArray<string>, checks: Readonly<Record<string, Check>>) => {
  const planned = fields.map((field) => checks[field])
  if (planned.some((check) => check === undefined)) return (_: unknown): Fields | undefined => undefined
  const keys = [...fields]
  const tests = planned as Array<Check>
  return (value: unknown): Fields | undefined => {
    if (!isRecord(value)) return undefined
    const out: Fields = {}
    for (let i = 0; i < keys.length; i++) {
      const field = keys[i]!
      // JSON input: no field name here is inherited from Object.prototype, so an absent field
      // reads as undefined (and JSON has no undefined values)
      const v = value[field]
      if (v === undefined) continue
      if (!tests[i]!(v)) return undefined
      out[field] = v
    }
    return out
  }
}

/** `ClientDevice` (Envelope.ts) */
export const copyClientDevice = structCopier(Object.keys(ClientDevice.fields), {
  screenWidth: isFinite,
  screenHeight: isFinite,
  viewportWidth: isFinite,
  viewportHeight: isFinite,
  pixelRatio: isFinite,
  colorDepth: isFinite,
  language: text,
  languages: (value) => Array.isArray(value) && value.length <= 32 && value.every(text),
  timezone: text,
  timezoneOffset: isFinite,
  deviceMemory: isFinite,
  hardwareConcurrency: isFinite,
  touchPoints: isFinite,
  cookiesEnabled: (value) => typeof value === "boolean",
  doNotTrack: (value) => value === null || typeof value === "boolean" || text(value)
})

/** `AttributionInput` (Envelope.ts) */
export const copyAttribution = structCopier(Object.keys(AttributionInput.fields), {
  utmSource: text,
  utmMedium: text,
  utmCampaign: text,
  utmContent: text,
  utmTerm: text,
  referrer: url
})
