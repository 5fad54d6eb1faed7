/**
 * The writer's pipeline (programs/WriterPipeline.ts) with session lanes: up to `depth` writes in
 * flight, but never two of one lane — so one session is never in two of a writer's transactions
 * at once, even when consecutive reads fill one lane only.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runPipeline } from "../src/programs/WriterPipeline.ts"

interface Work {
  readonly id: number
  readonly lane: number
}

/** Runs `lanes` through a pipeline of depth 2; each write takes 30 ms. Returns the writes' intervals. */
const run = (lanes: ReadonlyArray<number>, withLanes: boolean) =>
  Effect.gen(function*() {
    const queue: Array<Work> = lanes.map((lane, id) => ({ id, lane }))
    const spans: Array<{ readonly work: Work; readonly start: number; end: number }> = []
    yield* runPipeline<Work>({
      depth: 2,
      fetch: Effect.sync(() => queue.shift()),
      ...(withLanes ? { laneOf: (work: Work) => work.lane } : {}),
      commit: (work) =>
        Effect.gen(function*() {
          const span = { work, start: performance.now(), end: Infinity }
          spans.push(span)
          yield* Effect.sleep("30 millis")
          span.end = performance.now()
        }),
      commitOnStop: () => Effect.void,
      awaitAcks: Effect.void,
      lookAgain: () => {},
      reset: () => {}
    }, true)
    return spans
  })

const overlaps = (spans: ReadonlyArray<{ readonly work: Work; readonly start: number; readonly end: number }>, sameLane: boolean) => {
  let n = 0
  for (const a of spans) {
    for (const b of spans) {
      if (a.work.id < b.work.id && (a.work.lane === b.work.lane) === sameLane && a.start < b.end && b.start < a.end) n++
    }
  }
  return n
}

describe("writer pipeline, session lanes", () => {
  // runs of one lane (small reads that filled one lane only) and alternating lanes (full reads)
  const LANES = [0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0]

  it.live("with lanes: every write once, never two of one lane at once, two lanes side by side", () =>
    Effect.gen(function*() {
      const spans = yield* run(LANES, true)
      assert.deepStrictEqual(spans.map((s) => s.work.id).sort((a, b) => a - b), LANES.map((_, i) => i))
      assert.strictEqual(overlaps(spans, true), 0)
      assert.isAbove(overlaps(spans, false), 0)
    }))

  it.live("without lanes (the control): writes of one lane do run at once", () =>
    Effect.gen(function*() {
      const spans = yield* run(LANES, false)
      assert.strictEqual(spans.length, LANES.length)
      assert.isAbove(overlaps(spans, true), 0)
    }))
})
