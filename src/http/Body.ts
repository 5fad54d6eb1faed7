/**
 * Reads a request body of at most `maxBytes` bytes, for the tracking routes.
 */
import { ByteSize, Effect } from "effect"
import { HttpIncomingMessage, type HttpServerError, type HttpServerRequest } from "effect/http"

export type BodyResult = Uint8Array | "too_large" | "unreadable"

/** The body, or why there is none: `too_large` (over `maxBytes`) or `unreadable` (broken stream). */
export const makeBodyReader = (maxBytes: number) => {
  const maxBody = ByteSize.bytes(maxBytes)
  const onFailure = (error: HttpServerError.HttpServerError): BodyResult => {
    const reason = error.reason
    return reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge" ? "too_large" : "unreadable"
  }
  const onSuccess = (buffer: ArrayBuffer): BodyResult => new Uint8Array(buffer)
  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<BodyResult> =>
    request.arrayBuffer.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
      Effect.match({ onFailure, onSuccess })
    )
}
