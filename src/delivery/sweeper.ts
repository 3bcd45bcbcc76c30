import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import type { Logger } from "../log.ts";
import { listPending, type QueuedRef, releaseHeld } from "./outbox.ts";
import { type DeliveryQueue, jobKey, queueDeliveries } from "./queue.ts";

/** A pending delivery this far past its time with no job in Redis has lost its job. */
const OVERDUE_GRACE_MS = 5000;
const PAGE = 1000;

/**
 * Keeps Redis in step with the outbox. Redis here is a cache of which deliveries are due: it may be
 * flushed or restarted empty, and a process may die between committing a delivery and queueing its job.
 * Each sweep (every `intervalMs`):
 * - if the marker key is gone (Redis was flushed or replaced), every pending delivery is queued again
 *   for its own next attempt time;
 * - otherwise only pending deliveries that are overdue and have no job are queued again;
 * - held deliveries whose destination is enabled are released.
 * Several sweepers may run at once: queueing an existing job id is a no-op.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly markerKey: string;
  private readonly db: Db;
  private readonly redis: Redis;
  private readonly queue: DeliveryQueue;
  private readonly log: Logger;
  private readonly intervalMs: number;

  constructor(db: Db, redis: Redis, queue: DeliveryQueue, log: Logger, intervalMs: number) {
    this.db = db;
    this.redis = redis;
    this.queue = queue;
    this.log = log;
    this.intervalMs = intervalMs;
    this.markerKey = `${queue.opts.prefix}:${queue.name}:outbox-marker`;
  }

  start(): void {
    const tick = () => {
      this.running = this.sweepOnce()
        .catch((err: unknown) => this.log.error({ err }, "outbox sweep failed; will try again"))
        .finally(() => {
          this.running = undefined;
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass; returns how many deliveries it queued again. */
  async sweepOnce(): Promise<number> {
    const fresh = (await this.redis.set(this.markerKey, String(Date.now()), "NX")) === "OK";
    const dueBefore = fresh ? undefined : new Date(Date.now() - OVERDUE_GRACE_MS);
    let requeued = 0;
    let after = "";
    for (;;) {
      const page = await listPending(this.db, after, PAGE, dueBefore);
      if (page.length === 0) break;
      requeued += await this.queueMissing(page);
      after = (page[page.length - 1] as QueuedRef).id;
      if (page.length < PAGE) break;
    }
    const released = await releaseHeld(this.db);
    await queueDeliveries(this.queue, released);
    if (requeued + released.length > 0) {
      this.log.info(
        { requeued, released: released.length, fullScan: fresh },
        "outbox sweep queued deliveries",
      );
    }
    return requeued + released.length;
  }

  private async queueMissing(page: QueuedRef[]): Promise<number> {
    const pipeline = this.redis.pipeline();
    for (const ref of page) pipeline.exists(jobKey(this.queue, ref));
    const results = (await pipeline.exec()) ?? [];
    const missing = page.filter((_, i) => results[i]?.[1] === 0);
    await queueDeliveries(this.queue, missing);
    return missing.length;
  }
}
