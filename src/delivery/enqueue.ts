import type { Db, Executor } from "../db/client.ts";
import { insertDeliveries, type NewDelivery, type QueuedRef } from "./outbox.ts";
import { type DeliveryQueue, queueDeliveries } from "./queue.ts";

/**
 * Writes deliveries to the outbox, then queues their jobs. The rows are committed first: if the process
 * dies before the jobs reach Redis, the sweeper finds the pending rows and queues them, so nothing is lost.
 * Callers that own a transaction use {@link insertDeliveries} inside it and {@link queueDeliveries} after commit.
 */
export async function enqueueDeliveries(
  db: Db,
  queue: DeliveryQueue,
  items: NewDelivery[],
  maxAttempts: number,
): Promise<{ created: number; pending: QueuedRef[] }> {
  const result = await db.transaction((tx: Executor) => insertDeliveries(tx, items, maxAttempts));
  await queueDeliveries(queue, result.pending);
  return result;
}
