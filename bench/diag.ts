/**
 * Summaries for the diagnostic runs of bench/collector.ts:
 *
 *   npx node --experimental-strip-types bench/diag.ts gc <collector log with --trace-gc> [fromMs toMs]
 *   npx node --experimental-strip-types bench/diag.ts cpuprof <file.cpuprofile> [top]
 *
 * gc: count and pause percentiles per GC kind (optionally only between fromMs and toMs after the
 * collector's start, as --trace-gc prints them). cpuprof: self time by module and by function,
 * and the callers of the hottest native frames.
 */
import { readFileSync } from "node:fs"

const [cmd, file, ...rest] = process.argv.slice(2)

const pctl = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

if (cmd === "gc" && file) {
  const from = Number(rest[0] ?? 0)
  const to = Number(rest[1] ?? Number.MAX_SAFE_INTEGER)
  const re = /\s(\d+) ms: (Scavenge|Mark-Compact|Minor Mark-Sweep|Mark-Sweep)\s+([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ ([\d.]+) ms/
  const byKind = new Map<string, Array<{ pause: number; freed: number }>>()
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = re.exec(line)
    if (!m) continue
    const t = Number(m[1])
    if (t < from || t >= to) continue
    const list = byKind.get(m[2]!) ?? []
    list.push({ pause: Number(m[7]), freed: Number(m[3]) - Number(m[5]) })
    byKind.set(m[2]!, list)
  }
  const spanS = to === Number.MAX_SAFE_INTEGER ? NaN : (to - from) / 1000
  for (const [kind, list] of byKind) {
    const p = list.map((x) => x.pause).sort((a, b) => a - b)
    const f = list.map((x) => x.freed).sort((a, b) => a - b)
    console.log(
      `${kind}: n=${list.length}${Number.isNaN(spanS) ? "" : ` (${(list.length / spanS).toFixed(1)}/s)`} pause p50 ${pctl(p, 50)} ms p90 ${pctl(p, 90)} ms max ${
        p[p.length - 1]
      } ms, total ${p.reduce((a, b) => a + b, 0).toFixed(0)} ms; freed per GC p50 ${pctl(f, 50).toFixed(1)} MB`
    )
  }
} else if (cmd === "cpuprof" && file) {
  const top = Number(rest[0] ?? 20)
  interface Node {
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number }
    hitCount?: number
    children?: Array<number>
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as { nodes: Array<Node> }
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const total = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0)
  const idle = profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").reduce((a, n) => a + (n.hitCount ?? 0), 0)
  const busy = total - idle
  const moduleOf = (url: string, fn: string) => {
    const u = url.replace(/^file:\/\/\/.*?\/main\//, "")
    if (u === "") return fn || "(native)"
    if (u.startsWith("node:")) return "node internals"
    const nm = u.split("node_modules/")
    if (nm.length > 1) {
      const parts = nm[nm.length - 1]!.split("/")
      return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!
    }
    return u
  }
  const byModule = new Map<string, number>()
  const byFn = new Map<string, number>()
  for (const n of profile.nodes) {
    if (n.callFrame.functionName === "(idle)") continue
    const h = n.hitCount ?? 0
    const mod = moduleOf(n.callFrame.url, n.callFrame.functionName)
    byModule.set(mod, (byModule.get(mod) ?? 0) + h)
    const fn = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").slice(-2).join("/")}:${n.callFrame.lineNumber}`
    byFn.set(fn, (byFn.get(fn) ?? 0) + h)
  }
  const show = (title: string, m: Map<string, number>) => {
    console.log(title)
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`)
  }
  console.log(`samples ${total}, idle ${((100 * idle) / total).toFixed(1)}%; percentages below are of the busy samples`)
  show("self time by module:", byModule)
  show("self time by function:", byFn)
  const callers = (name: string) => {
    const m = new Map<string, number>()
    for (const n of profile.nodes) {
      if (n.callFrame.functionName !== name) continue
      const chain: Array<string> = []
      let id = n.id
      while (parent.has(id) && chain.length < 12) {
        id = parent.get(id)!
        const cf = nodes.get(id)!.callFrame
        chain.push(`${cf.functionName || "(anonymous)"}@${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`)
      }
      const key = chain.filter((c) => !c.includes("node:") && !c.includes("internal/streams") && !c.startsWith("_write") && !c.startsWith("Writable") && !c.includes("stream_base")).slice(0, 4).join(" < ")
      m.set(key, (m.get(key) ?? 0) + (n.hitCount ?? 0))
    }
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, 3)) console.log(`  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${name} < ${k}`)
  }
  console.log("callers of the hottest native frames:")
  for (const name of ["writeUtf8String", "writev", "(garbage collector)"]) callers(name)
} else {
  console.error("usage: bench/diag.ts gc <log> [fromMs toMs] | cpuprof <file.cpuprofile> [top]")
  process.exit(2)
}
