import { defineConfig } from "vitest/config"

/** `npm run test:container` only: builds images and runs compose.yaml; never part of `npm test`. */
export default defineConfig({
  test: {
    include: ["test/container/**/*.container.ts"],
    testTimeout: 300_000,
    // a cold image build (no layer cache) happens in beforeAll
    hookTimeout: 900_000,
    fileParallelism: false
  }
})
