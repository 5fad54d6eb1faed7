// Preloaded into the collector by bench/soak.ts (`node --import ./bench/heap-probe.mjs …`, through
// lib.ts's BENCH_COLLECTOR_NODE_ARGS): appends process.memoryUsage() as one JSON line to
// $BENCH_HEAP_FILE every second. Diagnostics only; the timer is unref'd, Spoolway's code is untouched.
import { appendFileSync } from "node:fs"

const file = process.env.BENCH_HEAP_FILE
if (file) {
  const timer = setInterval(() => {
    const m = process.memoryUsage()
    try {
      appendFileSync(file, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + "\n")
    } catch {}
  }, 1000)
  timer.unref()
}
