/** GET TRACKER_PATH: the collector serves the committed tracker build, cacheable and compressed. */
import { request } from "node:http"
import { readFileSync } from "node:fs"
import { brotliDecompressSync, gunzipSync } from "node:zlib"
import { Cause, Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CACHE_CONTROL, chooseEncoding, etagMatches, TrackerRoute, trackerFiles } from "../src/http/TrackerRoute.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"
import { type RunningCollector, startCollector } from "./support/collector.ts"

const dist = (file: string) => readFileSync(new URL(`../tracker/dist/${file}`, import.meta.url))

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly body: Buffer
}

/** A request with exactly these headers (fetch would add its own Accept-Encoding). */
const get = (base: string, path: string, headers: Record<string, string> = {}, method = "GET") =>
  new Promise<Answer>((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("error", reject)
    req.end()
  })

describe("content negotiation", () => {
  it("brotli, else gzip, else identity; q=0 refuses a coding; * stands for the unlisted ones", () => {
    expect(chooseEncoding(undefined)).toBe("identity")
    expect(chooseEncoding("")).toBe("identity")
    expect(chooseEncoding("gzip, deflate")).toBe("gzip")
    expect(chooseEncoding("gzip, deflate, br, zstd")).toBe("br")
    expect(chooseEncoding("br;q=0, gzip")).toBe("gzip")
    expect(chooseEncoding("BR;Q=0.5")).toBe("br")
    expect(chooseEncoding("gzip;q=0")).toBe("identity")
    expect(chooseEncoding("*")).toBe("br")
    expect(chooseEncoding("br;q=0, *;q=0.1")).toBe("gzip")
    expect(chooseEncoding("deflate, identity")).toBe("identity")
    expect(chooseEncoding("gzip;q=abc")).toBe("identity")
  })

  it("If-None-Match: any listed tag, weak or strong, or *", () => {
    expect(etagMatches(undefined, `"a"`)).toBe(false)
    expect(etagMatches(`"a"`, `"a"`)).toBe(true)
    expect(etagMatches(`W/"a"`, `"a"`)).toBe(true)
    expect(etagMatches(`"x", "a"`, `"a"`)).toBe(true)
    expect(etagMatches(`*`, `"a"`)).toBe(true)
    expect(etagMatches(`"a-gz"`, `"a"`)).toBe(false)
    expect(etagMatches(`a`, `"a"`)).toBe(false)
  })

  it("the full variant sits beside the core one", () => {
    expect(trackerFiles("/sw.js")).toEqual([["/sw.js", "core.js"], ["/sw.full.js", "full.js"]])
    expect(trackerFiles("/js/a.b.js")).toEqual([["/js/a.b.js", "core.js"], ["/js/a.b.full.js", "full.js"]])
    expect(trackerFiles("/t")).toEqual([["/t", "core.js"], ["/t.full", "full.js"]])
  })
})

describe("the collector serves the tracker", () => {
  let collector: RunningCollector
  beforeAll(async () => {
    collector = await startCollector()
  })
  afterAll(() => collector?.close())

  it("at /sw.js: the core build, with long-lived caching, an ETag and safe headers", async () => {
    const res = await get(collector.baseUrl, "/sw.js")
    expect(res.status).toBe(200)
    expect(res.body.equals(dist("core.js"))).toBe(true)
    expect(res.headers).toMatchObject({
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": CACHE_CONTROL,
      vary: "Accept-Encoding",
      "x-content-type-options": "nosniff",
      "cross-origin-resource-policy": "cross-origin",
      "content-length": String(dist("core.js").length)
    })
    expect(res.headers["etag"]).toMatch(/^"[\w-]{22}"$/)
    expect(res.headers["content-encoding"]).toBeUndefined()
  })

  it("compressed when the client accepts it, each encoding with its own ETag", async () => {
    const plain = await get(collector.baseUrl, "/sw.js")
    const gz = await get(collector.baseUrl, "/sw.js", { "accept-encoding": "gzip, deflate" })
    const br = await get(collector.baseUrl, "/sw.js", { "accept-encoding": "gzip, deflate, br" })
    expect(gz.headers["content-encoding"]).toBe("gzip")
    expect(gunzipSync(gz.body).equals(dist("core.js"))).toBe(true)
    expect(gz.body.length).toBeLessThanOrEqual(1000)
    expect(br.headers["content-encoding"]).toBe("br")
    expect(brotliDecompressSync(br.body).equals(dist("core.js"))).toBe(true)
    expect(new Set([plain.headers["etag"], gz.headers["etag"], br.headers["etag"]]).size).toBe(3)
  })

  it("If-None-Match with the current ETag: 304 without a body, same caching headers", async () => {
    const first = await get(collector.baseUrl, "/sw.js", { "accept-encoding": "gzip" })
    const etag = first.headers["etag"] as string
    for (const ifNoneMatch of [etag, `W/${etag}`, `"old", ${etag}`, "*"]) {
      const again = await get(collector.baseUrl, "/sw.js", { "accept-encoding": "gzip", "if-none-match": ifNoneMatch })
      expect(again.status, ifNoneMatch).toBe(304)
      expect(again.body.length).toBe(0)
      expect(again.headers["etag"]).toBe(etag)
      expect(again.headers["cache-control"]).toBe(CACHE_CONTROL)
    }
    // another version's tag, or the tag of another encoding: the script again
    for (const ifNoneMatch of [`"stale-version"`, etag.replace("-gz", "-br")]) {
      const changed = await get(collector.baseUrl, "/sw.js", { "accept-encoding": "gzip", "if-none-match": ifNoneMatch })
      expect(changed.status, ifNoneMatch).toBe(200)
      expect(gunzipSync(changed.body).equals(dist("core.js"))).toBe(true)
    }
  })

  it("HEAD: the headers without the body", async () => {
    const res = await get(collector.baseUrl, "/sw.js", {}, "HEAD")
    expect(res.status).toBe(200)
    expect(res.body.length).toBe(0)
    expect(res.headers["etag"]).toMatch(/^"[\w-]{22}"$/)
  })

  it("the full variant at /sw.full.js", async () => {
    const res = await get(collector.baseUrl, "/sw.full.js")
    expect(res.status).toBe(200)
    expect(res.body.equals(dist("full.js"))).toBe(true)
    expect(res.headers["etag"]).not.toBe((await get(collector.baseUrl, "/sw.js")).headers["etag"])
  })
})

describe("TRACKER_PATH", () => {
  it("moves both variants; the default path is then free", async () => {
    const collector = await startCollector({ trackerPath: "/assets/p.js" })
    try {
      expect((await get(collector.baseUrl, "/assets/p.js")).body.equals(dist("core.js"))).toBe(true)
      expect((await get(collector.baseUrl, "/assets/p.full.js")).body.equals(dist("full.js"))).toBe(true)
      expect((await get(collector.baseUrl, "/sw.js")).status).toBe(404)
    } finally {
      await collector.close()
    }
  })

  it("a path that is not absolute, or under /track/, stops the start with a clear message", async () => {
    for (const trackerPath of ["sw.js", "/track/sw.js"]) {
      const routes = TrackerRoute.pipe(Layer.provide(HttpRouter.layer), Layer.provide(AppConfig.layerWith({ trackerPath })))
      const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(routes)))
      expect(String(exit._tag === "Failure" && Cause.squash(exit.cause))).toMatch(/TRACKER_PATH must be a path starting with "\/" outside \/track\//)
    }
  })
})
