/**
 * The embedded servers' port (src/layers/FreePort.ts): asked of the OS before Spoolway listens on
 * its own HTTP port, so the OS may hand out that very port. It happened in CI: the embedded
 * PostgreSQL took PORT, and `npm start` then failed with "port … already in use".
 */
import { it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { expect } from "vitest"
import { firstPortNotIn, freePort } from "../src/layers/FreePort.ts"

/** An `ask` that gives `ports` in turn, and how often it was asked. */
const scripted = (ports: ReadonlyArray<number>) =>
  Effect.map(Ref.make(0), (asked) => ({
    asked,
    ask: Ref.getAndUpdate(asked, (n) => n + 1).pipe(Effect.map((n) => ports[Math.min(n, ports.length - 1)]!))
  }))

it.effect("an avoided port handed out by the OS is asked again until another comes", () =>
  Effect.gen(function*() {
    const { ask, asked } = yield* scripted([8787, 8787, 5432, 40001])
    expect(yield* firstPortNotIn(ask, [8787, 5432])).toBe(40001)
    expect(yield* Ref.get(asked)).toBe(4)
  }))

it.effect("a port that is not avoided is taken at once", () =>
  Effect.gen(function*() {
    const { ask, asked } = yield* scripted([40002, 8787])
    expect(yield* firstPortNotIn(ask, [8787])).toBe(40002)
    expect(yield* Ref.get(asked)).toBe(1)
  }))

it.effect("the OS's free port is a real, bindable port outside the avoided ones", () =>
  Effect.gen(function*() {
    const first = yield* freePort()
    const next = yield* freePort([first])
    expect(next).not.toBe(first)
    expect(next).toBeGreaterThan(0)
    expect(next).toBeLessThan(65_536)
  }))
