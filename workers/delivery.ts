import { UnrecoverableError, Worker } from "bullmq";
import { runDeliveryJob } from "../src/delivery/attempt.ts";
import { deliveryOutbox } from "../src/delivery/queue.ts";
import { DecryptError } from "../src/errors.ts";
import { type DeliveryJob, QUEUES } from "../src/jobs.ts";
import { Sweeper } from "../src/queue/sweeper.ts";
import { openRedis } from "../src/redis.ts";
import type { Runtime } from "../src/runtime.ts";

/**
 * BullMQ lock settings: a lock lapses 15 s after its worker stops renewing it (SIGKILL, lost network), and
 * stalled jobs are looked for every 10 s, so a killed worker's deliveries run again within about 25 s.
 */
const LOCK_DURATION_MS = 15_000;
const STALLED_INTERVAL_MS = 10_000;

export interface RunningWorker {
  /** Stops taking jobs, waits for attempts in flight (each ends within 5 s), then closes connections. */
  close(): Promise<void>;
}

/** Starts the delivery worker and the outbox sweeper in this process. */
export function startDeliveryWorker(rt: Runtime): RunningWorker {
  const connection = openRedis(rt.config.redisUrl, "worker");
  const log = rt.log.child({ worker: "delivery" });
  const worker = new Worker<DeliveryJob>(
    QUEUES.delivery,
    async (job, token) => {
      try {
        return await runDeliveryJob(
          { db: rt.database.db, box: rt.box, http: rt.http, log, retrySchedule: rt.config.retrySchedule },
          job,
          token,
        );
      } catch (err) {
        // A secret that does not open will not open on a quick retry either; the sweeper picks the delivery
        // up again after its claim lapses, which is when a corrected SECRETS_KEY takes effect.
        if (err instanceof DecryptError) throw new UnrecoverableError(err.message);
        throw err;
      }
    },
    {
      connection,
      prefix: rt.config.queuePrefix,
      concurrency: rt.config.deliveryConcurrency,
      lockDuration: LOCK_DURATION_MS,
      stalledInterval: STALLED_INTERVAL_MS,
      maxStalledCount: 10,
      settings: { backoffStrategy: (attemptsMade: number) => Math.min(60_000, 1000 * 2 ** attemptsMade) },
    },
  );
  worker.on("failed", (job, err) => log.error({ job: job?.id, err: err.message }, "delivery job error"));
  worker.on("error", (err) => log.error({ err: err.message }, "delivery worker error"));
  const sweeper = new Sweeper(
    rt.redis,
    [deliveryOutbox(rt.database.db, rt.deliveryQueue)],
    log,
    rt.config.sweepIntervalMs,
  );
  sweeper.start();
  return {
    async close() {
      await sweeper.stop();
      await worker.close();
      connection.disconnect();
    },
  };
}
