import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { deliveryAttempts } from "../db/schema.ts";
import type { AttemptRecord } from "./outbox.ts";

/** Where an attempt leaves its delivery. */
export type AttemptOutcome = { status: "delivered" | "failed" } | { status: "pending"; retryAt: Date };

interface Pending {
  attempt: AttemptRecord;
  generation: number;
  outcome: AttemptOutcome;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Writes attempt outcomes in batches: every attempt that finished within `maxDelayMs` (default 5) goes
 * into one transaction — one multi-row INSERT of the attempts and one UPDATE of their deliveries — instead
 * of a transaction each. Each caller still waits for its own row to be committed before its job finishes,
 * so a crash never loses an outcome that BullMQ has already forgotten.
 * Only a delivery row still at the attempt's generation is changed, so a manual retry made meanwhile wins.
 */
export class AttemptWriter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly db: Db;
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;

  private readonly highWater: number;
  private readonly onError: (err: unknown, lost: number) => void;
  private uncommitted = 0;

  /**
   * `highWater` (default 2 000) bounds the outcomes {@link accept} leaves uncommitted; `onError` hears about a
   * batch that could not be written.
   */
  constructor(
    db: Db,
    options: {
      maxBatch?: number;
      maxDelayMs?: number;
      highWater?: number;
      onError?: (err: unknown, lost: number) => void;
    } = {},
  ) {
    this.db = db;
    this.maxBatch = options.maxBatch ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5;
    this.highWater = options.highWater ?? 2000;
    this.onError = options.onError ?? (() => {});
  }

  /**
   * Queues an outcome without waiting for its commit, so a worker slot is not held for a database round trip.
   * Nothing is lost if the process dies first: the delivery row is still `pending` under its lease, and once
   * the lease lapses the sweeper queues it again (at least once, same Idempotency-Key). When more than
   * `highWater` outcomes are uncommitted it waits for this one's commit instead, so a slow database slows the
   * workers down rather than filling memory.
   */
  async accept(attempt: AttemptRecord, generation: number, outcome: AttemptOutcome): Promise<void> {
    const committed = this.write(attempt, generation, outcome);
    if (this.uncommitted > this.highWater) {
      await committed;
      return;
    }
    committed.catch((err: unknown) => this.onError(err, 1));
  }

  /** Resolves once the attempt and its delivery's new state are committed. */
  write(attempt: AttemptRecord, generation: number, outcome: AttemptOutcome): Promise<void> {
    this.uncommitted++;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ attempt, generation, outcome, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), this.maxDelayMs);
    });
  }

  /** Writes whatever is waiting and waits for every batch in flight. */
  async close(): Promise<void> {
    this.flushNow();
    await Promise.allSettled([...this.inFlight]);
  }

  private flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const p = this.commit(batch)
      .finally(() => {
        this.uncommitted -= batch.length;
      })
      .then(
        () => {
          for (const b of batch) b.resolve();
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async commit(batch: Pending[]): Promise<void> {
    const now = new Date();
    const rows = batch.map((b) => {
      const a = b.attempt;
      return sql`(${a.deliveryId}, ${b.generation}::int, ${b.outcome.status}, ${a.attemptNumber}::int,
        ${a.httpStatus}::int, ${a.errorKind ? `${a.errorKind}: ${a.errorMessage ?? ""}` : null}::text,
        ${a.startedAt.toISOString()}::timestamptz,
        ${b.outcome.status === "delivered" ? now.toISOString() : null}::timestamptz,
        ${b.outcome.status === "pending" ? b.outcome.retryAt.toISOString() : null}::timestamptz)`;
    });
    await this.db.transaction(async (tx) => {
      await tx.insert(deliveryAttempts).values(batch.map((b) => b.attempt));
      await tx.execute(sql`
        update deliveries d set
          status = u.status,
          attempt_count = u.attempt_count,
          last_http_status = u.http_status,
          last_error = u.last_error,
          last_attempt_at = u.last_attempt_at,
          delivered_at = u.delivered_at,
          next_attempt_at = coalesce(u.next_attempt_at, d.next_attempt_at),
          leased_until = null
        from (values ${sql.join(rows, sql`, `)})
          as u(id, generation, status, attempt_count, http_status, last_error, last_attempt_at, delivered_at, next_attempt_at)
        where d.id = u.id and d.generation = u.generation`);
    });
  }
}
