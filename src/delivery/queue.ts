import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import { type DeliveryJob, deliveryJobId, QUEUES } from "../jobs.ts";
import type { OutboxRef, OutboxSource } from "../queue/sweeper.ts";
import { listPending, type QueuedRef, releaseHeld } from "./outbox.ts";

export type DeliveryQueue = Queue<DeliveryJob>;

/**
 * Jobs are removed once finished: Postgres keeps the history, and a missing job is how the sweeper
 * knows a pending delivery needs queueing again. `attempts` here only covers infrastructure faults
 * (the database away mid-attempt); delivery retries are scheduled by the worker itself.
 */
export const DELIVERY_JOB_OPTIONS = {
  removeOnComplete: true,
  removeOnFail: true,
  attempts: 20,
  backoff: { type: "custom" },
} as const;

const DELIVERY_JOB_NAME = "deliver";

export function openDeliveryQueue(connection: Redis, prefix: string): DeliveryQueue {
  return new Queue<DeliveryJob>(QUEUES.delivery, {
    connection,
    prefix,
    defaultJobOptions: DELIVERY_JOB_OPTIONS,
  });
}

/**
 * Queues one job per delivery, delayed to its next attempt time. Adding a job id that exists is a no-op
 * in BullMQ, so calling this twice for the same rows is safe.
 */
export async function queueDeliveries(
  queue: DeliveryQueue,
  refs: QueuedRef[],
  now = Date.now(),
): Promise<void> {
  if (refs.length === 0) return;
  await queue.addBulk(
    refs.map((r) => ({
      name: DELIVERY_JOB_NAME,
      data: { d: r.id, g: r.generation, w: r.webhookId },
      opts: { jobId: deliveryJobId(r.id, r.generation), delay: Math.max(0, r.nextAttemptAt.getTime() - now) },
    })),
  );
}

/** The deliveries outbox as the sweeper sees it: pending rows, and held rows an enable released. */
export function deliveryOutbox(db: Db, queue: DeliveryQueue): OutboxSource {
  const toRef = (r: QueuedRef): OutboxRef => ({
    id: r.id,
    jobId: deliveryJobId(r.id, r.generation),
    name: DELIVERY_JOB_NAME,
    data: { d: r.id, g: r.generation, w: r.webhookId } satisfies DeliveryJob,
    runAt: r.nextAttemptAt,
  });
  return {
    name: "deliveries",
    queue,
    list: async (after, limit, dueBefore) => (await listPending(db, after, limit, dueBefore)).map(toRef),
    async repair() {
      const released = await releaseHeld(db);
      await queueDeliveries(queue, released);
      return released.length;
    },
  };
}
