/**
 * Reads a request body of at most `maxBytes` bytes, for the tracking routes.
 *
 * Fast path (every plain HTTP/1.1 request): listen on Node's `IncomingMessage` directly.
 * `request.arrayBuffer` runs the read in a cached child fiber with `finished()` and a
 * provided MaxBodySize — ≈ 10 % of a tracking request's CPU and allocation. Requests with
 * `Expect` or `Upgrade` headers, and non-Node requests, take `request.arrayBuffer` (the
 * platform answers 100-continue there). Both behave alike: over the limit the rest of the
 * body is drained and discarded (the 413 can still be answered on the connection); a
 * stream that fails or closes early is `unreadable`.
 */
import { IncomingMessage } from "node:http"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { ByteSize, Effect } from "effect"
import { HttpIncomingMessage, type HttpServerError, type HttpServerRequest } from "effect/http"

export type BodyResult = Uint8Array | "too_large" | "unreadable"

const tooLarge = Effect.succeed<BodyResult>("too_large")
const unreadable = Effect.succeed<BodyResult>("unreadable")
const ignore = () => {}

const readIncoming = (source: IncomingMessage, maxBytes: number): Effect.Effect<BodyResult> =>
  Effect.callback<BodyResult>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    const detach = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.off("close", onClose)
    }
    function onData(chunk: Buffer) {
      bytes += chunk.length
      if (bytes > maxBytes) {
        detach()
        // drain: keep the stream flowing into nothing; a late error must not go unhandled
        source.on("error", ignore)
        source.resume()
        return resume(tooLarge)
      }
      chunks.push(chunk)
    }
    function onEnd() {
      detach()
      resume(Effect.succeed(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes)))
    }
    function onError() {
      detach()
      source.on("error", ignore)
      resume(unreadable)
    }
    function onClose() {
      // closed before the end: the client went away mid-body
      detach()
      resume(unreadable)
    }
    if (source.readableEnded || source.destroyed) return resume(unreadable)
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    source.on("close", onClose)
  })

/** The body, or why there is none: `too_large` (over `maxBytes`) or `unreadable` (broken stream). */
export const makeBodyReader = (maxBytes: number) => {
  const maxBody = ByteSize.bytes(maxBytes)
  const onFailure = (error: HttpServerError.HttpServerError): BodyResult => {
    const reason = error.reason
    return reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge" ? "too_large" : "unreadable"
  }
  const onSuccess = (buffer: ArrayBuffer): BodyResult => new Uint8Array(buffer)
  const viaPlatform = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<BodyResult> =>
    request.arrayBuffer.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
      Effect.match({ onFailure, onSuccess })
    )
  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<BodyResult> => {
    const source = NodeHttpServerRequest.toIncomingMessage(request) as unknown
    if (source instanceof IncomingMessage && source.headers.expect === undefined && source.headers.upgrade === undefined) {
      return readIncoming(source, maxBytes)
    }
    return viaPlatform(request)
  }
}
