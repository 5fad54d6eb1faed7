/**
 * The suite brings its own PostgreSQL and Redis (test/support/globalSetup.ts), so that it passes
 * on a machine where nothing listens on the default ports. On this project's own machines
 * something does, so a test that dialled 127.0.0.1:5432 or :6379 itself would pass here and fail
 * for every user: this check keeps such an address out of the tests. Use
 * test/support/services.ts (or TEST_DATABASE_URL / TEST_REDIS_URL in spawned processes).
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { expect, it } from "vitest"

const TEST_DIR = resolve(import.meta.dirname)
/** the one file that names the default ports, to say it never uses them */
const EXEMPT = new Set(["support/globalSetup.ts", "hermetic.test.ts"])

const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

it("no test dials the machine's default PostgreSQL (:5432) or Redis (:6379)", () => {
  const offenders = filesUnder(TEST_DIR)
    .map((file) => relative(TEST_DIR, file))
    .filter((file) => !EXEMPT.has(file))
    .flatMap((file) =>
      readFileSync(join(TEST_DIR, file), "utf8").split("\n").flatMap((line, i) => /:(5432|6379)\b/.test(line) ? [`test/${file}:${i + 1}: ${line.trim()}`] : [])
    )
  expect(offenders).toEqual([])
})
