/**
 * The global legacy write keys (COLLECTOR_WRITE_KEYS), compared in constant time. With sites
 * defined they still admit a request, from an origin of any site (src/domain/Site.ts `admit`).
 */
import { hash, timingSafeEqual } from "node:crypto"

const digest = (value: string) => hash("sha256", value, "buffer")

export interface WriteKeyCheck {
  readonly open: boolean
  readonly accepts: (candidate: string | undefined) => boolean
}

export const makeWriteKeyCheck = (keys: ReadonlyArray<string>): WriteKeyCheck => {
  // hashing first gives equal-length buffers, so timingSafeEqual leaks neither content nor length
  const digests = keys.map(digest)
  return {
    open: digests.length === 0,
    accepts: (candidate) => {
      if (digests.length === 0) return true
      if (candidate === undefined || candidate === "") return false
      const d = digest(candidate)
      let ok = false
      for (const key of digests) ok = timingSafeEqual(key, d) || ok
      return ok
    }
  }
}
