/**
 * The embedded servers' ports (src/layers/FreePort.ts). A port is asked of the OS before its
 * server binds it, so the OS may hand it out again meanwhile: it happened in CI, where the
 * embedded PostgreSQL took PORT and `npm start` then failed with "port … already in use".
 */
import { it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { expect } from "vitest"
import { freePort, makePortPicker } from "../src/layers/FreePort.ts"

/** An `ask` that gives `ports` in turn (the last one from then on), and how often it was asked. */
const scripted = (ports: ReadonlyArray<number>) =>
  Effect.map(Ref.make(0), (asked) => ({
    asked,
    ask: Ref.getAndUpdate(asked, (n) => n + 1).pipe(Effect.map((n) => ports[Math.min(n, ports.length - 1)]!))
  }))

it.effect("an avoided port the OS hands out is asked again until another comes", () =>
  Effect.gen(function*() {
    const { ask, asked } = yield* scripted([8787, 8787, 5432, 40001])
    expect(yield* makePortPicker(ask)([8787, 5432])).toBe(40001)
    expect(yield* Ref.get(asked)).toBe(4)
  }))

it.effect("a port not avoided is taken at once", () =>
  Effect.gen(function*() {
    const { ask, asked } = yield* scripted([40002, 8787])
    expect(yield* makePortPicker(ask)([8787])).toBe(40002)
    expect(yield* Ref.get(asked)).toBe(1)
  }))

it.effect("a port handed out once is not handed out again (two servers starting side by side)", () =>
  Effect.gen(function*() {
    const { ask } = yield* scripted([40003, 40003, 40003, 40004])
    const pick = makePortPicker(ask)
    expect(yield* pick()).toBe(40003)
    expect(yield* pick()).toBe(40004)
  }))

it.effect("the OS's free ports: real port numbers, each handed out once", () =>
  Effect.gen(function*() {
    const first = yield* freePort()
    const next = yield* freePort()
    expect(next).not.toBe(first)
    for (const port of [first, next]) {
      expect(port).toBeGreaterThan(0)
      expect(port).toBeLessThan(65_536)
    }
  }))
