/** The product version, from package.json: what `spoolway --version` and `/openapi.json` report. */
import packageJson from "../../package.json" with { type: "json" }

export const VERSION: string = packageJson.version
