import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "../log.ts";

/** A pending row of an outbox table and the job that runs it. */
export interface OutboxRef {
  id: string;
  /** Job id in the queue: the row's id plus its generation or version. */
  jobId: string;
  name: string;
  data: object;
  /** How long until the row is due, by the database clock, in ms (0 when due). */
  delayMs: number;
  /** Where the next page starts: `list(cursor)` returns the rows after this one. */
  cursor: string;
}

/**
 * One Postgres outbox whose rows each need a BullMQ job. `list` pages through pending rows after the
 * cursor `after` ("" for the first page; then the last row's `cursor`), in an order an index serves, so a
 * page costs what it returns; with `overdueMs` only those that should have run more than that long ago, by
 * the database clock (never this process's, which may be off).
 */
export interface OutboxSource {
  name: string;
  queue: Queue;
  list(after: string, limit: number, overdueMs?: number): Promise<OutboxRef[]>;
  /** Extra repair run after each sweep (e.g. releasing held deliveries); returns how many rows it queued. */
  repair?(): Promise<number>;
}

/** A row this far past its time with no job in Redis has lost its job. */
const OVERDUE_GRACE_MS = 5000;
const PAGE = 1000;

/**
 * Keeps Redis in step with the Postgres outboxes. Redis is a cache of which rows are due: it may be
 * flushed or restarted empty, and a process may die between committing a row and queueing its job.
 * Each sweep (every `intervalMs`), per source:
 * - if the source's marker key is gone (Redis flushed or replaced), every pending row is queued again
 *   for its own time;
 * - otherwise only rows that are overdue and have no job are queued again.
 * Several sweepers may run at once: queueing an existing job id is a no-op.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly redis: Redis;
  private readonly sources: OutboxSource[];
  private readonly log: Logger;
  private readonly intervalMs: number;

  constructor(redis: Redis, sources: OutboxSource[], log: Logger, intervalMs: number) {
    this.redis = redis;
    this.sources = sources;
    this.log = log;
    this.intervalMs = intervalMs;
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

  /** One pass over every source; returns how many rows it queued again. */
  async sweepOnce(): Promise<number> {
    let total = 0;
    for (const source of this.sources) total += await this.sweepSource(source);
    return total;
  }

  private async sweepSource(source: OutboxSource): Promise<number> {
    const prefix = `${source.queue.opts.prefix}:${source.queue.name}`;
    const fresh = (await this.redis.set(`${prefix}:outbox-marker`, String(Date.now()), "NX")) === "OK";
    const overdueMs = fresh ? undefined : OVERDUE_GRACE_MS;
    let requeued = 0;
    let after = "";
    for (;;) {
      const page = await source.list(after, PAGE, overdueMs);
      if (page.length === 0) break;
      const pipeline = this.redis.pipeline();
      for (const ref of page) pipeline.exists(`${prefix}:${ref.jobId}`);
      const results = (await pipeline.exec()) ?? [];
      const missing = page.filter((_, i) => results[i]?.[1] === 0);
      await source.queue.addBulk(
        missing.map((r) => ({ name: r.name, data: r.data, opts: { jobId: r.jobId, delay: r.delayMs } })),
      );
      requeued += missing.length;
      after = (page[page.length - 1] as OutboxRef).cursor;
      if (page.length < PAGE) break;
    }
    const repaired = source.repair ? await source.repair() : 0;
    if (requeued + repaired > 0) {
      this.log.info({ source: source.name, requeued, repaired, fullScan: fresh }, "outbox sweep queued jobs");
    }
    return requeued + repaired;
  }
}
