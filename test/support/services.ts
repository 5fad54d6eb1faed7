/**
 * The PostgreSQL and Redis the suite runs against: the ones given as `TEST_DATABASE_URL` /
 * `TEST_REDIS_URL`, or the ones `test/support/globalSetup.ts` started for this run (it puts
 * their URLs in the environment, so processes the tests spawn inherit them too).
 */
const required = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set: run the tests with vitest (npm test), whose globalSetup provides it`)
  }
  return value
}

/** A PostgreSQL URL whose user may create databases (tests create one per file). */
export const PG_ADMIN_URL = required("TEST_DATABASE_URL")
/** A Redis the tests share; each test uses its own key prefix. */
export const REDIS_URL = required("TEST_REDIS_URL")
