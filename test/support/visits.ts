/**
 * Visits test helpers: the stored `visits` rows of a site, in a comparable form.
 */
import { Effect } from "effect"
import { query } from "../writerSupport.ts"

export interface StoredVisit {
  readonly session_id: string
  readonly vid: string | null
  readonly started: number
  readonly last: number
  readonly duration_ms: number
  readonly pageviews: number
  readonly events: number
  readonly engaged: boolean
  readonly bounce: boolean
  readonly is_bot: boolean
  readonly entry_page: string | null
  readonly entry_at: number | null
  readonly exit_page: string | null
  readonly exit_at: number | null
  readonly hostname: string | null
  readonly source: string | null
  readonly referrer: string | null
  readonly utm_source: string | null
  readonly utm_medium: string | null
  readonly utm_campaign: string | null
  readonly utm_content: string | null
  readonly utm_term: string | null
  readonly device: string | null
  readonly browser: string | null
  readonly browser_version: string | null
  readonly os: string | null
  readonly os_version: string | null
  readonly country: string | null
  readonly region: string | null
  readonly city: string | null
  readonly language: string | null
}

const ms = (d: unknown): number | null => (d instanceof Date ? d.getTime() : d === null ? null : Date.parse(String(d)))

/** The site's visits by session id, with bounce and duration derived as the migration says. */
export const visitsOf = (siteId: number) =>
  Effect.map(
    query<Record<string, unknown>>(
      `SELECT *, encode(visitor_id_daily, 'hex') AS vid, (pageviews <= 1 AND NOT engaged) AS bounce,
              (extract(epoch FROM last_seen_at - started_at) * 1000)::float8 AS duration_ms
       FROM visits WHERE site_id = $1::int4 ORDER BY session_id COLLATE "C"`,
      [siteId]
    ),
    (rows) =>
      rows.map((r): StoredVisit => ({
        session_id: String(r.session_id),
        vid: (r.vid as string | null) ?? null,
        started: ms(r.started_at)!,
        last: ms(r.last_seen_at)!,
        duration_ms: Number(r.duration_ms),
        pageviews: Number(r.pageviews),
        events: Number(r.events),
        engaged: r.engaged as boolean,
        bounce: r.bounce as boolean,
        is_bot: r.is_bot as boolean,
        entry_page: r.entry_page as string | null,
        entry_at: ms(r.entry_at),
        exit_page: r.exit_page as string | null,
        exit_at: ms(r.exit_at),
        hostname: r.hostname as string | null,
        source: r.source as string | null,
        referrer: r.referrer as string | null,
        utm_source: r.utm_source as string | null,
        utm_medium: r.utm_medium as string | null,
        utm_campaign: r.utm_campaign as string | null,
        utm_content: r.utm_content as string | null,
        utm_term: r.utm_term as string | null,
        device: r.device as string | null,
        browser: r.browser as string | null,
        browser_version: r.browser_version as string | null,
        os: r.os as string | null,
        os_version: r.os_version as string | null,
        country: r.country as string | null,
        region: r.region as string | null,
        city: r.city as string | null,
        language: r.language as string | null
      }))
  )

/** The visits keyed by session id. */
export const bySession = (visits: ReadonlyArray<StoredVisit>) => new Map(visits.map((v) => [v.session_id, v]))
