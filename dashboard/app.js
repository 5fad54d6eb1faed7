// The dashboard: plain ES modules, no build step. The page shell is index.html; this module
// draws the header, the navigation and the current page from the URL (state.js).
import { credentials, describeError, forget, lastSite, makeClient, rememberSite, saveKey } from "./api.js"
import { RENDERERS } from "./pages.js"
import { DIMENSION_LABELS, PAGES, parseLocation, RANGES, toHref, withoutFilter } from "./state.js"
import { appLink, h, notice, replace } from "./ui.js"

const header = document.getElementById("top")
const nav = document.getElementById("nav")
const main = document.getElementById("main")
const trackerPath = document.querySelector("meta[name=spoolway-tracker]")?.content ?? "/sw.js"

let session // { site, client }
let current // { controller, cleanups }
let keyError // a message for the key prompt

const navigate = (state, replaceEntry = false) => {
  const href = toHref(state)
  if (replaceEntry) history.replaceState(null, "", href)
  else history.pushState(null, "", href)
  render()
}

/** Follows in-app links without a reload (modified clicks open new tabs as usual). */
document.addEventListener("click", (event) => {
  const a = event.target instanceof Element ? event.target.closest("a[data-app]") : null
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
  event.preventDefault()
  history.pushState(null, "", a.getAttribute("href"))
  render()
})
window.addEventListener("popstate", () => render())

const stop = () => {
  if (current === undefined) return
  current.controller.abort()
  for (const cleanup of current.cleanups) cleanup()
  current = undefined
}

// ---------------------------------------------------------------------------------------------

/** `/`: open the last site, else ask for one. */
const sitePicker = () => {
  const last = lastSite()
  if (last) {
    history.replaceState(null, "", toHref({ site: last, page: "overview", range: "30d", filters: [], steps: [] }))
    return render()
  }
  document.title = "Spoolway"
  header.replaceChildren(h("span", { class: "brand" }, "Spoolway"))
  nav.replaceChildren()
  const input = h("input", { id: "site-input", type: "text", required: true, placeholder: "example.com", autocomplete: "url" })
  const form = h("form", { class: "prompt" },
    h("h1", {}, "Open a site's dashboard"),
    h("label", { for: "site-input" }, "Hostname of the site"),
    input,
    h("button", { type: "submit" }, "Open"),
    h("p", { class: "hint" }, "Sites are added with ", h("code", {}, "spoolway sites add <hostname>"), "."))
  form.addEventListener("submit", (e) => {
    e.preventDefault()
    const site = input.value.trim().toLowerCase()
    if (site) navigate({ site, page: "overview", range: "30d", filters: [], steps: [] })
  })
  replace(main, form)
  input.focus()
}

/** The server key prompt; the key is tried before it is kept. */
const keyPrompt = (state) => {
  document.title = `${state.site} · Spoolway`
  header.replaceChildren(h("span", { class: "brand" }, "Spoolway"), h("span", { class: "site" }, state.site))
  nav.replaceChildren()
  const input = h("input", { id: "key-input", type: "password", required: true, autocomplete: "off", spellcheck: "false", placeholder: "sw_sec_…" })
  const status = h("div", { "aria-live": "polite" }, keyError ? notice("error", keyError) : "")
  keyError = undefined
  const button = h("button", { type: "submit" }, "Open dashboard")
  const form = h("form", { class: "prompt", "data-testid": "key-prompt" },
    h("h1", {}, "Dashboard of ", state.site),
    h("label", { for: "key-input" }, "Server key of ", state.site),
    input,
    button,
    status,
    h("p", { class: "hint" },
      "The server key is printed once by ", h("code", {}, "spoolway sites add"), " (or ", h("code", {}, "sites keys rotate --server"),
      "). It is kept in this browser only. Got a view-only link? Open that link instead."))
  form.addEventListener("submit", async (e) => {
    e.preventDefault()
    const key = input.value.trim()
    if (!key) return
    button.disabled = true
    status.replaceChildren(h("p", { class: "loading" }, "Checking the key…"))
    try {
      await makeClient(state.site, { kind: "key", token: key }).query({ metrics: ["visitors"], date_range: "day" })
      saveKey(state.site, key)
      session = undefined
      render()
    } catch (error) {
      button.disabled = false
      status.replaceChildren(notice("error",
        error?.status === 401 || error?.status === 403 ? `This key was refused: ${describeError(error)}` : describeError(error)))
      input.select()
    }
  })
  replace(main, form)
  input.focus()
}

const onAuthError = (state, error) => {
  if (session === undefined) return
  const shared = session.client.credential.kind === "share"
  forget(state.site)
  session = undefined
  stop()
  if (shared) {
    header.replaceChildren(h("span", { class: "brand" }, "Spoolway"), h("span", { class: "site" }, state.site))
    nav.replaceChildren()
    replace(main, notice("error",
      h("p", {}, h("strong", {}, "This view-only link no longer works."), " It was revoked, or it is not a link to ", state.site, "."),
      h("p", {}, "Ask the site's owner for a new link (", h("code", {}, "spoolway sites share " + state.site), "), or enter the server key:"),
      h("p", {}, appLink(toHref({ ...state, filters: [], steps: [] }), { "data-app": "" }, "Enter a server key"))))
    main.dataset.state = "revoked"
    return
  }
  keyError = `The stored key was refused: ${describeError(error)}`
  render()
}

// ---------------------------------------------------------------------------------------------

const rangeControls = (state) => {
  const select = h("select", { id: "range", "aria-label": "Date range" }, ...RANGES.map((r) => h("option", { value: r.id }, r.label)))
  select.value = state.range
  const today = new Date().toISOString().slice(0, 10)
  const from = h("input", { type: "date", id: "from", "aria-label": "From", max: today })
  const to = h("input", { type: "date", id: "to", "aria-label": "To", max: today })
  from.value = state.from || today
  to.value = state.to || today
  const custom = h("form", { class: "custom-range", hidden: state.range !== "custom" },
    from, to, h("button", { type: "submit", class: "small" }, "Apply"))
  custom.addEventListener("submit", (e) => {
    e.preventDefault()
    if (from.value && to.value && from.value <= to.value) navigate({ ...state, range: "custom", from: from.value, to: to.value })
  })
  select.addEventListener("change", () => {
    if (select.value === "custom") {
      custom.hidden = false
      from.focus()
      return
    }
    navigate({ ...state, range: select.value, from: "", to: "" })
  })
  return h("div", { class: "range" }, select, custom)
}

const filterBar = (state) => {
  if (state.filters.length === 0) return h("div", { class: "filters", hidden: true })
  return h("div", { class: "filters", "data-testid": "filters", "aria-label": "Filters" },
    h("span", { class: "filters-label" }, "Filtered by"),
    ...state.filters.map((f) =>
      h("span", { class: "chip", "data-dimension": f.dimension },
        `${DIMENSION_LABELS[f.dimension] ?? f.dimension}: ${f.values.map((v) => v || "(none)").join(" or ")}`,
        h("button", {
          type: "button",
          class: "chip-remove",
          "aria-label": `Remove the filter ${DIMENSION_LABELS[f.dimension] ?? f.dimension}`,
          onclick: () => navigate(withoutFilter(state, f.dimension))
        }, "✕"))),
    state.filters.length > 1 ? h("button", { type: "button", class: "small", onclick: () => navigate({ ...state, filters: [] }) }, "Clear all") : "")
}

const chrome = (state) => {
  const credential = session.client.credential
  const signOut = h("button", {
    type: "button",
    class: "small",
    onclick: () => {
      forget(state.site)
      session = undefined
      render()
    }
  }, credential.kind === "share" ? "Leave" : "Forget key")
  header.replaceChildren(
    h("span", { class: "brand" }, "Spoolway"),
    h("span", { class: "site" }, state.site),
    credential.kind === "share" ? h("span", { class: "badge" }, "view-only link") : "",
    h("span", { class: "spacer" }),
    rangeControls(state),
    signOut,
    filterBar(state))
  nav.replaceChildren(h("ul", {}, ...PAGES.map((p) =>
    h("li", {}, appLink(toHref({ ...state, page: p.id }), { "data-app": "", "aria-current": p.id === state.page ? "page" : undefined }, p.title)))))
}

/** Draws what the URL says. */
const render = () => {
  stop()
  const url = new URL(location.href)
  if (url.pathname === "/" || url.pathname === "/sites" || url.pathname === "/sites/") return sitePicker()
  const state = parseLocation(url)
  if (state === undefined) {
    replace(main, notice("error", "No such page. ", appLink("/", {}, "Open a site")))
    return
  }
  if (session === undefined || session.site !== state.site || location.hash.includes("share=")) {
    const credential = credentials(state.site)
    if (credential === undefined) return keyPrompt(state)
    session = { site: state.site, client: makeClient(state.site, credential) }
  }
  rememberSite(state.site)
  const page = PAGES.find((p) => p.id === state.page)
  document.title = `${page.title} · ${state.site} · Spoolway`
  chrome(state)
  const controller = new AbortController()
  current = { controller, cleanups: [] }
  main.replaceChildren(h("h1", { class: "visually-hidden" }, `${page.title} of ${state.site}`))
  main.dataset.state = "loading"
  main.dataset.page = state.page
  const ctx = {
    state,
    main,
    trackerPath,
    client: session.client,
    signal: controller.signal,
    cleanups: current.cleanups,
    navigate: (next) => navigate(next),
    onAuthError: (error) => onAuthError(state, error)
  }
  const started = performance.now()
  Promise.resolve(RENDERERS[state.page](ctx)).catch(() => {}).finally(() => {
    if (controller.signal.aborted) return
    main.dataset.state = "ready"
    main.dataset.renderMs = String(Math.round(performance.now() - started))
    // ms since the navigation started (the first render's total, as the page itself saw it)
    main.dataset.readyAt = String(Math.round(performance.now()))
  })
}

render()
