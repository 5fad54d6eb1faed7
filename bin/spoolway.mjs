#!/usr/bin/env -S node --no-warnings=ExperimentalWarning
// The spoolway CLI. Runs the TypeScript sources directly with Node >= 22.19's type stripping.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`spoolway needs Node.js >= 22.19 (this is ${process.version}); run it through npm (npm start / npm exec spoolway) to use the pinned Node 24.`)
  process.exit(1)
}
await import("../src/main/cli.ts")
