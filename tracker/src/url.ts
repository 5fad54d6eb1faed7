/**
 * The tracker's pure helpers: what it reads from URLs. No DOM types, so the unit tests run them
 * under Node (test/tracker-url.test.ts). Every function here is inlined into the minified
 * script, so they are written for size: short, no classes, no defensive copies.
 */

/** The collector's caps (src/domain/Limits.ts): a longer value would make the API answer 400. */
export const MAX_URL = 4096
export const MAX_TEXT = 512

/** The parts of a `Location` (or `URL`) the tracker reads. */
export interface Place {
  readonly href: string
  readonly pathname: string
  readonly hash: string
}

/**
 * The page URL of a view: the address without its fragment — with it only in hash-routing mode
 * (`data-hash`), where `#/route` is the page. Cut to the collector's URL cap.
 */
export const pageUrl = (place: Place, hash?: boolean): string =>
  (hash ? place.href : place.href.split("#")[0]!).slice(0, MAX_URL)

/**
 * What makes two views different pages: the path (plus the fragment in hash mode). A query change
 * alone (a search box rewriting `?q=` on each keystroke) or a `replaceState` that only stores
 * state is not a new page view.
 */
export const pageKey = (place: Place, hash?: boolean): string => place.pathname + (hash ? place.hash : "")

/** The `attribution` of a view from the UTM parameters of a query string; undefined when none. */
export const utm = (search: string): Record<string, string> | undefined => {
  const params = new URLSearchParams(search)
  let out: Record<string, string> | undefined
  for (const name of ["Source", "Medium", "Campaign", "Content", "Term"]) {
    const value = params.get("utm_" + name.toLowerCase())
    if (value) (out ||= {})["utm" + name] = value.slice(0, MAX_TEXT)
  }
  return out
}

/** File extensions counted as downloads when `data-downloads` is set without a list. */
export const DOWNLOADS = "pdf,csv,txt,rtf,doc,docx,xls,xlsx,ppt,pptx,odt,ods,zip,gz,tgz,7z,rar,dmg,exe,msi,pkg,deb,rpm,apk,iso,mp3,mp4,mov,avi,wav"

/**
 * Whether a link's path names a file of one of `extensions` (a comma-separated list, matched
 * without regard to case): `/files/Report.PDF` with `pdf`.
 */
export const isDownload = (pathname: string, extensions: string): boolean => {
  const ext = /\.(\w+)$/.exec(pathname)
  return !!ext && ("," + extensions.toLowerCase() + ",").includes("," + ext[1]!.toLowerCase() + ",")
}

/** A page on the developer's own machine: localhost, 127.x.x.x, [::1], or a file: URL. */
export const isLocal = (hostname: string, protocol: string): boolean =>
  /^(localhost|127\.[\d.]+|\[::1\])$/.test(hostname) || protocol == "file:"

/**
 * Where the tracker posts: `<base>/<kind>?writeKey=<key>`. `api` (`data-api`) is resolved
 * against the script's own URL, default `track` — next to the script, so
 * `https://stats.example.com/sw.js` posts to `https://stats.example.com/track/view` and a
 * script proxied at `https://site.example/stats/sw.js` posts to `…/stats/track/view`.
 */
export const endpoint = (scriptSrc: string, api?: string, key?: string) => {
  const base = new URL(api || "track", scriptSrc).href.replace(/\/$/, "")
  const query = key ? "?writeKey=" + encodeURIComponent(key) : ""
  return (kind: string) => base + "/" + kind + query
}
