// The dashboard's only way to data: the query API (POST /api/v1/query, POST /api/v1/funnel) on
// this origin, authenticated with the site's server key or a view-only share token.

const KEY_PREFIX = "spoolway:key:"
const SHARE_PREFIX = "spoolway:share:"

/** A failed call: `status` 0 = the server could not be reached. */
export class ApiError extends Error {
  constructor(status, body, message) {
    super(message)
    this.status = status
    this.body = body
  }
}

const storage = () => {
  try {
    return window.localStorage
  } catch {
    return undefined
  }
}

/**
 * The credential for `site`: a share token from the link's fragment (`#share=…`, kept so that
 * the bookmarked page keeps working), else a stored server key, else a stored share token.
 */
export const credentials = (site) => {
  const store = storage()
  const hash = new URLSearchParams(location.hash.slice(1))
  const fromLink = hash.get("share")
  if (fromLink) {
    store?.setItem(SHARE_PREFIX + site, fromLink)
    store?.removeItem(KEY_PREFIX + site)
    // out of the address bar (and of screenshots, copied URLs)
    history.replaceState(history.state, "", location.pathname + location.search)
    return { kind: "share", token: fromLink }
  }
  const key = store?.getItem(KEY_PREFIX + site)
  if (key) return { kind: "key", token: key }
  const share = store?.getItem(SHARE_PREFIX + site)
  if (share) return { kind: "share", token: share }
  return undefined
}

export const saveKey = (site, key) => {
  const store = storage()
  store?.setItem(KEY_PREFIX + site, key)
  store?.removeItem(SHARE_PREFIX + site)
}

export const forget = (site) => {
  const store = storage()
  store?.removeItem(KEY_PREFIX + site)
  store?.removeItem(SHARE_PREFIX + site)
}

export const lastSite = () => storage()?.getItem("spoolway:last-site") ?? undefined
export const rememberSite = (site) => storage()?.setItem("spoolway:last-site", site)

/** Whether the query API refused `dimension` as one it does not offer (an older server, say). */
export const unknownDimension = (error, dimension) =>
  error instanceof ApiError && error.status === 400 && typeof error.body?.field === "string" &&
  error.body.field.startsWith("dimensions") && Array.isArray(error.body.allowed) && !error.body.allowed.includes(dimension)

/** What an error answer says, in one line. */
export const describeError = (error) => {
  if (!(error instanceof ApiError)) return String(error?.message ?? error)
  if (error.status === 0) return `The query API cannot be reached (${error.message}). Is Spoolway running?`
  const body = error.body ?? {}
  const parts = [`The query API answered ${error.status}`]
  if (typeof body.error === "string") parts.push(`: ${body.error}`)
  if (typeof body.field === "string") parts.push(` (field ${body.field})`)
  const allowed = Array.isArray(body.allowed) ? body.allowed : []
  if (typeof body.message === "string" && allowed.length === 0) parts.push(` — ${body.message}`)
  if (allowed.length > 0) parts.push(`; allowed: ${allowed.slice(0, 12).join(", ")}${allowed.length > 12 ? ", …" : ""}`)
  return parts.join("")
}

const post = async (path, credential, body, signal) => {
  let response
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${credential.token}` },
      body: JSON.stringify(body),
      signal
    })
  } catch (cause) {
    if (cause?.name === "AbortError") throw cause
    throw new ApiError(0, undefined, String(cause?.message ?? cause))
  }
  const text = await response.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  if (!response.ok) throw new ApiError(response.status, json, text.slice(0, 200))
  if (json === undefined) throw new ApiError(response.status, undefined, "the answer is not JSON")
  return json
}

export const makeClient = (site, credential) => ({
  site,
  credential,
  query: (body, signal) => post("/api/v1/query", credential, { site, ...body }, signal),
  funnel: (body, signal) => post("/api/v1/funnel", credential, { site, ...body }, signal)
})
