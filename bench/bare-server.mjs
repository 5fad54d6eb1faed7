// The baseline for bench/collector.ts: a bare node:http server that only reads the
// body and XADDs it (one field "e") to a Redis stream, answering 202 once Redis
// acknowledged — no validation, no envelope, no framework. Env: PORT, HOST, REDIS_URL, STREAM_KEY.
import { createServer } from "node:http"
import { Redis } from "ioredis"

const port = Number(process.env.PORT ?? 8788)
const host = process.env.HOST ?? "127.0.0.1"
const key = process.env.STREAM_KEY ?? "bench:bare:events"
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 0 })
redis.on("error", () => {})

const server = createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(redis.status === "ready" ? 200 : 503, { "content-type": "application/json" })
    res.end(JSON.stringify({ status: redis.status }))
    return
  }
  const chunks = []
  req.on("data", (c) => chunks.push(c))
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8")
    redis.xadd(key, "*", "e", body).then(
      () => {
        res.writeHead(202, { "content-type": "application/json" })
        res.end('{"success":true}')
      },
      () => {
        res.writeHead(503, { "content-type": "application/json" })
        res.end('{"success":false}')
      }
    )
  })
})

server.listen(port, host, () => console.log(`bare server on http://${host}:${port} → ${key}`))

const stop = () => {
  server.close()
  redis.disconnect()
  setTimeout(() => process.exit(0), 200).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
