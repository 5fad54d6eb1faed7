// What is shown lives in the URL, so every view can be bookmarked and shared:
//   /sites/<hostname>[/<page>]?range=7d&country=DE&page=%2Fpricing&step=page:%2F&step=event:signup
// range: one of RANGES (custom: &from=YYYY-MM-DD&to=YYYY-MM-DD); every filterable dimension is
// a parameter of its own (repeated = any of the values; empty = unknown, the "(none)" rows);
// `step` = the Events page's funnel.

export const PAGES = [
  { id: "overview", title: "Overview" },
  { id: "pages", title: "Pages" },
  { id: "events", title: "Events" },
  { id: "traffic", title: "Traffic" },
  { id: "audience", title: "Audience" },
  { id: "network", title: "Network" }
]

export const RANGES = [
  { id: "day", label: "Today" },
  { id: "realtime", label: "Last 5 minutes" },
  { id: "7d", label: "Last 7 days" },
  { id: "30d", label: "Last 30 days" },
  { id: "month", label: "This month" },
  { id: "6mo", label: "Last 6 months" },
  { id: "12mo", label: "Last 12 months" },
  { id: "all", label: "All time" },
  { id: "custom", label: "Custom…" }
]
export const DEFAULT_RANGE = "30d"

/** Dimensions a row click can filter on (the query API's filter dimensions). */
export const FILTER_DIMENSIONS = [
  "page", "entry_page", "exit_page", "hostname", "event_type", "source", "referrer",
  "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
  "device", "browser", "browser_version", "os", "os_version",
  "country", "region", "city", "language", "asn", "org", "org_type"
]

export const DIMENSION_LABELS = {
  page: "Page", entry_page: "Entry page", exit_page: "Exit page", hostname: "Hostname", event_type: "Event",
  source: "Source", referrer: "Referrer", utm_source: "UTM source", utm_medium: "UTM medium",
  utm_campaign: "UTM campaign", utm_content: "UTM content", utm_term: "UTM term", device: "Device",
  browser: "Browser", browser_version: "Browser version", os: "OS", os_version: "OS version",
  country: "Country", region: "Region", city: "City", language: "Language", asn: "ASN",
  org: "Organisation", org_type: "Network type"
}

const DATE = /^\d{4}-\d{2}-\d{2}$/

/** The state of `url` (a URL), or undefined when it is not a site's page. */
export const parseLocation = (url) => {
  const match = /^\/sites\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(url.pathname)
  if (!match) return undefined
  const site = decodeURIComponent(match[1])
  const page = PAGES.some((p) => p.id === match[2]) ? match[2] : "overview"
  const params = url.searchParams
  let range = params.get("range") ?? DEFAULT_RANGE
  if (!RANGES.some((r) => r.id === range)) range = DEFAULT_RANGE
  const from = params.get("from") ?? ""
  const to = params.get("to") ?? ""
  if (range === "custom" && !(DATE.test(from) && DATE.test(to) && from <= to)) range = DEFAULT_RANGE
  const filters = []
  for (const dimension of FILTER_DIMENSIONS) {
    const values = params.getAll(dimension)
    if (values.length > 0) filters.push({ dimension, values })
  }
  const steps = params.getAll("step").map((raw) => {
    const colon = raw.indexOf(":")
    const kind = raw.slice(0, colon)
    return { kind: kind === "event" ? "event" : "page", value: colon < 0 ? raw : raw.slice(colon + 1) }
  }).filter((s) => s.value !== "")
  return { site, page, range, from, to, filters, steps }
}

/** The URL (path + query) of `state`. */
export const toHref = (state) => {
  const params = new URLSearchParams()
  if (state.range !== DEFAULT_RANGE) params.set("range", state.range)
  if (state.range === "custom") {
    params.set("from", state.from)
    params.set("to", state.to)
  }
  for (const { dimension, values } of state.filters) for (const v of values) params.append(dimension, v)
  for (const step of state.steps) params.append("step", `${step.kind}:${step.value}`)
  const query = params.toString()
  const page = state.page === "overview" ? "" : `/${state.page}`
  return `/sites/${encodeURIComponent(state.site)}${page}${query ? `?${query}` : ""}`
}

/** `state` with the filter dimension = value (replacing a filter on the same dimension). */
export const withFilter = (state, dimension, value) => ({
  ...state,
  filters: [...state.filters.filter((f) => f.dimension !== dimension), { dimension, values: [value] }]
})

export const withoutFilter = (state, dimension) => ({
  ...state,
  filters: state.filters.filter((f) => f.dimension !== dimension)
})

/** The query API's date_range of `state`. */
export const dateRange = (state) => (state.range === "custom" ? [state.from, state.to] : state.range)

/** The query API's filters of `state`: an empty value stands for "unknown" (null). */
export const apiFilters = (state) => state.filters.map(({ dimension, values }) => ["is", dimension, values.map((v) => (v === "" ? null : v))])

/** The time dimension that suits the range. */
export const timeDimension = (state) => {
  switch (state.range) {
    case "day":
    case "realtime":
      return "time:hour"
    case "6mo":
    case "12mo":
    case "all":
      return "time:month"
    case "custom": {
      const days = (Date.parse(state.to) - Date.parse(state.from)) / 86_400_000
      return days <= 2 ? "time:hour" : days <= 92 ? "time:day" : "time:month"
    }
    default:
      return "time:day"
  }
}
