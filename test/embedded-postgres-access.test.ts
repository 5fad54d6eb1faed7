/**
 * As root the embedded PostgreSQL runs as the OS user `postgres`, which must reach the data dir
 * and the binaries in node_modules (src/layers/EmbeddedPostgres.ts `makeReachableByPostgres`):
 * blocking directories inside the project or the data dir get `o+x`; one outside is reported,
 * not changed. Real directories and modes.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { makeReachableByPostgres } from "../src/layers/EmbeddedPostgres.ts"

const made: Array<string> = []
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
})
const others = (dir: string) => statSync(dir).mode & 0o007

describe("makeReachableByPostgres", () => {
  it("grants search (o+x only) on a private project dir and data dir, leaves open ones alone", () => {
    const project = mkdtempSync(join(tmpdir(), "spoolway-reach-")) // 0700, like `mktemp -d`
    made.push(project)
    const bin = join(project, "node_modules", "pkg", "bin")
    mkdirSync(bin, { recursive: true, mode: 0o755 })
    const data = join(project, ".data")
    mkdirSync(data, { mode: 0o700 })
    expect(others(project)).toBe(0)

    expect(makeReachableByPostgres([bin, data], [data, project])).toBeUndefined()
    expect(others(project)).toBe(0o001) // traverse, not list
    expect(others(data)).toBe(0o001)
    expect(others(bin)).toBe(0o005) // was open already: unchanged
  })

  it("reports a blocking directory above the project instead of changing it", () => {
    const outer = mkdtempSync(join(tmpdir(), "spoolway-reach-home-")) // a private home, say
    made.push(outer)
    const project = join(outer, "checkout")
    const bin = join(project, "node_modules", "pkg", "bin")
    mkdirSync(bin, { recursive: true, mode: 0o755 })

    const problem = makeReachableByPostgres([bin], [project])
    expect(problem).toContain(`${outer} is not searchable by others`)
    expect(others(outer)).toBe(0)
  })
})
