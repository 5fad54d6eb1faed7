/**
 * Headless Chromium for real-browser tests: Debian's /usr/bin/chromium (or CHROMIUM_PATH) driven by
 * playwright-core, no browser download. Without a browser the tests are skipped LOUDLY — except
 * under CI, where .ci/run installs it and a missing browser is a failure, not a skip.
 */
import { existsSync } from "node:fs"
import type { IncomingMessage, ServerResponse } from "node:http"
import { type Browser, chromium } from "playwright-core"

export const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

/** Whether the browser tests can run here; prints why not. */
export const browserAvailable = (what: string): boolean => {
  if (existsSync(CHROMIUM)) return true
  if (process.env["CI"]) throw new Error(`${what}: no Chromium at ${CHROMIUM} under CI (.ci/run installs it: apt-get install -y chromium)`)
  const line = "!".repeat(100)
  console.warn(`\n${line}\n!! SKIPPED ${what}: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)\n${line}\n`)
  return false
}

/**
 * Launches Chromium; playwright gives every launch a fresh temporary profile and removes it on
 * close (it refuses `--user-data-dir` in `args`). `hosts` maps host names to loopback addresses
 * (`--host-resolver-rules`), so pages can live on realistic names (`site.test`) on separate
 * origins; every other name fails to resolve, so nothing leaves the machine. Playwright's own
 * `--disable-back-forward-cache` is dropped: the tests need the bfcache a visitor has.
 */
export const launchChromium = (hosts: Readonly<Record<string, string>> = {}): Promise<Browser> => {
  const rules = [
    ...Object.entries(hosts).map(([host, ip]) => `MAP ${host} ${ip}`),
    "MAP * ~NOTFOUND",
    "EXCLUDE localhost",
    ...[...new Set(Object.values(hosts))].map((ip) => `EXCLUDE ${ip}`)
  ]
  return chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--host-resolver-rules=${rules.join(", ")}`
    ]
  })
}

/**
 * A fixture site's request handler (for `http.createServer`): the HTML in `pages` by path (read at
 * each request, so a test sets its pages as it goes), a PDF download for any `*.pdf`, 204 for
 * `/favicon.ico`, 404 else.
 */
export const fixturePages = (pages: ReadonlyMap<string, string>) => (req: IncomingMessage, res: ServerResponse) => {
  const path = new URL(req.url!, "http://fixture.test").pathname
  if (path.endsWith(".pdf")) {
    res.writeHead(200, { "content-type": "application/pdf", "content-disposition": "attachment; filename=report.pdf" }).end("%PDF-1.4\n%%EOF\n")
    return
  }
  const html = pages.get(path)
  if (html === undefined) return void res.writeHead(path === "/favicon.ico" ? 204 : 404).end()
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html)
}
