// Preloaded (`--import`) into a server by bench/collector-cost.ts: on SIGUSR2 it writes the
// process's CPU time and the bytes allocated on the V8 heap since start (growth of the used
// heap + everything GC freed, from v8.GCProfiler) to $COST_PROBE_FILE as one JSON line.
import { appendFileSync } from "node:fs"
import v8 from "node:v8"

const file = process.env.COST_PROBE_FILE
if (file) {
  let profiler = new v8.GCProfiler()
  profiler.start()
  let allocated = 0
  let lastUsed = v8.getHeapStatistics().used_heap_size
  let gcs = { scavenge: 0, markCompact: 0, other: 0, pauseUs: 0, maxPauseUs: 0 }
  process.on("SIGUSR2", () => {
    const { statistics } = profiler.stop()
    for (const s of statistics) {
      allocated += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize
      if (s.gcType === "Scavenge" || s.gcType === "MinorMarkSweep") gcs.scavenge++
      else if (s.gcType === "MarkSweepCompact") gcs.markCompact++
      else gcs.other++
      gcs.pauseUs += s.cost
      gcs.maxPauseUs = Math.max(gcs.maxPauseUs, s.cost)
    }
    const used = v8.getHeapStatistics().used_heap_size
    allocated += used - lastUsed
    lastUsed = used
    profiler = new v8.GCProfiler()
    profiler.start()
    const cpu = process.cpuUsage()
    appendFileSync(file, JSON.stringify({ at: Date.now(), cpuUs: cpu.user + cpu.system, allocated, ...gcs }) + "\n")
  })
}

// COST_HEAP_SAMPLING=all|promoted: the first SIGUSR2 starts V8's sampling heap profiler, the
// second writes $COST_PROBE_FILE.heapprofile — "all" keeps every sampled allocation, "promoted"
// only those that survived the young generation (the ones that make scavenges slow).
const sampling = process.env.COST_HEAP_SAMPLING
if (file && sampling) {
  const { Session } = await import("node:inspector")
  const { writeFileSync } = await import("node:fs")
  const session = new Session()
  session.connect()
  let state = "idle"
  process.on("SIGUSR2", () => {
    if (state === "idle") {
      state = "running"
      session.post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: sampling === "all"
      })
    } else if (state === "running") {
      state = "done"
      session.post("HeapProfiler.stopSampling", (err, result) => {
        if (!err) writeFileSync(`${file}.heapprofile`, JSON.stringify(result.profile))
      })
    }
  })
}
