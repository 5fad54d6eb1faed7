/**
 * Writer-thread entry for test/writer-thread.test.ts: the real WriterWorker.ts, which throws an
 * uncaught exception (as a bug in the thread would) right after it reported its first committed
 * batch — with more entries read and not yet committed. A marker file in the configured data
 * dir makes the restarted thread run normally.
 */
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parentPort, workerData } from "node:worker_threads"
import type { FromWriterThread, WriterThreadInput } from "../../src/programs/WriterThreadProtocol.ts"

const marker = join((workerData as WriterThreadInput).config.dataDir, "crashed-once")
const port = parentPort!
if (!existsSync(marker)) {
  const post = port.postMessage.bind(port)
  let crashed = false
  port.postMessage = (message: FromWriterThread) => {
    post(message)
    if (!crashed && message.type === "snapshot" && message.snapshot.written > 0) {
      crashed = true
      writeFileSync(marker, "")
      setImmediate(() => {
        throw new Error("injected crash of the writer thread")
      })
    }
  }
}
await import("../../src/programs/WriterWorker.ts")
