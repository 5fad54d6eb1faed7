/**
 * `spoolway network info | lookup <ip>` (docs/network.md): registered as one subcommand of the
 * CLI. Reads NETWORK_DATA_DIR and TOR_EXIT_LIST like the writer.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { NetworkLookup } from "../layers/NetworkLookup.ts"
import { formatLookupReport, formatNetworkReport, lookupReport, networkReport } from "../programs/NetworkInfo.ts"

const json = Flag.Boolean("json").pipe(Flag.withDescription("print JSON"), Flag.withDefault(false))

const info = Command.make("info", { json }, ({ json }) =>
  Effect.gen(function*() {
    const report = yield* networkReport()
    yield* Console.log(json ? JSON.stringify(report, null, 2) : formatNetworkReport(report))
  })
).pipe(Command.withDescription("the ASN data set (version, date, range counts, memory, load time), the Tor exit list, org-type counts"))

const lookup = Command.make(
  "lookup",
  { json, ip: Argument.String("ip").pipe(Argument.withDescription("an IPv4 or IPv6 address")) },
  ({ ip, json }) =>
    Effect.gen(function*() {
      const report = yield* lookupReport(ip)
      yield* Console.log(json ? JSON.stringify(report, null, 2) : formatLookupReport(ip, report))
    }).pipe(Effect.provide(NetworkLookup.layer))
).pipe(Command.withDescription("the network fields the writer would store for an address, and the rule that decided them"))

export const networkCommand = Command.make("network").pipe(
  Command.withDescription("network enrichment: ASN, organisation, datacenter / VPN / government, Tor"),
  Command.withSubcommands([info, lookup])
)
