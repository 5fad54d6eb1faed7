// The six pages. Each `render(ctx)` fills ctx.main and returns when all its queries answered.
import { describeError, unknownDimension } from "./api.js"
import { alignSeries, drawChart, loadChartLibrary } from "./chart.js"
import { apiFilters, dateRange, DIMENSION_LABELS, timeDimension, withFilter } from "./state.js"
import { download, formatDimension, formatMetric, h, METRIC_LABELS, notice, safeLink, toCsv } from "./ui.js"

const TABLE_ROWS = 10
const MORE_ROWS = 100
const CSV_ROWS = 10_000

const baseQuery = (ctx) => ({ date_range: dateRange(ctx.state), filters: apiFilters(ctx.state) })

/** Runs a query; an authentication failure goes to ctx.onAuthError (and the error is rethrown). */
const run = async (ctx, body, kind = "query") => {
  try {
    return await ctx.client[kind](body, ctx.signal)
  } catch (error) {
    if (error?.status === 401 || error?.status === 403) ctx.onAuthError(error)
    throw error
  }
}

const changeText = (metric, change) => {
  if (change === null || change === undefined || !Number.isFinite(Number(change))) return { text: "no previous data", cls: "flat" }
  const n = Number(change)
  if (n === 0) return { text: "no change", cls: "flat" }
  // a lower bounce rate is the better way
  const good = metric === "bounce_rate" ? n < 0 : n > 0
  return { text: `${n > 0 ? "▲" : "▼"} ${Math.abs(n).toLocaleString("en-US", { maximumFractionDigits: 1 })}% vs previous period`, cls: good ? "good" : "bad" }
}

const card = (metric, value, change) => {
  const c = changeText(metric, change)
  return h("div", { class: "card", "data-metric": metric },
    h("div", { class: "card-label" }, METRIC_LABELS[metric] ?? metric),
    h("div", { class: "card-value", "data-value": value ?? "" }, formatMetric(metric, value)),
    change === undefined ? undefined : h("div", { class: `card-change ${c.cls}` }, c.text))
}

const errorNotice = (error) => notice("error", describeError(error))

/** The tracker snippet for this site (the empty state). */
const snippet = (ctx) => {
  const src = `${location.origin}${ctx.trackerPath}`
  return notice("info",
    h("p", {}, h("strong", {}, "No data yet for ", ctx.state.site, " in this period.")),
    h("p", {}, "Add the tracker to the site's pages (the write key is printed by ", h("code", {}, "spoolway sites add"), "):"),
    h("pre", { class: "snippet" }, h("code", {}, `<script defer data-key="YOUR_SITE_WRITE_KEY" src="${src}"></script>`)),
    h("p", {}, "Events show up here a few seconds after they are sent; choose a longer period above to see older data."))
}

// ---------------------------------------------------------------------------------------------
// tables

const dimensionCell = (ctx, dimension, value) => {
  const shown = formatDimension(value)
  // no value (a visit without a referrer, say) filters by "unknown": an empty parameter in the URL
  const none = value === null || value === undefined || value === ""
  const filter = h("button", {
    type: "button",
    class: "filter",
    title: `Filter every page by ${DIMENSION_LABELS[dimension] ?? dimension} = ${shown}`,
    onclick: () => ctx.navigate(withFilter(ctx.state, dimension, none ? "" : String(value)))
  }, none ? h("span", { class: "none" }, shown) : shown)
  const external = typeof value === "string"
    ? (value.startsWith("/") && ["page", "entry_page", "exit_page"].includes(dimension)
      ? safeLink(`https://${ctx.state.site}${value}`, "↗", { class: "ext", "aria-label": `Open ${shown}` })
      : safeLink(value, "↗", { class: "ext", "aria-label": `Open ${shown}` }))
    : undefined
  return h("th", { scope: "row", class: "dim" }, filter, external)
}

/**
 * A table of one dimension: top rows by the first metric, "show more", CSV export. Clicking a
 * value filters every page by it.
 */
const tableSection = (ctx, { title, dimension, metrics, order, first, filters = [] }) => {
  const body = h("div", { class: "table-body" }, h("p", { class: "loading" }, "Loading…"))
  const csv = h("button", { type: "button", class: "small", "aria-label": `Export ${title} as CSV` }, "CSV")
  // `data-filters`: the table's own filters, after the page's (what it asks, for tests and scripts)
  const section = h("section", {
    class: "panel",
    "data-dimension": dimension,
    "data-filters": filters.length > 0 ? JSON.stringify(filters) : undefined,
    "aria-busy": "true"
  },
    h("div", { class: "panel-head" }, h("h2", {}, title), csv),
    body)
  const header = [DIMENSION_LABELS[dimension] ?? dimension, ...metrics.map((m) => METRIC_LABELS[m] ?? m)]
  const base = baseQuery(ctx)
  const query = (limit) => ({
    ...base,
    filters: [...base.filters, ...filters],
    metrics,
    dimensions: [dimension],
    order_by: [[order ?? metrics[0], "desc"]],
    limit
  })
  csv.addEventListener("click", async () => {
    csv.disabled = true
    try {
      const answer = await run(ctx, query(CSV_ROWS))
      const rows = answer.results.map((r) => [r.dimensions[0], ...r.metrics])
      download(`${ctx.state.site}-${dimension}-${answer.meta?.date_range?.join("_") ?? ctx.state.range}.csv`, toCsv([dimension, ...metrics], rows))
    } catch (error) {
      body.prepend(errorNotice(error))
    } finally {
      csv.disabled = false
    }
  })
  // `first`: an answer to the same question with a higher limit (rows in the same order), for the first draw
  const show = async (limit, given) => {
    try {
      const answer = given === undefined ? await run(ctx, query(limit + 1)) : await given
      const results = answer.results.slice(0, limit)
      section.setAttribute("aria-busy", "false")
      if (results.length === 0) {
        body.replaceChildren(h("p", { class: "empty" }, ctx.state.filters.length > 0 ? "Nothing for these filters in this period." : "Nothing in this period."))
        return
      }
      const max = Math.max(1, ...results.map((r) => Number(r.metrics[0]) || 0))
      const rows = results.map((r) => {
        const tr = h("tr", {}, dimensionCell(ctx, dimension, r.dimensions[0]),
          ...metrics.map((m, i) => h("td", { "data-metric": m, "data-value": r.metrics[i] ?? "" }, formatMetric(m, r.metrics[i]))))
        tr.style.setProperty("--share", `${Math.round(((Number(r.metrics[0]) || 0) / max) * 100)}%`)
        return tr
      })
      const table = h("table", { class: "data" },
        h("caption", { class: "visually-hidden" }, title),
        h("thead", {}, h("tr", {}, ...header.map((text, i) => h("th", { scope: "col", class: i === 0 ? "dim" : undefined }, text)))),
        h("tbody", {}, rows))
      const more = answer.results.length > limit && limit < MORE_ROWS
        ? h("button", { type: "button", class: "small more", onclick: () => show(MORE_ROWS) }, "Show more")
        : undefined
      body.replaceChildren(h("div", { class: "table-scroll" }, table), more ?? "")
    } catch (error) {
      if (error?.name === "AbortError") return
      section.setAttribute("aria-busy", "false")
      body.replaceChildren(errorNotice(error))
    }
  }
  return { section, done: show(TABLE_ROWS, first) }
}

const tablesPage = (ctx, specs, intro) => {
  const tables = specs.map((spec) => tableSection(ctx, spec))
  ctx.main.append(...(intro ?? []), h("div", { class: "grid" }, ...tables.map((t) => t.section)))
  return Promise.all(tables.map((t) => t.done))
}

// ---------------------------------------------------------------------------------------------
// Overview

const OVERVIEW_METRICS = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]

const live = (ctx) => {
  const value = h("span", { class: "live-value", "data-value": "" }, "…")
  const el = h("p", { class: "live", "data-testid": "live" }, h("span", { class: "dot", "aria-hidden": "true" }), value, " visitors in the last 5 minutes")
  const refresh = async () => {
    try {
      const answer = await run(ctx, { metrics: ["visitors"], date_range: "realtime", filters: apiFilters(ctx.state) })
      const n = answer.results[0]?.metrics[0] ?? 0
      value.textContent = formatMetric("visitors", n)
      value.dataset.value = String(n)
    } catch (error) {
      if (error?.name !== "AbortError") value.textContent = "?"
    }
  }
  const timer = setInterval(refresh, 30_000)
  ctx.cleanups.push(() => clearInterval(timer))
  return { el, done: refresh() }
}

const overview = async (ctx) => {
  const cards = h("div", { class: "cards", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"))
  const chart = h("div", { class: "chart" })
  const chartPanel = h("section", { class: "panel", "aria-label": "Visitors and pageviews over time" }, h("h2", {}, "Visitors and pageviews"), chart)
  const empty = h("div", {})
  const liveBox = live(ctx)
  ctx.main.append(liveBox.el, empty, cards, chartPanel)

  const totals = run(ctx, { ...baseQuery(ctx), metrics: OVERVIEW_METRICS, compare: "previous_period" }).then((answer) => {
    const row = answer.results[0]
    cards.setAttribute("aria-busy", "false")
    cards.replaceChildren(...OVERVIEW_METRICS.map((m, i) => card(m, row?.metrics[i] ?? 0, row?.comparison?.change?.[i] ?? null)))
    const nothing = OVERVIEW_METRICS.every((m, i) => ["bounce_rate", "visit_duration"].includes(m) || Number(row?.metrics[i] ?? 0) === 0)
    if (nothing && ctx.state.filters.length === 0) empty.replaceChildren(snippet(ctx))
  }, (error) => {
    if (error?.name === "AbortError") return
    cards.setAttribute("aria-busy", "false")
    cards.replaceChildren(errorNotice(error))
  })

  const time = timeDimension(ctx.state)
  // the chart library loads while the queries run
  const library = loadChartLibrary()
  const series = run(ctx, { ...baseQuery(ctx), metrics: ["visitors", "pageviews"], dimensions: [time] }).then(async (answer) => {
    const data = alignSeries(answer.results, 2, time.split(":")[1], answer.meta?.date_range)
    if (data.slice(1).every((series) => series.every((v) => v === 0))) {
      chart.replaceChildren(h("p", { class: "empty" }, "No visits in this period: nothing to chart."))
      return
    }
    const uPlot = await library
    if (ctx.signal.aborted) return
    ctx.cleanups.push(drawChart(chart, data, ["Visitors", "Pageviews"], time.split(":")[1], uPlot))
  }, (error) => {
    if (error?.name !== "AbortError") chart.replaceChildren(errorNotice(error))
  })
  await Promise.all([totals, series, liveBox.done])
}

// ---------------------------------------------------------------------------------------------
// Events: custom events and a funnel

const funnelSection = (ctx) => {
  const steps = ctx.state.steps.length > 0 ? ctx.state.steps : []
  const list = h("ol", { class: "steps" })
  const addStep = (step) => {
    const kind = h("select", { "aria-label": "Step type" },
      h("option", { value: "page" }, "Page"),
      h("option", { value: "event" }, "Event"))
    kind.value = step.kind
    const value = h("input", { type: "text", "aria-label": "Page path or event name", placeholder: "/pricing or signup", required: true })
    value.value = step.value
    const li = h("li", {}, kind, value, h("button", { type: "button", class: "small", "aria-label": "Remove this step", onclick: () => li.remove() }, "✕"))
    list.append(li)
  }
  for (const s of steps.length > 0 ? steps : [{ kind: "page", value: "/" }, { kind: "page", value: "" }]) addStep(s)
  const form = h("form", { class: "funnel-form" },
    list,
    h("div", { class: "row" },
      h("button", { type: "button", class: "small", onclick: () => addStep({ kind: "page", value: "" }) }, "Add step"),
      h("button", { type: "submit" }, "Show funnel")))
  form.addEventListener("submit", (e) => {
    e.preventDefault()
    const next = [...list.children].map((li) => ({ kind: li.querySelector("select").value, value: li.querySelector("input").value.trim() }))
      .filter((s) => s.value !== "")
    ctx.navigate({ ...ctx.state, steps: next })
  })
  const result = h("div", { class: "funnel-result" })
  const section = h("section", { class: "panel", "data-testid": "funnel" }, h("h2", {}, "Funnel"),
    h("p", { class: "hint" }, "Visitors who went through these steps in this order (pages by path, events by name)."), form, result)
  let done = Promise.resolve()
  if (steps.length >= 2) {
    result.append(h("p", { class: "loading" }, "Loading…"))
    done = run(ctx, {
      date_range: dateRange(ctx.state),
      filters: apiFilters(ctx.state),
      steps: steps.map((s) => (s.kind === "event" ? { event_type: s.value } : { page: s.value }))
    }, "funnel").then((answer) => {
      const rows = answer.steps ?? []
      const first = Math.max(1, Number(rows[0]?.visitors) || 0)
      const header = ["Step", "Visitors", "Conversion rate", "Drop-off"]
      const table = h("table", { class: "data" },
        h("caption", { class: "visually-hidden" }, "Funnel steps"),
        h("thead", {}, h("tr", {}, ...header.map((t, i) => h("th", { scope: "col", class: i === 0 ? "dim" : undefined }, t)))),
        h("tbody", {}, rows.map((r, i) => {
          const s = steps[i]
          const label = typeof r.label === "string" ? r.label : s ? `${s.kind === "event" ? "Event" : "Page"} ${s.value}` : `Step ${i + 1}`
          const tr = h("tr", {},
            h("th", { scope: "row", class: "dim" }, h("span", { class: "step-label" }, label)),
            h("td", { "data-value": r.visitors ?? "" }, formatMetric("visitors", r.visitors)),
            h("td", { "data-value": r.conversion_rate ?? "" }, formatMetric("conversion_rate", r.conversion_rate)),
            h("td", { "data-value": r.drop_off ?? "" }, formatMetric("visitors", r.drop_off)))
          tr.style.setProperty("--share", `${Math.round(((Number(r.visitors) || 0) / first) * 100)}%`)
          return tr
        })))
      const csv = h("button", {
        type: "button",
        class: "small",
        onclick: () => download(`${ctx.state.site}-funnel.csv`, toCsv(header, rows.map((r, i) => [r.label ?? steps[i]?.value, r.visitors, r.conversion_rate, r.drop_off])))
      }, "CSV")
      result.replaceChildren(h("div", { class: "table-scroll" }, table), csv)
    }, (error) => {
      if (error?.name !== "AbortError") result.replaceChildren(errorNotice(error))
    })
  } else {
    result.append(h("p", { class: "empty" }, "Give at least two steps."))
  }
  return { section, done }
}

const events = (ctx) => {
  const funnel = funnelSection(ctx)
  const tables = tablesPage(ctx, [
    // the custom events: pageviews are the Pages page's (and leaving them out lets a page filter
    // read only that page's custom events: docs/dashboard.md "How long a filter takes")
    {
      title: "Custom events",
      dimension: "event_type",
      metrics: ["visitors", "events", "conversions", "revenue"],
      order: "events",
      filters: [["is_not", "event_type", ["pageview"]]]
    }
  ])
  ctx.main.append(funnel.section)
  return Promise.all([tables, funnel.done])
}

// ---------------------------------------------------------------------------------------------
// Network

/** Share of visitors (percent) on the network types `pattern` names, from the org_type rows. */
const shareOf = (types, all, pattern) => {
  const n = types.results.filter((r) => pattern.test(String(r.dimensions[0] ?? ""))).reduce((s, r) => s + (Number(r.metrics[0]) || 0), 0)
  return all > 0 ? (n / all) * 100 : 0
}

const shareCard = (label, id, pct) =>
  h("div", { class: "card", "data-metric": id }, h("div", { class: "card-label" }, label),
    h("div", { class: "card-value", "data-value": pct }, `${pct.toLocaleString("en-US", { maximumFractionDigits: 1 })}%`),
    h("div", { class: "card-change flat" }, "of visitors"))

/**
 * Network: datacenter / VPN / government share and bot events, then org types, organisations
 * and ASNs — every query sent at once (the org types table is drawn from the shares' answer). A
 * server whose query API has no network dimensions gets one notice, not four errors.
 */
const network = async (ctx) => {
  const box = h("div", { class: "cards" }, h("p", { class: "loading" }, "Loading…"))
  ctx.main.append(h("h2", { class: "section-title" }, "Visitors by network"), box)
  const typesQuery = run(ctx, { ...baseQuery(ctx), metrics: ["visitors", "visits"], dimensions: ["org_type"], order_by: [["visitors", "desc"]], limit: 100 })
  const totalsQuery = run(ctx, { ...baseQuery(ctx), metrics: ["visitors", "bot_events"] })
  // the tables' queries start now too; the grid is shown once the shares say the dimensions exist
  const tables = [
    tableSection(ctx, { title: "Network types", dimension: "org_type", metrics: ["visitors", "visits"], first: typesQuery }),
    tableSection(ctx, { title: "Organisations", dimension: "org", metrics: ["visitors", "visits"] }),
    tableSection(ctx, { title: "ASNs", dimension: "asn", metrics: ["visitors", "visits"] })
  ]
  const grid = h("div", { class: "grid" }, ...tables.map((t) => t.section))
  const [types, totals] = await Promise.allSettled([typesQuery, totalsQuery])
  if (ctx.signal.aborted) return
  if (totals.status === "rejected") {
    box.replaceChildren(errorNotice(totals.reason))
    return
  }
  const all = Number(totals.value.results[0]?.metrics[0] ?? 0)
  const bots = card("bot_events", totals.value.results[0]?.metrics[1] ?? 0)
  if (types.status === "rejected") {
    const error = types.reason
    box.replaceChildren(bots)
    box.after(unknownDimension(error, "org_type")
      ? notice("info",
        h("p", {}, h("strong", {}, "No network data on this server yet.")),
        h("p", {}, "Its query API offers no network dimensions (org_type, org, asn). ", describeError(error)))
      : errorNotice(error))
    return
  }
  box.replaceChildren(
    shareCard("Datacenter / hosting", "datacenter_share", shareOf(types.value, all, /datacenter|hosting/i)),
    shareCard("VPN", "vpn_share", shareOf(types.value, all, /vpn/i)),
    shareCard("Government", "government_share", shareOf(types.value, all, /gov/i)),
    bots)
  ctx.main.append(grid)
  await Promise.all(tables.map((t) => t.done))
}

// ---------------------------------------------------------------------------------------------

export const RENDERERS = {
  overview,
  pages: (ctx) =>
    tablesPage(ctx, [
      { title: "Top pages", dimension: "page", metrics: ["visitors", "pageviews"] },
      { title: "Entry pages", dimension: "entry_page", metrics: ["visitors", "visits", "bounce_rate"] },
      { title: "Exit pages", dimension: "exit_page", metrics: ["visitors", "visits"] }
    ]),
  events,
  traffic: (ctx) =>
    tablesPage(ctx, [
      { title: "Sources", dimension: "source", metrics: ["visitors", "visits", "bounce_rate"] },
      { title: "Referrers", dimension: "referrer", metrics: ["visitors", "visits"] },
      { title: "UTM sources", dimension: "utm_source", metrics: ["visitors", "visits"] },
      { title: "UTM mediums", dimension: "utm_medium", metrics: ["visitors", "visits"] },
      { title: "UTM campaigns", dimension: "utm_campaign", metrics: ["visitors", "visits"] }
    ]),
  audience: (ctx) =>
    tablesPage(ctx, [
      { title: "Devices", dimension: "device", metrics: ["visitors"] },
      { title: "Browsers", dimension: "browser", metrics: ["visitors"] },
      { title: "Operating systems", dimension: "os", metrics: ["visitors"] },
      { title: "Countries", dimension: "country", metrics: ["visitors"] },
      { title: "Regions", dimension: "region", metrics: ["visitors"] },
      { title: "Cities", dimension: "city", metrics: ["visitors"] },
      { title: "Languages", dimension: "language", metrics: ["visitors"] }
    ]),
  network
}
