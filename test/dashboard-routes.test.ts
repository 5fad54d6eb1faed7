/**
 * The dashboard's static files (src/http/DashboardRoutes.ts): the page shell at `/` and
 * `/sites/…`, its modules and uPlot, compressed, revalidated by ETag, every answer with a CSP
 * that allows no inline script and no other origin; the JS + CSS shipped stays within 150 KB
 * gzipped; nothing outside the dashboard's files is served.
 */
import { createServer, request } from "node:http"
import { readdirSync, readFileSync } from "node:fs"
import { gunzipSync } from "node:zlib"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CONTENT_SECURITY_POLICY, DashboardRoutes } from "../src/http/DashboardRoutes.ts"
import { AppConfig } from "../src/layers/AppConfig.ts"

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly body: Buffer
}

const get = (base: string, path: string, headers: Record<string, string> = {}) =>
  new Promise<Answer>((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("error", reject)
    req.end()
  })

const DIR = new URL("../dashboard/", import.meta.url)

let scope: Scope.Closeable
let base: string

beforeAll(async () => {
  const app = HttpRouter.serve(DashboardRoutes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(AppConfig.layerWith({ trackerPath: "/js/t.js" }))
  )
  scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(app, scope))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
  base = `http://127.0.0.1:${address.port}`
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

describe("the dashboard's routes", () => {
  it("the page shell at /, /sites/<hostname> and its pages, with the CSP and the tracker's path", async () => {
    for (const path of ["/", "/sites/shop.example", "/sites/shop.example/traffic?country=DE"]) {
      const res = await get(base, path)
      expect(res.status, path).toBe(200)
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8")
      expect(res.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY)
      expect(res.headers).toMatchObject({ "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY" })
      const html = res.body.toString()
      expect(html).toContain(`<meta name="spoolway-tracker" content="/js/t.js">`)
      expect(html).toContain(`<script type="module" src="/dashboard/app.js"></script>`)
      // no inline script: every <script> has a src
      expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull()
    }
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'")
    expect(CONTENT_SECURITY_POLICY).toContain("connect-src 'self'")
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe")
  })

  it("every module and stylesheet, and uPlot from node_modules; gzip when accepted; 304 on a matching ETag", async () => {
    const files = readdirSync(DIR).filter((f) => /\.(js|css)$/.test(f))
    expect(files).toEqual(expect.arrayContaining(["app.js", "api.js", "state.js", "ui.js", "chart.js", "pages.js", "style.css"]))
    for (const file of files) {
      const res = await get(base, `/dashboard/${file}`)
      expect(res.status, file).toBe(200)
      expect(res.body.equals(readFileSync(new URL(file, DIR))), file).toBe(true)
      expect(res.headers["content-type"]).toBe(file.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8")
    }
    const uplot = await get(base, "/dashboard/vendor/uPlot.iife.min.js", { "accept-encoding": "gzip" })
    expect(uplot.status).toBe(200)
    expect(uplot.headers["content-encoding"]).toBe("gzip")
    expect(gunzipSync(uplot.body).toString()).toContain("uPlot")
    const again = await get(base, "/dashboard/vendor/uPlot.iife.min.js", { "accept-encoding": "gzip", "if-none-match": uplot.headers["etag"] as string })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    expect((await get(base, "/dashboard/vendor/uPlot.min.css")).status).toBe(200)
  })

  it("JS + CSS shipped: at most 150 KB gzipped", async () => {
    const paths = [
      ...readdirSync(DIR).filter((f) => /\.(js|css)$/.test(f)).map((f) => `/dashboard/${f}`),
      "/dashboard/vendor/uPlot.iife.min.js",
      "/dashboard/vendor/uPlot.min.css",
      "/"
    ]
    let total = 0
    for (const path of paths) total += (await get(base, path, { "accept-encoding": "gzip" })).body.length
    expect(total).toBeLessThanOrEqual(150 * 1024)
  })

  it("nothing else: other files, traversal and unknown paths are 404", async () => {
    for (
      const path of [
        "/dashboard/index.html",
        "/dashboard/../package.json",
        "/dashboard/%2e%2e/package.json",
        "/dashboard/vendor/uPlot.esm.js",
        "/dashboard/nope.js",
        "/dashboard/"
      ]
    ) {
      expect((await get(base, path)).status, path).toBe(404)
    }
  })
})
