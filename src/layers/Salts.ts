/**
 * Daily visitor salts (docs/architecture.md, visitor id): one random 32-byte salt per UTC day in
 * `visitor_salts`, chosen by the envelope's `receivedAt` day.
 *
 * A salt is created on first use with `INSERT … ON CONFLICT DO NOTHING` followed by a `SELECT`,
 * so writers racing on the first event of a day all end up with the one stored salt. Salts are
 * cached in memory (they never change once stored); the cache keeps the most recent days only.
 *
 * `purge(keepDays)` deletes salts older than `keepDays` (default 2, the longest spool age we
 * keep) — after that the day's visitor ids are unrecoverable (`spoolway salts rotate`).
 */
import { randomBytes } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"

const CACHE_DAYS = 16

export class Salts extends Context.Service<Salts, {
  /** The salt of a UTC day (`YYYY-MM-DD`), created on first use. */
  saltFor(day: string): Effect.Effect<Uint8Array, SqlError>
  /** Loads (creating as needed) the salts of several days at once. */
  saltsFor(days: Iterable<string>): Effect.Effect<ReadonlyMap<string, Uint8Array>, SqlError>
  /** Deletes salts of days before `today − keepDays`; returns the number deleted. */
  purge(todayDay: string, keepDays?: number): Effect.Effect<number, SqlError>
}>()("spoolway/layers/Salts") {
  static readonly layer = Layer.effect(
    Salts,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const cache = new Map<string, Uint8Array>()

      const remember = (day: string, salt: Uint8Array) => {
        cache.set(day, salt)
        if (cache.size > CACHE_DAYS) {
          const oldest = [...cache.keys()].sort()[0]
          if (oldest !== undefined) cache.delete(oldest)
        }
      }

      const load = Effect.fnUntraced(function*(day: string) {
        yield* sql`INSERT INTO visitor_salts (day, salt) VALUES (${day}::date, ${new Uint8Array(randomBytes(32))})
                   ON CONFLICT (day) DO NOTHING`
        const rows = yield* sql<{ readonly salt: Uint8Array }>`SELECT salt FROM visitor_salts WHERE day = ${day}::date`
        const salt = rows[0]?.salt
        if (salt === undefined) return yield* Effect.die(new Error(`visitor salt for ${day} vanished`))
        remember(day, salt)
        return salt
      })

      const saltFor = (day: string) => {
        const hit = cache.get(day)
        return hit !== undefined ? Effect.succeed(hit) : load(day)
      }

      const saltsFor = Effect.fnUntraced(function*(days: Iterable<string>) {
        const result = new Map<string, Uint8Array>()
        for (const day of days) result.set(day, yield* saltFor(day))
        return result as ReadonlyMap<string, Uint8Array>
      })

      const purge = Effect.fnUntraced(function*(todayDay: string, keepDays = 2) {
        const rows = yield* sql<{ readonly day: string }>`
          DELETE FROM visitor_salts WHERE day < ${todayDay}::date - ${keepDays}::integer RETURNING day::text AS day`
        for (const row of rows) cache.delete(row.day)
        return rows.length
      })

      return Salts.of({ saltFor, saltsFor, purge })
    })
  )
}
