// DOM helpers. Everything shown came from the internet (page URLs, referrers, event names): it
// only ever becomes text nodes (never HTML), and only http(s) URLs become links.

/** `h("td", { class: "x", onclick: fn }, "text", child)`: strings become text nodes. */
export const h = (tag, attrs, ...children) => {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value)
    else if (name === "href") throw new Error("use safeLink for links")
    else el.setAttribute(name, value === true ? "" : String(value))
  }
  append(el, children)
  return el
}

const append = (el, children) => {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** A link to `url` when it is an absolute http(s) URL; otherwise undefined. */
export const safeLink = (url, text, attrs = {}) => {
  let parsed
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return undefined
  const a = h("a", { ...attrs, rel: "noopener noreferrer", target: "_blank" }, text)
  a.href = parsed.href
  return a
}

/** A link inside the dashboard (same origin, a path we built). */
export const appLink = (path, attrs, ...children) => {
  const a = h("a", attrs, ...children)
  a.href = path
  return a
}

export const replace = (el, ...children) => {
  el.replaceChildren()
  append(el, children)
  return el
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 })
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 })
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })

export const METRIC_LABELS = {
  visitors: "Visitors", visits: "Visits", pageviews: "Pageviews", views_per_visit: "Views per visit",
  bounce_rate: "Bounce rate", visit_duration: "Visit duration", events: "Events", conversions: "Conversions",
  conversion_rate: "Conversion rate", revenue: "Revenue", bot_events: "Bot events"
}

export const duration = (seconds) => {
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  return `${Math.floor(m / 60)}h ${m % 60}m`
}

/** A metric's value as shown. */
export const formatMetric = (metric, value) => {
  if (value === null || value === undefined) return "–"
  const n = Number(value)
  if (!Number.isFinite(n)) return String(value)
  switch (metric) {
    case "bounce_rate":
    case "conversion_rate":
      return `${decimal.format(n)}%`
    case "visit_duration":
      return duration(n)
    case "views_per_visit":
      return decimal.format(n)
    case "revenue":
      return money.format(n)
    default:
      return integer.format(n)
  }
}

/** A dimension value as shown (empty ones say so). */
export const formatDimension = (value) => (value === null || value === undefined || value === "" ? "(none)" : String(value))

/** CSV of `header` + `rows`; cells that a spreadsheet would run as a formula are quoted as text. */
export const toCsv = (header, rows) => {
  const cell = (value) => {
    let s = value === null || value === undefined ? "" : String(value)
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
    return /[",\n\r]/.test(s) ? `"${s.replaceAll("\"", "\"\"")}"` : s
  }
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n"
}

export const download = (filename, text) => {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }))
  const a = document.createElement("a")
  a.href = url
  a.download = filename
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** A message in place of data: what happened and what to do. */
export const notice = (kind, ...children) => h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children)
