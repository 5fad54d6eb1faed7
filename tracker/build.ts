/**
 * Builds the tracker variants with esbuild (bundle, minify, one IIFE each).
 *
 * `npm run build:tracker` writes them to tracker/dist, which is committed: the collector serves
 * those files, and a production install (`npm ci --omit=dev`, the container image) has no
 * esbuild to build them with. test/tracker-build.test.ts fails when a committed file differs
 * from a fresh build, and checks the size budgets.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"
import { buildSync } from "esbuild"

/** Compile-time features (the constants declared in src/main.ts). */
export const FEATURES = ["ENGAGEMENT", "OUTBOUND", "DOWNLOAD", "API"] as const
export type Feature = typeof FEATURES[number]

/** The shipped variants: dist file → its features (docs/tracker.md says which path serves which). */
export const VARIANTS = {
  /** page views, SPA navigation, bfcache restores, UTM, referrer, device fields, opt-outs */
  "core.js": [],
  /** core + engagement + the JS API + outbound links and downloads (opt-in by attribute) */
  "full.js": FEATURES
} as const satisfies Record<string, ReadonlyArray<Feature>>
export type Variant = keyof typeof VARIANTS

const here = fileURLToPath(new URL(".", import.meta.url))
export const DIST = `${here}dist/`

/** One minified script with exactly `features` compiled in. */
export const buildTracker = (features: ReadonlyArray<Feature>): string => {
  const result = buildSync({
    entryPoints: [`${here}src/main.ts`],
    bundle: true,
    write: false,
    minify: true,
    format: "iife",
    target: "es2021",
    legalComments: "none",
    // no "use strict" prologue: the code does not depend on it (13 bytes of every page view)
    tsconfigRaw: { compilerOptions: { alwaysStrict: false } },
    define: Object.fromEntries(FEATURES.map((f) => [f, String(features.includes(f))]))
  })
  return result.outputFiles[0]!.text
}

/** Gzipped size in bytes (zlib, level 9, no file name in the header: what the collector sends). */
export const gzipSize = (code: string): number => gzipSync(code, { level: 9 }).length

/**
 * What each feature costs, gzipped: added to the core alone, and taken out of the full build
 * (the two differ a little: gzip shares strings between features).
 */
export const featureCosts = () => {
  const core = gzipSize(buildTracker([]))
  const full = gzipSize(buildTracker(FEATURES))
  return FEATURES.map((feature) => ({
    feature,
    onCore: gzipSize(buildTracker([feature])) - core,
    inFull: full - gzipSize(buildTracker(FEATURES.filter((f) => f !== feature)))
  }))
}

if (import.meta.main) {
  mkdirSync(DIST, { recursive: true })
  for (const [file, features] of Object.entries(VARIANTS)) {
    const code = buildTracker(features)
    writeFileSync(DIST + file, code)
    console.log(`tracker/dist/${file}: ${code.length} bytes, ${gzipSize(code)} gzipped`)
  }
  for (const { feature, onCore, inFull } of featureCosts()) console.log(`  ${feature}: +${onCore} on the core, ${inFull} of the full build`)
}
