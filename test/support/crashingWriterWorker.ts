/**
 * Writer-thread entry for test/writer-thread.test.ts: the real WriterWorker.ts, which throws an
 * uncaught exception (as a bug in the thread would) at the first counters report after it has
 * written something and while its consumer holds entries read and not yet acknowledged (checked
 * with XPENDING, so the crash never falls into a moment with nothing in hand). A marker file in
 * the configured data dir makes the restarted thread run normally.
 */
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parentPort, workerData } from "node:worker_threads"
import { Redis } from "ioredis"
import { primaryStreamKey, writerGroup } from "../../src/domain/Streams.ts"
import type { FromWriterThread, WriterThreadInput } from "../../src/main/WriterThreadProtocol.ts"

const { config, consumer } = workerData as WriterThreadInput
const marker = join(config.dataDir, "crashed-once")
const port = parentPort!
if (!existsSync(marker)) {
  const redis = new Redis(config.primaryRedisUrl)
  const post = port.postMessage.bind(port)
  let crashed = false
  let checking = false
  port.postMessage = (message: FromWriterThread) => {
    post(message)
    if (crashed || checking || message.type !== "snapshot" || message.snapshot.written === 0) return
    checking = true
    redis.xpending(primaryStreamKey(config.streamPrefix), writerGroup(config.streamPrefix), "-", "+", 1, consumer).then(
      (held) => {
        checking = false
        if (crashed || (held as Array<unknown>).length === 0) return
        crashed = true
        writeFileSync(marker, "")
        redis.disconnect()
        setImmediate(() => {
          throw new Error("injected crash of the writer thread")
        })
      },
      () => {
        checking = false
      }
    )
  }
}
await import("../../src/main/WriterWorker.ts")
