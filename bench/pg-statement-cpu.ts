/**
 * PostgreSQL CPU per statement of a writer bench round run with BENCH_PG_STATEMENT_STATS=1
 * (bench/writer.ts): that round's database logs every protocol message's getrusage
 * (log_statement_stats) with the statement, and this sums them per statement (parse + bind +
 * execute, user + system CPU), optionally only between two times (the writer phase, which
 * bench/writer.ts logs).
 *
 *   npx node bench/pg-statement-cpu.ts /var/log/postgresql/postgresql-15-main.log <database> [fromIso toIso] [events]
 *
 * Prints one line per statement (first words of its text): executions, CPU ms in all, µs per
 * event when `events` is given. The figures are the backends' own accounting of each message, so
 * they hold on a busy machine better than wall times do; the logging itself is not counted in
 * them but does cost the backends CPU, so the round's total PostgreSQL CPU is higher than usual.
 */
import { createReadStream } from "node:fs"
import { createInterface } from "node:readline"

const [file, database, from, to, eventsArg] = process.argv.slice(2)
if (file === undefined || database === undefined) {
  console.error("usage: bench/pg-statement-cpu.ts <server log> <database> [fromIso toIso] [events]")
  process.exit(2)
}
const fromMs = from === undefined ? -Infinity : Date.parse(from)
const toMs = to === undefined ? Infinity : Date.parse(to)
const events = eventsArg === undefined ? undefined : Number(eventsArg)

// a log record: "<date> <time> <zone> [pid] user@db LEVEL:  text", continuation lines start with a tab
const HEAD = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\S+) \[(\d+)\] (\S*@(\S*) )?(\w+):\s+(.*)$/
interface Record_ {
  readonly atMs: number
  readonly pid: string
  readonly db: string
  readonly level: string
  text: string
}
// the server log outgrows a string after a few statistics rounds: read it line by line, keeping
// only this database's records
const records: Array<Record_> = []
let keeping = false
for await (const line of createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Infinity })) {
  const m = HEAD.exec(line)
  if (m !== null) {
    keeping = (m[5] ?? "") === database
    if (keeping) records.push({ atMs: Date.parse(`${m[1]!.replace(" ", "T")}Z`), pid: m[3]!, db: m[5] ?? "", level: m[6]!, text: m[7]! })
  } else if (keeping && records.length > 0 && (line.startsWith("\t") || line.startsWith(" "))) {
    records[records.length - 1]!.text += `\n${line}`
  }
}

const keyOf = (statement: string) => statement.replace(/\s+/g, " ").trim().slice(0, 60)
const totals = new Map<string, { executions: number; parseMs: number; bindMs: number; executeMs: number }>()
// two backends (two transactions in flight) interleave their records: one message in progress per pid
const pendingByPid = new Map<string, { kind: string; ms: number; atMs: number }>()
for (const r of records) {
  if (r.db !== database) continue
  const pending = pendingByPid.get(r.pid)
  if (r.level === "LOG" && /^(PARSE|BIND|EXECUTE) MESSAGE STATISTICS/.test(r.text)) {
    pendingByPid.set(r.pid, { kind: r.text.split(" ")[0]!, ms: 0, atMs: r.atMs })
  } else if (r.level === "DETAIL" && pending !== undefined) {
    const m = /([\d.]+) s user, ([\d.]+) s system/.exec(r.text)
    if (m !== null) pending.ms = (Number(m[1]) + Number(m[2])) * 1000
  } else if (r.level === "STATEMENT" && pending !== undefined) {
    if (pending.atMs >= fromMs && pending.atMs <= toMs) {
      const key = keyOf(r.text)
      const t = totals.get(key) ?? { executions: 0, parseMs: 0, bindMs: 0, executeMs: 0 }
      if (pending.kind === "PARSE") t.parseMs += pending.ms
      else if (pending.kind === "BIND") t.bindMs += pending.ms
      else {
        t.executeMs += pending.ms
        t.executions++
      }
      totals.set(key, t)
    }
    pendingByPid.delete(r.pid)
  }
}

const rows = [...totals].map(([key, t]) => ({ key, ...t, ms: t.parseMs + t.bindMs + t.executeMs })).sort((a, b) => b.ms - a.ms)
const all = rows.reduce((s, r) => s + r.ms, 0)
const perEvent = (ms: number) => (events === undefined ? "" : `${((ms * 1000) / events).toFixed(2).padStart(7)} µs/event`)
for (const r of rows) {
  console.log(
    `${String(r.executions).padStart(5)} × ${r.ms.toFixed(0).padStart(6)} ms (bind ${r.bindMs.toFixed(0).padStart(5)}, execute ${r.executeMs.toFixed(0).padStart(6)}) ${perEvent(r.ms)}  ${r.key}`
  )
}
console.log(`all: ${all.toFixed(0)} ms ${perEvent(all)}`)
console.log(JSON.stringify({ database, from: from ?? null, to: to ?? null, events: events ?? null, statements: rows }))
