/**
 * The chaos load generator, a child process forked by the harness (IPC channel):
 * `concurrency` keep-alive HTTP loops paced to `rate` requests/s in total (no catch-up burst
 * beyond 50 ms after a stall), the mix of chaos/workload.ts, every request recorded — phase,
 * kind, events, status, latency, Retry-After, returned eventId — and written as JSON columns
 * to `out` when told to stop. Only 127.0.0.1.
 *
 * Messages in:  {type:"start", ports, rate, concurrency, tag, seed, out} · {type:"phase", phase}
 *               {type:"stop"}
 * Messages out: {type:"stats", …cumulative counters} every second · {type:"done", requests}
 */
import { writeFileSync } from "node:fs"
import { Agent, request } from "node:http"
import { KINDS, planRequest, prng } from "./workload.ts"

export interface StartMessage {
  readonly type: "start"
  /** the collectors' ports: connection loop i sends to ports[i % ports.length] */
  readonly ports: ReadonlyArray<number>
  readonly rate: number
  readonly concurrency: number
  readonly tag: string
  readonly seed: number
  readonly out: string
}

export interface LoadStats {
  readonly type: "stats"
  readonly sent: number
  readonly answered: number
  readonly s2xx: number
  readonly s4xx: number
  readonly s503: number
  /** 5xx other than 503, and 503 without a valid Retry-After */
  readonly s5xxBad: number
  readonly netErrors: number
  readonly inflight: number
}

/** The columns written to `out` (index = request seq). */
export interface LoadColumns {
  readonly tag: string
  readonly startedAt: number
  /** ms since startedAt when the request was sent */
  readonly at: Array<number>
  readonly phase: Array<number>
  readonly kind: Array<number>
  readonly events: Array<number>
  /** HTTP status; 0 = no answer (connection refused / reset / timeout) */
  readonly status: Array<number>
  readonly latencyMs: Array<number>
  /** bit 0: invalid on purpose · 1: Retry-After valid · 2: 2xx body as the contract says · 3: connection refused · 4: single */
  readonly flags: Array<number>
  /** the eventId of a single event's 202, else "" */
  readonly eventId: Array<string>
  /** network error code or a short note, else "" */
  readonly note: Array<string>
}

export const FLAG_INVALID = 1
export const FLAG_RETRY_AFTER = 2
export const FLAG_BODY_OK = 4
export const FLAG_REFUSED = 8
export const FLAG_SINGLE = 16

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const main = () => {
  let phase = 0
  let stopping = false
  let started = false

  const run = async (cfg: StartMessage) => {
    const startedAt = Date.now()
    const cols: LoadColumns = {
      tag: cfg.tag,
      startedAt,
      at: [],
      phase: [],
      kind: [],
      events: [],
      status: [],
      latencyMs: [],
      flags: [],
      eventId: [],
      note: []
    }
    const stats = { sent: 0, answered: 0, s2xx: 0, s4xx: 0, s503: 0, s5xxBad: 0, netErrors: 0, inflight: 0 }
    const agent = new Agent({ keepAlive: true, maxSockets: cfg.concurrency, maxFreeSockets: cfg.concurrency })
    const rand = prng(cfg.seed)
    const interval = 1000 / cfg.rate
    let nextSlot = performance.now()
    let seq = 0

    const statsTimer = setInterval(() => process.send?.({ type: "stats", ...stats } satisfies LoadStats), 1000)

    const once = (seqNo: number, port: number) =>
      new Promise<void>((resolve) => {
        const planned = planRequest(rand, cfg.tag, seqNo)
        const kindCode = KINDS.indexOf(planned.kind)
        const sentAt = performance.now()
        cols.at[seqNo] = Date.now() - startedAt
        cols.phase[seqNo] = phase
        cols.kind[seqNo] = kindCode
        cols.events[seqNo] = planned.events
        cols.status[seqNo] = 0
        cols.latencyMs[seqNo] = 0
        cols.flags[seqNo] = (planned.invalid ? FLAG_INVALID : 0) | (planned.single ? FLAG_SINGLE : 0)
        cols.eventId[seqNo] = ""
        cols.note[seqNo] = ""
        stats.sent++
        stats.inflight++
        let done = false
        const finish = (status: number, flags: number, eventId: string, note: string) => {
          if (done) return
          done = true
          stats.inflight--
          cols.status[seqNo] = status
          cols.latencyMs[seqNo] = Math.round((performance.now() - sentAt) * 100) / 100
          cols.flags[seqNo] = cols.flags[seqNo]! | flags
          cols.eventId[seqNo] = eventId
          cols.note[seqNo] = note
          if (status === 0) stats.netErrors++
          else {
            stats.answered++
            if (status >= 200 && status < 300) stats.s2xx++
            else if (status >= 400 && status < 500) stats.s4xx++
            else if (status === 503 && (flags & FLAG_RETRY_AFTER) !== 0) stats.s503++
            else if (status >= 500) stats.s5xxBad++
          }
          resolve()
        }
        const body = Buffer.from(planned.body)
        const req = request({
          host: "127.0.0.1",
          port,
          method: "POST",
          path: planned.path,
          agent,
          headers: { ...planned.headers, "content-type": planned.contentType, "content-length": body.length }
        }, (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c: Buffer) => chunks.push(c))
          res.on("error", (e) => finish(0, 0, "", `response: ${(e as NodeJS.ErrnoException).code ?? e.message}`))
          res.on("end", () => {
            const status = res.statusCode ?? 0
            let flags = 0
            let eventId = ""
            let note = ""
            const text = Buffer.concat(chunks).toString("utf8")
            if (status >= 200 && status < 300) {
              try {
                const parsed = JSON.parse(text) as { success?: unknown; eventId?: unknown; count?: unknown }
                if (planned.single) {
                  if (parsed.success === true && typeof parsed.eventId === "string" && UUID.test(parsed.eventId)) {
                    flags |= FLAG_BODY_OK
                    eventId = parsed.eventId.toLowerCase()
                  } else note = `bad 2xx body: ${text.slice(0, 120)}`
                } else if (parsed.success === true && parsed.count === planned.events) flags |= FLAG_BODY_OK
                else note = `bad 2xx body: ${text.slice(0, 120)}`
              } catch {
                note = `bad 2xx body: ${text.slice(0, 120)}`
              }
            } else if (status >= 500) {
              const retryAfter = res.headers["retry-after"]
              if (typeof retryAfter === "string" && /^[1-9][0-9]*$/.test(retryAfter.trim())) flags |= FLAG_RETRY_AFTER
              note = text.slice(0, 160)
            } else if (status >= 400 && !planned.invalid) note = text.slice(0, 160)
            finish(status, flags, eventId, note)
          })
        })
        req.setTimeout(20_000, () => req.destroy(Object.assign(new Error("client timeout"), { code: "CLIENT_TIMEOUT" })))
        req.on("error", (e: NodeJS.ErrnoException) => {
          const code = e.code ?? e.message
          finish(0, code === "ECONNREFUSED" ? FLAG_REFUSED : 0, "", code)
        })
        req.end(body)
      })

    const loop = async (_: unknown, connection: number) => {
      const port = cfg.ports[connection % cfg.ports.length]!
      while (!stopping) {
        const now = performance.now()
        // pace: one slot per `interval`; after a stall, at most 50 ms of catch-up
        const slot = Math.max(nextSlot, now - 50)
        nextSlot = slot + interval
        if (slot > now) await sleep(slot - now)
        if (stopping) break
        const s = seq++
        await once(s, port)
        if (cols.status[s] === 0) await sleep(20) // collector restarting: do not spin
      }
    }

    await Promise.all(Array.from({ length: cfg.concurrency }, loop))
    clearInterval(statsTimer)
    agent.destroy()
    writeFileSync(cfg.out, JSON.stringify(cols))
    process.send?.({ type: "stats", ...stats } satisfies LoadStats)
    process.send?.({ type: "done", requests: seq })
  }

  process.on("message", (msg: { readonly type: string; readonly phase?: number }) => {
    if (msg.type === "start" && !started) {
      started = true
      run(msg as unknown as StartMessage).then(
        () => setTimeout(() => process.exit(0), 50),
        (e) => {
          console.error(e)
          process.exit(1)
        }
      )
    } else if (msg.type === "phase" && typeof msg.phase === "number") phase = msg.phase
    else if (msg.type === "stop") stopping = true
  })
  // the harness went away: stop at once
  process.on("disconnect", () => process.exit(2))
}

if (process.send !== undefined) main()
