// Preloaded into the collector child by fuzz/http.ts (`node --import ./fuzz/heap-probe.mjs …`):
// appends process.memoryUsage() as a JSON line to $FUZZ_HEAP_FILE every second. Diagnostics
// only; the timer is unref'd and the collector's code is untouched.
import { appendFileSync } from "node:fs"

const file = process.env.FUZZ_HEAP_FILE
if (file) {
  const timer = setInterval(() => {
    const m = process.memoryUsage()
    try {
      appendFileSync(file, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + "\n")
    } catch {}
  }, 1000)
  timer.unref()
}
