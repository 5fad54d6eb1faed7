/**
 * Answers that no route produces: requests Node's HTTP parser rejects (src/http/ClientErrors.ts)
 * get a JSON error body and a close — and an event read earlier on the same pipelined connection
 * still gets its 202; a path no route serves gets a JSON 404. Real collector on real Redis, raw
 * sockets (fetch cannot send broken framing).
 */
import { connect } from "node:net"
import { Cause, Context, Effect, Exit, Layer, Logger, Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { primaryStreamKey } from "../src/domain/Streams.ts"
import { serveHttp } from "../src/http/Server.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { type RunningCollector, SHARED_REDIS as REDIS_URL, startCollector } from "./support/collector.ts"
import { Redis } from "ioredis"

interface RawAnswer {
  readonly text: string
  /** the server closed the connection (rather than us timing out) */
  readonly closed: boolean
}

/** Writes `bytes` in one go and collects everything until the server closes (or `waitMs`). */
const exchange = (port: number, bytes: string, waitMs = 3_000) =>
  new Promise<RawAnswer>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1")
    const chunks: Array<Buffer> = []
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: false })
    }, waitMs)
    socket.on("connect", () => socket.write(bytes, "latin1"))
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on("close", () => {
      clearTimeout(timer)
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: true })
    })
  })

/** Splits a byte stream of HTTP/1.1 responses (all with Content-Length) into status + body. */
const responses = (text: string) => {
  const out: Array<{ status: number; headers: string; body: string }> = []
  let rest = text
  while (rest.startsWith("HTTP/1.1 ")) {
    const end = rest.indexOf("\r\n\r\n")
    if (end === -1) break
    const head = rest.slice(0, end)
    const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    out.push({ status: Number(head.slice(9, 12)), headers: head, body: rest.slice(end + 4, end + 4 + length) })
    rest = rest.slice(end + 4 + length)
  }
  return out
}

const eventRequest = (body: string) =>
  `POST /track/event HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`

describe("HTTP framing errors and unknown paths", () => {
  let collector: RunningCollector
  let port: number
  const redis = new Redis(REDIS_URL, { lazyConnect: true })
  beforeAll(async () => {
    collector = await startCollector()
    port = Number(new URL(collector.baseUrl).port)
    await redis.connect()
  })
  afterAll(async () => {
    await redis.del(primaryStreamKey(collector.prefix))
    redis.disconnect()
    await collector.close()
  })

  it("garbage pipelined behind a valid event: the event's 202 arrives first, then a JSON 400, then the close", async () => {
    const body = JSON.stringify({ eventType: "pipelined", sessionId: "pipe-1" })
    const answer = await exchange(port, `${eventRequest(body)}GARBAGE \u0001\r\n\r\n`)
    expect(answer.closed).toBe(true)
    const parsed = responses(answer.text)
    expect(parsed.map((r) => r.status), answer.text).toEqual([202, 400])
    const eventId = (JSON.parse(parsed[0]!.body) as { eventId: string }).eventId
    expect(JSON.parse(parsed[1]!.body)).toEqual({ error: "bad_request", message: "malformed HTTP request" })
    expect(parsed[1]!.headers).toMatch(/connection: close/i)
    // the 202 was honest: the event is in the stream
    const entries = await redis.xrange(primaryStreamKey(collector.prefix), "-", "+")
    expect(entries.some(([, fields]) => fields.join(" ").includes(eventId))).toBe(true)
  })

  it("a malformed request alone gets a JSON 400 and nothing is stored", async () => {
    const before = await redis.xlen(primaryStreamKey(collector.prefix))
    const answer = await exchange(port, "NOT-HTTP\r\n\r\n")
    expect(answer.closed).toBe(true)
    const parsed = responses(answer.text)
    expect(parsed.map((r) => r.status)).toEqual([400])
    expect(parsed[0]!.headers).toMatch(/content-type: application\/json/i)
    expect(JSON.parse(parsed[0]!.body)).toMatchObject({ error: "bad_request" })
    expect(await redis.xlen(primaryStreamKey(collector.prefix))).toBe(before)
  })

  it("headers over Node's limit get a JSON 431", async () => {
    const answer = await exchange(port, `POST /track/event HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`)
    const parsed = responses(answer.text)
    expect(parsed.map((r) => r.status)).toEqual([431])
    expect(JSON.parse(parsed[0]!.body)).toMatchObject({ error: "headers_too_large" })
  })

  it("a path no route serves gets a JSON 404 (and the connection stays usable)", async () => {
    const ok = eventRequest(JSON.stringify({ eventType: "after-404", sessionId: "pipe-4" }))
    const answer = await exchange(port, `GET /no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n${ok}`, 1_500)
    const parsed = responses(answer.text)
    expect(parsed.map((r) => r.status)).toEqual([404, 202])
    expect(parsed[0]!.headers).toMatch(/content-type: application\/json/i)
    expect(JSON.parse(parsed[0]!.body)).toEqual({ error: "not_found", message: "no such endpoint" })
  })

  it("two valid pipelined events both get their 202 (no error path involved)", async () => {
    const a = eventRequest(JSON.stringify({ eventType: "pipelined", sessionId: "pipe-2" }))
    const b = eventRequest(JSON.stringify({ eventType: "pipelined", sessionId: "pipe-3" }))
    const answer = await exchange(port, a + b, 1_500)
    expect(responses(answer.text).map((r) => r.status)).toEqual([202, 202])
  })
})

describe("a defect in a handler", () => {
  it("is answered 500 and logged at ERROR with its cause (the server runs without a request logger)", async () => {
    const logged: Array<{ level: string; message: string; cause: string }> = []
    const capture = Logger.make((options) => {
      logged.push({ level: options.logLevel, message: String(options.message), cause: Cause.pretty(options.cause) })
    })
    const boom = HttpRouter.add("GET", "/boom", Effect.die(new Error("a bug in a handler")))
    const app = serveHttp(boom).pipe(
      Layer.provideMerge(AppConfig.layerWith({ port: 0, host: "127.0.0.1" })),
      Layer.provide(Logger.layer([capture]))
    )
    const scope = await Effect.runPromise(Scope.make())
    try {
      const context = await Effect.runPromise(Layer.buildWithScope(app, scope))
      const address = Context.get(context, HttpServer.HttpServer).address
      if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
      const res = await fetch(`http://127.0.0.1:${address.port}/boom`)
      expect(res.status).toBe(500)
      const errors = logged.filter((l) => l.level === "Error")
      expect(errors.map((l) => l.message)).toEqual(["HTTP request failed with a defect (answered 500)"])
      expect(errors[0]!.cause).toContain("a bug in a handler")
      // an unknown path is still a JSON 404, not a logged defect
      expect((await fetch(`http://127.0.0.1:${address.port}/nothing-here`)).status).toBe(404)
      expect(logged.filter((l) => l.level === "Error")).toHaveLength(1)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})
