/**
 * What kind of organisation runs an autonomous system, from reviewable rule files
 * (`src/domain/network/<orgType>.json`, described in docs/network.md).
 *
 * Each file lists, for one `orgType`:
 * - `asns`: autonomous systems known to be of that type, each with its organisation name and one
 *   address of the data set (`ip`) as its test case;
 * - `patterns`: case-insensitive regular expressions on the organisation name, each with
 *   `examples` that must match (its test cases), optional `counterExamples` that must not, and an
 *   optional `unless` expression that vetoes a match.
 *
 * Precedence: a listed ASN wins over every pattern (an ASN may be listed once in all files);
 * otherwise the patterns are tried type by type in {@link PATTERN_ORDER}, first match wins;
 * no match → `unknown`.
 */
import { Schema } from "effect"
import business from "./network/business.json" with { type: "json" }
import education from "./network/education.json" with { type: "json" }
import government from "./network/government.json" with { type: "json" }
import hosting from "./network/hosting.json" with { type: "json" }
import isp from "./network/isp.json" with { type: "json" }
import vpn from "./network/vpn.json" with { type: "json" }

export const ORG_TYPES = ["isp", "business", "education", "government", "hosting", "vpn", "unknown"] as const
export type OrgType = typeof ORG_TYPES[number]

/** The order in which the types' name patterns are tried: the more specific kinds first. */
export const PATTERN_ORDER = ["vpn", "hosting", "education", "government", "business", "isp"] as const
export type RuleOrgType = typeof PATTERN_ORDER[number]

const NonEmpty = Schema.String.check(Schema.isMinLength(1))

export const AsnRule = Schema.Struct({
  asn: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 4294967295 })),
  /** the organisation name in the data set (kept honest by a test) */
  org: NonEmpty,
  /** one address the data set maps to this ASN: the rule's test case */
  ip: NonEmpty,
  note: Schema.optionalKey(Schema.String)
})
export type AsnRule = typeof AsnRule.Type

export const PatternRule = Schema.Struct({
  pattern: NonEmpty,
  note: Schema.optionalKey(Schema.String),
  unless: Schema.optionalKey(NonEmpty),
  examples: Schema.Array(NonEmpty).check(Schema.isMinLength(1)),
  counterExamples: Schema.optionalKey(Schema.Array(NonEmpty))
})
export type PatternRule = typeof PatternRule.Type

export const RuleFile = Schema.Struct({
  orgType: Schema.Literals(PATTERN_ORDER),
  description: NonEmpty,
  asns: Schema.Array(AsnRule),
  patterns: Schema.Array(PatternRule)
})
export type RuleFile = typeof RuleFile.Type

/** The rule files shipped in `src/domain/network/`, unvalidated (see {@link ruleFiles}). */
export const ruleFileSources: Readonly<Record<RuleOrgType, unknown>> = { business, education, government, hosting, isp, vpn }

/** Why an organisation got its type: the ASN list or the pattern that matched, or none. */
export type RuleMatch =
  | { readonly kind: "asn"; readonly orgType: RuleOrgType; readonly rule: AsnRule }
  | { readonly kind: "pattern"; readonly orgType: RuleOrgType; readonly rule: PatternRule }
  | { readonly kind: "none"; readonly orgType: "unknown" }

export interface Classifier {
  readonly classify: (asn: number, org: string) => OrgType
  readonly explain: (asn: number, org: string) => RuleMatch
  /** whether one pattern rule (with its `unless`) matches an organisation name */
  readonly patternMatches: (rule: PatternRule, org: string) => boolean
}

export class InvalidNetworkRules extends Schema.TaggedError<InvalidNetworkRules>()("InvalidNetworkRules", {
  message: Schema.String
}) {}

const compile = (source: string, where: string): RegExp => {
  try {
    return new RegExp(source, "iu")
  } catch (cause) {
    throw new InvalidNetworkRules({ message: `${where}: invalid regular expression ${JSON.stringify(source)}: ${String(cause)}` })
  }
}

/**
 * A classifier over decoded rule files. Throws {@link InvalidNetworkRules} when two files
 * claim the same type, an ASN is listed twice, or a pattern does not compile.
 */
export const makeClassifier = (files: ReadonlyArray<RuleFile>): Classifier => {
  const byAsn = new Map<number, { readonly orgType: RuleOrgType; readonly rule: AsnRule }>()
  const patterns = new Map<RuleOrgType, Array<{ readonly rule: PatternRule; readonly match: RegExp; readonly unless: RegExp | null }>>()
  const compiled = new Map<PatternRule, { readonly match: RegExp; readonly unless: RegExp | null }>()
  for (const file of files) {
    if (patterns.has(file.orgType)) throw new InvalidNetworkRules({ message: `two rule files for ${file.orgType}` })
    const list: Array<{ readonly rule: PatternRule; readonly match: RegExp; readonly unless: RegExp | null }> = []
    patterns.set(file.orgType, list)
    for (const rule of file.asns) {
      const other = byAsn.get(rule.asn)
      if (other !== undefined) {
        throw new InvalidNetworkRules({ message: `AS${rule.asn} is listed as ${other.orgType} and as ${file.orgType}` })
      }
      byAsn.set(rule.asn, { orgType: file.orgType, rule })
    }
    for (const rule of file.patterns) {
      const where = `${file.orgType} pattern ${JSON.stringify(rule.pattern)}`
      const entry = { rule, match: compile(rule.pattern, where), unless: rule.unless === undefined ? null : compile(rule.unless, `${where} unless`) }
      list.push(entry)
      compiled.set(rule, entry)
    }
  }
  const test = (entry: { readonly match: RegExp; readonly unless: RegExp | null }, org: string) =>
    entry.match.test(org) && (entry.unless === null || !entry.unless.test(org))

  const explain = (asn: number, org: string): RuleMatch => {
    const listed = byAsn.get(asn)
    if (listed !== undefined) return { kind: "asn", orgType: listed.orgType, rule: listed.rule }
    for (const orgType of PATTERN_ORDER) {
      for (const entry of patterns.get(orgType) ?? []) {
        if (test(entry, org)) return { kind: "pattern", orgType, rule: entry.rule }
      }
    }
    return { kind: "none", orgType: "unknown" }
  }
  return {
    explain,
    classify: (asn, org) => explain(asn, org).orgType,
    patternMatches: (rule, org) => {
      const entry = compiled.get(rule) ?? { match: compile(rule.pattern, "pattern"), unless: rule.unless === undefined ? null : compile(rule.unless, "unless") }
      return test(entry, org)
    }
  }
}

/** Decodes rule file contents; throws {@link InvalidNetworkRules} with the Schema's message. */
export const decodeRuleFiles = (sources: Readonly<Record<string, unknown>>): ReadonlyArray<RuleFile> =>
  Object.entries(sources).map(([name, source]) => {
    try {
      const file = Schema.decodeUnknownSync(RuleFile)(source)
      if (file.orgType !== name) throw new Error(`the file for ${name} says orgType ${file.orgType}`)
      return file
    } catch (cause) {
      throw new InvalidNetworkRules({ message: `rule file ${name}.json: ${cause instanceof Error ? cause.message : String(cause)}` })
    }
  })

/** The shipped rule files, decoded. */
export const ruleFiles: ReadonlyArray<RuleFile> = decodeRuleFiles(ruleFileSources)

/** The classifier over the shipped rule files. */
export const defaultClassifier: Classifier = makeClassifier(ruleFiles)
