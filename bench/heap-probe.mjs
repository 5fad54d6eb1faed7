// Preloaded into a collector child (`node --import ./bench/heap-probe.mjs …`) by bench/soak.ts
// (through lib.ts's BENCH_COLLECTOR_NODE_ARGS) and fuzz/http.ts: appends process.memoryUsage() as
// one JSON line to $HEAP_PROBE_FILE every second. Diagnostics only; the timer is unref'd and
// Spoolway's code is untouched.
import { appendFileSync } from "node:fs"

const file = process.env.HEAP_PROBE_FILE
if (file) {
  const timer = setInterval(() => {
    const m = process.memoryUsage()
    try {
      appendFileSync(file, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + "\n")
    } catch {}
  }, 1000)
  timer.unref()
}
