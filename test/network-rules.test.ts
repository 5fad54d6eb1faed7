/**
 * The classification rule files (src/domain/network/*.json): they decode, every rule's test case
 * holds against the real data set, and the precedence between rules is as documented.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { findEntry } from "../src/domain/AsnTable.ts"
import { makeNetworkOf } from "../src/domain/Network.ts"
import {
  decodeRuleFiles,
  defaultClassifier,
  InvalidNetworkRules,
  makeClassifier,
  PATTERN_ORDER,
  type RuleFile,
  ruleFiles,
  ruleFileSources
} from "../src/domain/NetworkRules.ts"
import { loadAsnData } from "../src/layers/NetworkLookup.ts"

const { table } = await Effect.runPromise(loadAsnData())
const networkOf = makeNetworkOf(table)

/** an ASN listed in no rule file, so only the name patterns decide */
const UNLISTED = 4294967294

const asnRules = ruleFiles.flatMap((file) => file.asns.map((rule) => ({ orgType: file.orgType, ...rule })))
const patternRules = ruleFiles.flatMap((file) => file.patterns.map((rule) => ({ orgType: file.orgType, rule })))

describe("rule files", () => {
  it("one file per type, all decode", () => {
    assert.deepStrictEqual(ruleFiles.map((file) => file.orgType).sort(), [...PATTERN_ORDER].sort())
    assert.deepStrictEqual(Object.keys(ruleFileSources).sort(), [...PATTERN_ORDER].sort())
    assert.isAbove(asnRules.length, 100)
    assert.isAbove(patternRules.length, 30)
  })

  it.each(asnRules)("AS$asn ($org) → $orgType: its address is in that AS in the data set", ({ asn, ip, org, orgType }) => {
    const entry = findEntry(table, ip)
    assert.isAtLeast(entry, 0, `${ip} is in no range`)
    assert.strictEqual(table.asns[entry], asn)
    assert.strictEqual(table.orgs[entry], org, "the rule's org should be the data set's name for the AS")
    assert.strictEqual(defaultClassifier.classify(asn, "any name at all"), orgType)
    const info = networkOf(ip)
    assert.strictEqual(info.asn, asn)
    assert.strictEqual(info.orgType, orgType)
  })

  it.each(patternRules.map(({ orgType, rule }) => ({ orgType, pattern: rule.pattern, rule })))(
    "$orgType /$pattern/: examples match and classify as $orgType, counter-examples do not match",
    ({ orgType, rule }) => {
      for (const example of rule.examples) {
        assert.isTrue(defaultClassifier.patternMatches(rule, example), example)
        assert.strictEqual(defaultClassifier.classify(UNLISTED, example), orgType, example)
        const explained = defaultClassifier.explain(UNLISTED, example)
        assert.strictEqual(explained.kind === "pattern" && explained.rule, rule, `${example} is decided by this very rule`)
      }
      for (const counter of rule.counterExamples ?? []) assert.isFalse(defaultClassifier.patternMatches(rule, counter), counter)
    }
  )
})

describe("precedence", () => {
  it("a listed ASN wins over every pattern", () => {
    assert.strictEqual(defaultClassifier.classify(15169, "Some State University VPN"), "hosting")
    assert.deepStrictEqual(defaultClassifier.explain(721, "x").kind, "asn")
  })

  it("patterns: vpn > hosting > education > government > business > isp, then unknown", () => {
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "University Hosting VPN"), "vpn")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "University Hosting Telecom"), "hosting")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "Ministry of Education University Network"), "education")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "City of Springfield Hospital"), "government")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "Telecom Bank"), "business")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "Telecom Ltd"), "isp")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "LLC \"SPUTNIK\""), "unknown")
    assert.deepStrictEqual(defaultClassifier.explain(UNLISTED, "LLC \"SPUTNIK\""), { kind: "none", orgType: "unknown" })
  })

  it("`unless` vetoes a match", () => {
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "Police and Fire Federal Credit Union"), "business")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "Royal Thai Police"), "government")
  })

  it("matching ignores case", () => {
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "UNIVERSITY OF SOMEWHERE"), "education")
    assert.strictEqual(defaultClassifier.classify(UNLISTED, "universität wien"), "education")
  })
})

describe("validation", () => {
  const file = (orgType: RuleFile["orgType"], extra: Partial<RuleFile> = {}): RuleFile => ({
    orgType,
    description: "d",
    asns: [],
    patterns: [],
    ...extra
  })
  const rejects = (f: () => unknown, fragment: string) => {
    try {
      f()
    } catch (error) {
      assert.instanceOf(error, InvalidNetworkRules)
      assert.include((error as InvalidNetworkRules).message, fragment)
      return
    }
    assert.fail("accepted")
  }

  it("an ASN listed twice is rejected", () => {
    const asn = { asn: 64500, org: "x", ip: "192.0.2.1" }
    rejects(() => makeClassifier([file("hosting", { asns: [asn] }), file("isp", { asns: [asn] })]), "AS64500 is listed as hosting and as isp")
  })

  it("a pattern that does not compile is rejected", () => {
    rejects(() => makeClassifier([file("vpn", { patterns: [{ pattern: "(unclosed", examples: ["x"] }] })]), "invalid regular expression")
    rejects(() => makeClassifier([file("vpn", { patterns: [{ pattern: "ok", unless: "[", examples: ["ok"] }] })]), "unless")
  })

  it("two files for one type are rejected", () => {
    rejects(() => makeClassifier([file("vpn"), file("vpn")]), "two rule files for vpn")
  })

  it("a rule without a test case does not decode", () => {
    rejects(() => decodeRuleFiles({ vpn: { ...file("vpn"), patterns: [{ pattern: "vpn", examples: [] }] } }), "rule file vpn.json")
    rejects(() => decodeRuleFiles({ vpn: { ...file("vpn"), asns: [{ asn: 1, org: "x" }] } }), "rule file vpn.json")
  })

  it("unknown types, bad ASNs and misnamed files do not decode", () => {
    rejects(() => decodeRuleFiles({ cafe: { ...file("vpn"), orgType: "cafe" } }), "rule file cafe.json")
    rejects(() => decodeRuleFiles({ vpn: { ...file("vpn"), asns: [{ asn: 0, org: "x", ip: "1.1.1.1" }] } }), "rule file vpn.json")
    rejects(() => decodeRuleFiles({ vpn: { ...file("vpn"), asns: [{ asn: 2 ** 32, org: "x", ip: "1.1.1.1" }] } }), "rule file vpn.json")
    rejects(() => decodeRuleFiles({ isp: file("vpn") }), "says orgType vpn")
  })

  it("the shipped files pass every check above", () => {
    assert.strictEqual(makeClassifier(decodeRuleFiles(ruleFileSources)).classify(16509, ""), "hosting")
  })
})
