/**
 * A minimal HTTP/1.1 client over raw `node:net` sockets, so the fuzzer can send bytes
 * fetch/undici would refuse (CR/LF in header values, duplicate framing headers, broken
 * chunking, lying Content-Length) and still read every answer the server gives.
 *
 * `Connection` keeps one socket alive across well-formed requests; "fresh" exchanges get
 * their own socket, closed afterwards. Responses are framed by Content-Length, chunked
 * transfer coding, or the server closing the connection; 1xx answers are skipped.
 */
import { connect, type Socket } from "node:net"

export interface HttpResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
}

export interface Exchange {
  readonly responses: ReadonlyArray<HttpResponse>
  /** "timeout" | "reset" | "closed-early" | "bad-response: …" when the exchange did not complete cleanly */
  readonly error?: string
  /** the server closed the connection (after or instead of answering) */
  readonly closed: boolean
  readonly ms: number
}

export interface ExchangeOptions {
  /** non-1xx responses to wait for; 0 = unknown (read until close, or until `idleMs` pass after one arrived) */
  readonly responses: number
  readonly timeoutMs: number
  /** with `responses: 0`: stop this long after the last complete response (default 300 ms) */
  readonly idleMs?: number
}

type Parsed = { readonly response: HttpResponse; readonly consumed: number } | "incomplete" | { readonly error: string }

const HEADER_END = Buffer.from("\r\n\r\n")

/** Parses one response from the start of `data`; `eof` = no more bytes will come. */
export const parseResponse = (data: Buffer, eof: boolean): Parsed => {
  const end = data.indexOf(HEADER_END)
  if (end < 0) return eof && data.length > 0 ? { error: `truncated head: ${JSON.stringify(data.subarray(0, 80).toString("latin1"))}` } : "incomplete"
  const head = data.subarray(0, end).toString("latin1").split("\r\n")
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "")
  if (m === null) return { error: `bad status line: ${JSON.stringify(head[0])}` }
  const status = Number(m[1])
  const headers: Record<string, string> = {}
  for (const line of head.slice(1)) {
    const colon = line.indexOf(":")
    if (colon <= 0) return { error: `bad header line: ${JSON.stringify(line)}` }
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  const start = end + 4
  if ((status >= 100 && status < 200) || status === 204 || status === 304) {
    return { response: { status, headers, body: Buffer.alloc(0) }, consumed: start }
  }
  const te = headers["transfer-encoding"]
  if (te !== undefined && te.toLowerCase().includes("chunked")) {
    const parts: Array<Buffer> = []
    let pos = start
    for (;;) {
      const lineEnd = data.indexOf("\r\n", pos)
      if (lineEnd < 0) return eof ? { error: "truncated chunked body" } : "incomplete"
      const size = parseInt(data.subarray(pos, lineEnd).toString("latin1").split(";")[0]!.trim(), 16)
      if (!Number.isFinite(size) || size < 0) return { error: "bad chunk size in response" }
      pos = lineEnd + 2
      if (size === 0) {
        // trailers until an empty line
        for (;;) {
          const tEnd = data.indexOf("\r\n", pos)
          if (tEnd < 0) return eof ? { error: "truncated trailers" } : "incomplete"
          const empty = tEnd === pos
          pos = tEnd + 2
          if (empty) return { response: { status, headers, body: Buffer.concat(parts) }, consumed: pos }
        }
      }
      if (data.length < pos + size + 2) return eof ? { error: "truncated chunk" } : "incomplete"
      parts.push(data.subarray(pos, pos + size))
      pos += size + 2
    }
  }
  const cl = headers["content-length"]
  if (cl !== undefined) {
    const n = Number(cl)
    if (!Number.isSafeInteger(n) || n < 0) return { error: `bad content-length in response: ${cl}` }
    if (data.length < start + n) return eof ? { error: "truncated body" } : "incomplete"
    return { response: { status, headers, body: Buffer.from(data.subarray(start, start + n)) }, consumed: start + n }
  }
  // no framing: the body runs to the end of the connection
  if (!eof) return "incomplete"
  return { response: { status, headers, body: Buffer.from(data.subarray(start)) }, consumed: data.length }
}

/** One TCP connection; exchanges run one at a time. */
export class Connection {
  readonly socket: Socket
  private data: Buffer = Buffer.alloc(0)
  private eof = false
  private socketError: string | undefined
  private wake: (() => void) | undefined
  lastUsed = Date.now()

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on("data", (chunk: Buffer) => {
      this.data = this.data.length === 0 ? chunk : Buffer.concat([this.data, chunk])
      this.poke()
    })
    socket.on("end", () => {
      this.eof = true
      this.poke()
    })
    socket.on("close", () => {
      this.eof = true
      this.poke()
    })
    socket.on("error", (e: NodeJS.ErrnoException) => {
      this.socketError = e.code ?? e.message
      this.eof = true
      this.poke()
    })
  }

  static open(port: number, host = "127.0.0.1", timeoutMs = 5000): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`connect to ${host}:${port} timed out`))
      }, timeoutMs)
      socket.once("connect", () => {
        clearTimeout(timer)
        socket.removeAllListeners("error")
        resolve(new Connection(socket))
      })
      socket.once("error", (e) => {
        clearTimeout(timer)
        reject(e)
      })
    })
  }

  get usable(): boolean {
    return !this.eof && !this.socket.destroyed && this.data.length === 0
  }

  private poke() {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  private waitEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined
        resolve()
      }, Math.max(0, ms))
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  /** Writes `bytes` and collects the answers (see ExchangeOptions). */
  async exchange(bytes: Uint8Array, options: ExchangeOptions): Promise<Exchange> {
    const started = Date.now()
    const deadline = started + options.timeoutMs
    const idleMs = options.idleMs ?? 300
    const responses: Array<HttpResponse> = []
    let lastResponseAt = 0
    this.socketError = undefined
    this.socket.write(bytes, (err) => {
      if (err) {
        this.socketError = (err as NodeJS.ErrnoException).code ?? err.message
        this.poke()
      }
    })
    const done = (error?: string): Exchange => {
      this.lastUsed = Date.now()
      const result: Exchange = { responses, closed: this.eof, ms: Date.now() - started }
      return error === undefined ? result : { ...result, error }
    }
    for (;;) {
      // take every complete response that is already buffered
      for (;;) {
        const parsed = parseResponse(this.data, this.eof)
        if (parsed === "incomplete") break
        if ("error" in parsed) {
          if (this.data.length === 0) break
          this.data = Buffer.alloc(0)
          return done(`bad-response: ${parsed.error}`)
        }
        this.data = this.data.subarray(parsed.consumed)
        if (parsed.response.status >= 100 && parsed.response.status < 200) continue
        responses.push(parsed.response)
        lastResponseAt = Date.now()
        if (options.responses > 0 && responses.length >= options.responses) return done()
      }
      if (this.eof) {
        if (options.responses > 0 && responses.length < options.responses) {
          return done(this.socketError !== undefined ? `reset (${this.socketError})` : "closed-early")
        }
        return done()
      }
      const now = Date.now()
      if (now >= deadline) return done("timeout")
      if (options.responses === 0 && responses.length > 0 && now - lastResponseAt >= idleMs) return done()
      const wait = options.responses === 0 && responses.length > 0
        ? Math.min(deadline - now, idleMs - (now - lastResponseAt))
        : deadline - now
      await this.waitEvent(wait)
    }
  }

  close() {
    this.socket.destroy()
  }
}
