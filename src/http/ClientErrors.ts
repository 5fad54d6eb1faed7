/**
 * Requests Node's HTTP parser rejects before any route sees them (bad framing, headers too
 * large, an idle request timing out) get a JSON error body like every other 4xx, and never cost
 * an earlier request on the same connection its answer.
 *
 * Node's default `clientError` handling writes a bodiless `400` straight onto the socket and
 * destroys it — also when a request read earlier from the same keep-alive connection is still
 * being answered. With pipelining (a valid event followed by garbage in one write) that lost the
 * event's `202` although the event was stored, and a client that retries would store a twin.
 * Here the error answer waits until the response in flight has been written, then closes the
 * connection (the parser cannot continue after a framing error).
 */
import type { Server, ServerResponse } from "node:http"
import type { Socket } from "node:net"

/** How long an error answer waits for the response in flight before the socket is dropped. */
const IN_FLIGHT_WAIT_MS = 15_000

const answerFor = (code: string | undefined): { status: number; reason: string; error: string; message: string } => {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, reason: "Request Header Fields Too Large", error: "headers_too_large", message: "request headers too large" }
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, reason: "Payload Too Large", error: "payload_too_large", message: "chunk extensions too large" }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, reason: "Request Timeout", error: "request_timeout", message: "the request was not received in time" }
    default:
      return { status: 400, reason: "Bad Request", error: "bad_request", message: "malformed HTTP request" }
  }
}

/** The raw bytes of the error answer (the socket is closed after it). */
export const clientErrorAnswer = (code: string | undefined): string => {
  const { status, reason, error, message } = answerFor(code)
  const body = JSON.stringify({ error, message })
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}

/** The response Node is writing on this socket, if any (`socket._httpMessage`, set while a response is attached). */
const inFlightResponse = (socket: Socket): ServerResponse | undefined => {
  const message = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  return message != null && !message.writableFinished ? message : undefined
}

const onClientError = (error: Error & { code?: string }, socket: Socket) => {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy()
    return
  }
  const answer = () => {
    if (socket.writable) socket.end(clientErrorAnswer(error.code))
    else socket.destroy()
  }
  const pending = inFlightResponse(socket)
  if (pending === undefined) {
    answer()
    return
  }
  // answer after the earlier request's response is on the wire; give up on a response that
  // never completes (the handler is bounded by the Redis timeouts, so this is a safety net)
  const timer = setTimeout(() => socket.destroy(), IN_FLIGHT_WAIT_MS)
  timer.unref()
  pending.once("finish", () => {
    clearTimeout(timer)
    answer()
  })
  pending.once("close", () => {
    clearTimeout(timer)
    if (!pending.writableFinished) socket.destroy()
  })
}

/** Installs the handler on a Node HTTP server (before it listens); returns the server. */
export const handleClientErrors = <S extends Server>(server: S): S => {
  server.on("clientError", onClientError)
  return server
}
