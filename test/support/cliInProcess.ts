/**
 * Runs a `spoolway …` command inside the test process: the same program the binary runs
 * (src/main/SpoolwayCommand.ts `program`, under the runtime's own run-main error reporting and the
 * binary's `teardown` for the exit code), with the arguments and env given (configuration from that
 * env map, not process.env) and stdout+stderr captured. It saves the ~1.5–5 s of starting a Node
 * process per call; the process itself (signals, exit, start-up) is what test/support/daemon.ts
 * `runCli` covers, and each file keeps a few of those.
 */
import { Console as NodeConsole } from "node:console"
import { Writable } from "node:stream"
import { NodeServices } from "@effect/platform-node"
import { ConfigProvider, Console, Context, Effect, Layer, Runtime, Stdio } from "effect"
import { TerminalCapabilities } from "effect/cli"
import { program, teardown } from "../../src/main/SpoolwayCommand.ts"
import { DATA_DIR } from "./daemon.ts"

/**
 * Like `runCli`: one command to completion, its exit code and output (stdout and stderr, in the
 * order written), and stdout alone.
 */
export const runCliInProcess = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; out: string; stdout: string }>((resolvePromise) => {
    let out = ""
    let stdout = ""
    const sink = (isStdout: boolean) =>
      new Writable({
        write(chunk, _encoding, done) {
          out += chunk
          if (isStdout) stdout += chunk
          done()
        }
      })
    const console = new NodeConsole({ stdout: sink(true), stderr: sink(false), colorMode: false })
    const services = Layer.mergeAll(
      Stdio.layerTest({ args: Effect.succeed(args), stdinIsTerminal: Effect.succeed(false), stdoutIsTerminal: Effect.succeed(false), stderrIsTerminal: Effect.succeed(false) }),
      // output to a pipe, as the spawned binary's
      Layer.succeed(TerminalCapabilities.TerminalCapabilities, { canColor: false, canAnimate: false, canPrompt: false }),
      ConfigProvider.layer(ConfigProvider.fromEnv({ env: { LOG_LEVEL: "warn", SPOOLWAY_DATA_DIR: DATA_DIR, ...env } }))
    )
    const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
      // the captured console also for what the runtime itself logs (an unexpected failure)
      fiber.setContext(Context.add(fiber.context, Console.Console, console))
      fiber.addObserver((exit) => teardown(exit, (code) => resolvePromise({ code, out, stdout })))
    })
    // the inner `services` win over NodeServices' Stdio (process.argv) and terminal
    runMain(program.pipe(Effect.provide(services), Effect.provide(NodeServices.layer)), { teardown })
  })
