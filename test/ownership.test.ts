/**
 * Partition ownership (src/domain/Ownership.ts, issue 18): every partition has exactly one owner
 * among the live writers, all writers agree, and a hand-over (a writer joins or dies) moves only
 * the partitions that writer gains or loses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { ownedPartitions, ownerOf } from "../src/domain/Ownership.ts"

const Writers = Schema.Array(Schema.String.check(Schema.isMinLength(1))).check(Schema.isMinLength(1), Schema.isMaxLength(8))
const Partitions = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 64 }))

const uniq = (writers: ReadonlyArray<string>) => [...new Set(writers)]

describe("partition ownership", () => {
  it.effect.prop("one owner per partition, the same whoever computes it", { writers: Writers, partitions: Partitions }, ({ partitions, writers }) =>
    Effect.sync(() => {
      const live = uniq(writers)
      const all = live.flatMap((w) => ownedPartitions(w, partitions, live))
      expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: partitions }, (_, p) => p))
      // order of the list does not matter
      for (let p = 0; p < partitions; p++) expect(ownerOf(p, [...live].reverse())).toBe(ownerOf(p, live))
    }))

  it.effect.prop("a writer dies: only its partitions move, to the others", { writers: Writers, partitions: Partitions }, ({ partitions, writers }) =>
    Effect.sync(() => {
      const live = uniq(writers)
      if (live.length < 2) return
      const dead = live[0]!
      const rest = live.slice(1)
      for (let p = 0; p < partitions; p++) {
        const before = ownerOf(p, live)
        const after = ownerOf(p, rest)
        if (before !== dead) expect(after).toBe(before)
        else expect(rest).toContain(after)
      }
    }))

  it.effect.prop("a writer joins: partitions move only to it", { writers: Writers, partitions: Partitions }, ({ partitions, writers }) =>
    Effect.sync(() => {
      const live = uniq(writers)
      const joined = [...live, "new-writer-\u0001"]
      for (let p = 0; p < partitions; p++) {
        const after = ownerOf(p, joined)
        if (after !== "new-writer-\u0001") expect(after).toBe(ownerOf(p, live))
      }
    }))

  it("spread: 3 writers over 16 partitions each own some; 1 writer owns all", () => {
    const writers = ["host-a-101-x1", "host-b-202-y2", "host-c-303-z3"]
    const counts = writers.map((w) => ownedPartitions(w, 16, writers).length)
    expect(counts.reduce((a, b) => a + b, 0)).toBe(16)
    for (const c of counts) expect(c).toBeGreaterThan(0)
    expect(ownedPartitions("solo", 16, ["solo"])).toHaveLength(16)
    // a writer not (yet) in the live list counts itself
    expect(ownedPartitions("solo", 16, [])).toHaveLength(16)
  })
})
