import { compileQuery } from "/work/wt/query/src/domain/StatsSql.ts"
import { parseQuery, resolvePeriod } from "/work/wt/query/src/domain/StatsQuery.ts"
const body = JSON.parse(process.argv[2]!)
const site = Number(process.argv[3]); const tz = process.argv[4]!
const q = parseQuery({ site: "x", date_range: "30d", ...body }) as any
const period = resolvePeriod(q.dateRange, Date.now(), tz, null) as any
const c = compileQuery({ siteId: site, timezone: tz, period, active: false, metrics: q.metrics, dimensions: q.dimensions, filters: q.filters, orderBy: q.orderBy, page: { limit: q.limit, offset: 0 } })
let text = c.text
c.params.forEach((p, i) => { text = text.replaceAll(new RegExp(`\\$${i + 1}(?![0-9])`, "g"), typeof p === "string" ? `'${p}'` : `ARRAY[${p.textArray.map((v) => `'${v}'`).join(",")}]`) })
console.log(text)
