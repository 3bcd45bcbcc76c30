import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { type DeliveryJob, deliveryJobId, QUEUES } from "../jobs.ts";
import type { QueuedRef } from "./outbox.ts";

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
      name: "deliver",
      data: { d: r.id, g: r.generation },
      opts: { jobId: deliveryJobId(r.id, r.generation), delay: Math.max(0, r.nextAttemptAt.getTime() - now) },
    })),
  );
}

/** Redis key of a job's hash; it exists exactly while the job is waiting, delayed or active. */
export function jobKey(queue: DeliveryQueue, ref: Pick<QueuedRef, "id" | "generation">): string {
  return `${queue.opts.prefix}:${queue.name}:${deliveryJobId(ref.id, ref.generation)}`;
}
