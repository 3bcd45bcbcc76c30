import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import { type DeliveryJob, deliveryJobId, QUEUES } from "../jobs.ts";
import type { OutboxRef, OutboxSource } from "../queue/sweeper.ts";
import type { DestinationGuard } from "./isolation.ts";
import {
  listPending,
  type PendingRef,
  type QueuedRef,
  RELEASE_BATCH,
  releaseHeld,
  releaseSecretHeld,
  type WalkCursor,
} from "./outbox.ts";

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
 * Queues one job per delivery, delayed until it is due. Adding a job id that exists is a no-op in BullMQ,
 * so calling this twice for the same rows is safe.
 */
export async function queueDeliveries(queue: DeliveryQueue, refs: QueuedRef[]): Promise<void> {
  if (refs.length === 0) return;
  await queue.addBulk(
    refs.map((r) => ({
      name: DELIVERY_JOB_NAME,
      data: { d: r.id, g: r.generation, w: r.webhookId },
      opts: { jobId: deliveryJobId(r.id, r.generation), delay: r.delayMs },
    })),
  );
}

/**
 * Releases a batch at a time with `release` (one bounded statement each, given where the last batch ended
 * when it returns cursors) and queues each batch as it comes, until a batch comes back short. Returns how
 * many were released.
 */
export async function releaseInBatches(
  queue: DeliveryQueue,
  release: (after?: WalkCursor) => Promise<(QueuedRef & { cursor?: WalkCursor })[]>,
  batch = RELEASE_BATCH,
): Promise<number> {
  let total = 0;
  let after: WalkCursor | undefined;
  for (;;) {
    const refs = await release(after);
    await queueDeliveries(queue, refs);
    total += refs.length;
    if (refs.length < batch) return total;
    after = refs.at(-1)?.cursor ?? after;
  }
}

/**
 * The deliveries outbox as the sweeper sees it: pending rows; held rows of destinations that are enabled
 * again (an insert that raced with an enable, or an enable whose releases were cut short); and rows held
 * for a secret that this process's keys (`keyIds`) can now open.
 */
export function deliveryOutbox(
  db: Db,
  queue: DeliveryQueue,
  keyIds: string[],
  guard: Pick<DestinationGuard, "heldBack">,
): OutboxSource {
  const toRef = (r: PendingRef): OutboxRef => ({
    id: r.id,
    jobId: deliveryJobId(r.id, r.generation),
    name: DELIVERY_JOB_NAME,
    data: { d: r.id, g: r.generation, w: r.webhookId } satisfies DeliveryJob,
    delayMs: r.delayMs,
    cursor: r.cursor,
  });
  return {
    name: "deliveries",
    queue,
    async list(after, limit, overdueMs) {
      // Work held back by a full destination or an open breaker is overdue by design, and its jobs are
      // waiting in Redis: looking at it every sweep would cost the whole backlog each time. After a flush
      // (no overdueMs: a full pass) everything is looked at.
      const skip = overdueMs === undefined ? [] : await guard.heldBack();
      return (await listPending(db, after, limit, overdueMs, skip)).map(toRef);
    },
    async repair() {
      const held = await releaseInBatches(queue, () => releaseHeld(db));
      return held + (await releaseInBatches(queue, () => releaseSecretHeld(db, keyIds)));
    },
  };
}
