/**
 * spoolway — the single entry point (docs/operations.md, CLI); the commands are SpoolwayCommand.ts.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { program, teardown } from "./SpoolwayCommand.ts"

program.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain({ teardown }))
