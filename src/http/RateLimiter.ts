/**
 * Per-client-IP rate limit (token bucket: RATE_LIMIT_PER_MINUTE tokens, refilled
 * continuously; 0 = off). State is per process: behind a load balancer each
 * collector enforces its own share. Idle buckets are swept so memory stays bounded.
 */
export interface RateDecision {
  readonly allowed: boolean
  /** whole seconds until one token is available (when not allowed) */
  readonly retryAfterSeconds: number
}

interface Bucket {
  tokens: number
  updatedMs: number
}

export interface RateLimiter {
  readonly take: (key: string, nowMs: number) => RateDecision
  readonly size: () => number
}

const ALLOWED: RateDecision = { allowed: true, retryAfterSeconds: 0 }

export const makeRateLimiter = (perMinute: number, maxKeys = 100_000): RateLimiter => {
  if (perMinute <= 0) return { take: () => ALLOWED, size: () => 0 }
  const perMs = perMinute / 60_000
  const buckets = new Map<string, Bucket>()
  const sweep = (nowMs: number) => {
    for (const [key, b] of buckets) {
      if (b.tokens + (nowMs - b.updatedMs) * perMs >= perMinute) buckets.delete(key)
    }
  }
  return {
    size: () => buckets.size,
    take: (key, nowMs) => {
      let bucket = buckets.get(key)
      if (bucket === undefined) {
        if (buckets.size >= maxKeys) sweep(nowMs)
        bucket = { tokens: perMinute, updatedMs: nowMs }
        buckets.set(key, bucket)
      } else {
        bucket.tokens = Math.min(perMinute, bucket.tokens + Math.max(0, nowMs - bucket.updatedMs) * perMs)
        bucket.updatedMs = nowMs
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return ALLOWED
      }
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)) }
    }
  }
}
