/**
 * Bounded memoisation of pure string → value functions (URL parsing, host classification) on
 * the writer's per-event path, where the same page URLs, referrers and Origin headers repeat
 * across events. The cache is emptied when it reaches `capacity` (cheaper than LRU, and
 * enough for values that repeat in bursts); keys longer than `maxKeyLength` are not cached.
 * `f` must be pure and its results immutable: a hit returns the very value computed before.
 */
export const memoizeString = <A>(f: (key: string) => A, capacity = 10_000, maxKeyLength = 2048): (key: string) => A => {
  const cache = new Map<string, A>()
  return (key: string): A => {
    if (key.length > maxKeyLength) return f(key)
    const hit = cache.get(key)
    if (hit !== undefined || cache.has(key)) return hit as A
    const value = f(key)
    if (cache.size >= capacity) cache.clear()
    cache.set(key, value)
    return value
  }
}
