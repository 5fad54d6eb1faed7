/**
 * The committed tracker build (tracker/dist) is what a fresh esbuild build gives, and it fits the
 * size budgets: core ≤ 1,000 bytes gzipped, everything enabled ≤ 2,000.
 *
 * Why committed: the collector serves these files, and a production install (`npm ci
 * --omit=dev`, the container image) has no esbuild to build them.
 */
import { readdirSync, readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { buildTracker, DIST, FEATURES, featureCosts, gzipSize, VARIANTS } from "../tracker/build.ts"
import { trackerFiles } from "../src/http/TrackerRoute.ts"

const committed = (file: string) => readFileSync(DIST + file, "utf8")

describe("tracker build", () => {
  it("every committed variant is exactly a fresh build (else: npm run build:tracker, and commit)", () => {
    for (const [file, features] of Object.entries(VARIANTS)) {
      expect(committed(file), `tracker/dist/${file} is stale: run npm run build:tracker`).toBe(buildTracker(features))
    }
  })

  it("dist holds the variants and nothing else, and the collector serves each of them", () => {
    expect(readdirSync(DIST).sort()).toEqual(Object.keys(VARIANTS).sort())
    expect(trackerFiles("/sw.js").map(([, file]) => file).sort()).toEqual(Object.keys(VARIANTS).sort())
  })

  it("core (page views + SPA) is at most 1,000 bytes gzipped", () => {
    const size = gzipSize(committed("core.js"))
    console.log(`tracker core: ${size} bytes gzipped`)
    expect(size).toBeLessThanOrEqual(1000)
  })

  it("everything enabled is at most 2,000 bytes gzipped", () => {
    const size = gzipSize(committed("full.js"))
    console.log(`tracker full: ${size} bytes gzipped`)
    expect(VARIANTS["full.js"]).toEqual(FEATURES)
    expect(size).toBeLessThanOrEqual(2000)
  })

  it("each feature is compiled out of the variants without it", () => {
    const core = committed("core.js")
    // a string only each feature's code holds
    const marker = { ENGAGEMENT: "engagedMs", OUTBOUND: "outbound", DOWNLOAD: "pdf,", API: "conversionType" } as const
    for (const feature of FEATURES) {
      expect(core, feature).not.toContain(marker[feature])
      expect(committed("full.js"), feature).toContain(marker[feature])
      expect(featureCosts().find((c) => c.feature === feature)!.onCore).toBeGreaterThan(0)
    }
  })

  it("the script stores nothing on the device and sends no session id", () => {
    for (const file of Object.keys(VARIANTS)) {
      const code = committed(file)
      expect(code).not.toMatch(/cookie|sessionStorage|setItem|indexedDB|sessionId/)
      // localStorage is only read: the opt-out flag
      expect(code.match(/localStorage[^}]*/g)).toEqual(['localStorage.spoolway_ignore=="true"'])
    }
  })
})
