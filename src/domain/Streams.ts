/** Redis key names, all under the configurable `STREAM_PREFIX` (isolates tenants and tests). */
export const primaryStreamKey = (prefix: string) => `${prefix}:events`
export const spoolStreamKey = (prefix: string) => `${prefix}:spool`
export const writerGroup = (prefix: string) => `${prefix}:writers`
