// The time chart (uPlot, served from the project: /dashboard/vendor/uPlot.iife.min.js).
import { h } from "./ui.js"

let uplot

/**
 * uPlot (script and stylesheet), loaded on first use rather than by the page shell: only the
 * Overview draws a chart, and a classic script or a stylesheet in the shell holds back the
 * modules (and so every page's first query) until it has loaded. Resolves to `window.uPlot`,
 * or undefined when it could not be loaded (drawChart then says so).
 */
export const loadChartLibrary = () => {
  uplot ??= new Promise((resolve) => {
    if (window.uPlot !== undefined) return resolve(window.uPlot)
    const loaded = (el) => new Promise((done) => {
      el.addEventListener("load", () => done(true), { once: true })
      el.addEventListener("error", () => done(false), { once: true })
    })
    const css = document.createElement("link")
    css.rel = "stylesheet"
    css.href = "/dashboard/vendor/uPlot.min.css"
    const script = document.createElement("script")
    script.src = "/dashboard/vendor/uPlot.iife.min.js"
    const done = Promise.all([loaded(css), loaded(script)])
    document.head.append(css, script)
    done.then(() => resolve(window.uPlot))
  })
  return uplot
}

/** Seconds since the epoch of a time bucket's wall clock ("2026-12-06", "2026-12-06T10:00:00+01:00"), read as UTC. */
export const bucketSeconds = (value) => {
  const m = /^(\d{4})-(\d{2})(?:-(\d{2}))?(?:[T ](\d{2})(?::(\d{2}))?)?/.exec(String(value))
  if (!m) return undefined
  return Date.UTC(+m[1], +m[2] - 1, m[3] ? +m[3] : 1, m[4] ? +m[4] : 0, m[5] ? +m[5] : 0) / 1000
}

const step = (seconds, granularity) => {
  const d = new Date(seconds * 1000)
  switch (granularity) {
    case "hour":
      return seconds + 3600
    case "day":
      return seconds + 86400
    case "week":
      return seconds + 7 * 86400
    default:
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000
  }
}

const startOf = (seconds, granularity) => {
  const d = new Date(seconds * 1000)
  switch (granularity) {
    case "hour":
      return Math.floor(seconds / 3600) * 3600
    case "day":
    case "week":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) / 1000
    default:
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000
  }
}

/**
 * uPlot's aligned data from the query API's rows ([time], [m1, m2, …]): buckets without a row
 * are zeros, in meta.date_range [from, to) (when given; at most 2,000 buckets).
 */
export const alignSeries = (results, metricCount, granularity, dateRange) => {
  const byTime = new Map()
  for (const row of results) {
    const t = bucketSeconds(row.dimensions[0])
    if (t !== undefined) byTime.set(t, row.metrics)
  }
  const times = [...byTime.keys()].sort((a, b) => a - b)
  let xs = times
  if (Array.isArray(dateRange) && granularity !== "week") {
    const from = bucketSeconds(dateRange[0])
    const to = bucketSeconds(dateRange[1])
    if (from !== undefined && to !== undefined && from <= to) {
      const all = new Set(times)
      for (let t = startOf(from, granularity), n = 0; t < to && n < 2000; t = step(t, granularity), n++) all.add(t)
      xs = [...all].sort((a, b) => a - b)
    }
  }
  const series = Array.from({ length: metricCount }, (_, i) => xs.map((t) => Number(byTime.get(t)?.[i] ?? 0)))
  return [xs, ...series]
}

const COLORS = ["#1d4ed8", "#b45309"]

/** A chart of `data` in `container` (uPlot from {@link loadChartLibrary}); returns a function that removes it. */
export const drawChart = (container, data, labels, granularity, uPlot = window.uPlot) => {
  if (uPlot === undefined) {
    container.append(h("p", { class: "notice notice-error" }, "The chart library did not load."))
    return () => {}
  }
  const width = () => Math.max(280, container.clientWidth)
  const height = () => (window.innerWidth < 600 ? 200 : 280)
  const opts = {
    width: width(),
    height: height(),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#374151", grid: { stroke: "#e5e7eb" } },
      { stroke: "#374151", grid: { stroke: "#e5e7eb" }, size: 50 }
    ],
    series: [
      { value: granularity === "hour" ? "{YYYY}-{MM}-{DD} {HH}:00" : granularity === "month" ? "{YYYY}-{MM}" : "{YYYY}-{MM}-{DD}" },
      ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: data[0].length < 60 } }))
    ]
  }
  const plot = new uPlot(opts, data, container)
  const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: height() }))
  observer.observe(container)
  return () => {
    observer.disconnect()
    plot.destroy()
  }
}
