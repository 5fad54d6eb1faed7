import { defineConfig } from "vitest/config"

/**
 * Real-browser tests run after all the others, on their own: Chromium on a 2-core machine
 * starves the timing-sensitive tests running beside it (the HTTP fuzz's 250 ms Redis command
 * timeout turned into 503s).
 */
const BROWSER_TESTS = "test/**/*browser*.test.ts"

export default defineConfig({
  test: {
    // PostgreSQL and Redis for the run: given (TEST_DATABASE_URL, TEST_REDIS_URL) or started here
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "node", include: ["test/**/*.test.ts"], exclude: [BROWSER_TESTS], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: "browser", include: [BROWSER_TESTS], sequence: { groupOrder: 1 } } }
    ]
  }
})
