import type { WorkerOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { OutboxSource } from "../src/queue/sweeper.ts";
import { openRedis } from "../src/redis.ts";
import type { Runtime } from "../src/runtime.ts";

/**
 * BullMQ lock settings shared by every worker: a lock lapses 15 s after its worker stops renewing it
 * (SIGKILL, lost network), and stalled jobs are looked for every 10 s, so a killed worker's jobs run
 * again within about 25 s.
 */
const LOCK_DURATION_MS = 15_000;
const STALLED_INTERVAL_MS = 10_000;

export interface RunningWorker {
  /** The outbox this worker drains, for the process's sweeper. */
  outbox: OutboxSource;
  /** Stops taking jobs, waits for jobs in flight, then closes its connection. */
  close(): Promise<void>;
}

/** Options for a worker with its own blocking Redis connection. Infrastructure retries back off to 60 s. */
export function workerOptions(
  rt: Runtime,
  concurrency: number,
): { options: WorkerOptions; connection: Redis } {
  const connection = openRedis(rt.config.redisUrl, "worker");
  // BullMQ re-emits these as worker errors too; this only makes the monitor look at once.
  connection.on("error", () => rt.dependencies.suspect());
  return {
    connection,
    options: {
      connection,
      prefix: rt.config.queuePrefix,
      concurrency,
      lockDuration: LOCK_DURATION_MS,
      stalledInterval: STALLED_INTERVAL_MS,
      maxStalledCount: 10,
      settings: { backoffStrategy: (attemptsMade: number) => Math.min(60_000, 1000 * 2 ** attemptsMade) },
    },
  };
}
