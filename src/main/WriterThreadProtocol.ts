/** Messages between the collector's thread and the writer's worker thread (WriterThread.ts). */
import type { AppConfigValues } from "../layers/AppConfig.ts"
import type { WriterOptions, WriterSnapshot } from "../programs/WriterOptions.ts"

/** `workerData` of the writer thread: the resolved configuration (URLs of embedded servers filled in). */
export interface WriterThreadInput {
  readonly config: AppConfigValues & { readonly primaryRedisUrl: string; readonly databaseUrl: string }
  /**
   * The consumer name, the same for every thread the supervisor starts: a restarted thread
   * takes over the entries its predecessor left pending, and no dead consumer stays in the group.
   */
  readonly consumer: string
}

export type FromWriterThread =
  | { readonly type: "ready"; readonly options: WriterOptions; readonly snapshot: WriterSnapshot }
  | { readonly type: "snapshot"; readonly snapshot: WriterSnapshot }
  | { readonly type: "failed"; readonly message: string }

export type ToWriterThread = { readonly type: "stop" }
