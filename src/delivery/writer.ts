import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { isUnavailable } from "../api/errors.ts";
import type { Db, Executor } from "../db/client.ts";
import type { AttemptRecord } from "./outbox.ts";

/**
 * What an attempt asks of its delivery. `ok`: the receiver took it. Otherwise the delivery waits `retryInMs`
 * (counted from the commit, on the database clock) for its next attempt, or ends `failed` when its attempts
 * are used up; the database decides which, so an attempt granted meanwhile (a manual retry) is not missed.
 */
export interface AttemptOutcome {
  ok: boolean;
  retryInMs: number;
  /** The destination refused it for good (a permanent error): `failed` now, whatever attempts are left. */
  final?: boolean;
}

interface Pending {
  attempt: AttemptRecord;
  claimToken: string;
  generation: number;
  outcome: AttemptOutcome;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface WriterOptions {
  /** Most outcomes per transaction. Default 500. */
  maxBatch?: number;
  /** How long an outcome waits for others to share its transaction, in ms. Default 5. */
  maxDelayMs?: number;
  /** Uncommitted outcomes above which {@link AttemptWriter.accept} waits for its own commit. Default 2 000. */
  highWater?: number;
  /** Longest pause between tries while Postgres is unavailable, in ms. Default 5 000. */
  maxBackoffMs?: number;
  /** Hears about an outcome that could not be stored even without its response excerpt. */
  onDropped?: (err: unknown, deliveryId: string) => void;
  /** Hears once that outcomes wait for an unavailable Postgres (not at every try). */
  onUnavailable?: (err: unknown, outcomes: number) => void;
  /** Hears once that outcomes are written again after {@link WriterOptions.onUnavailable}. */
  onAvailable?: () => void;
}

/** A NUL cannot be stored in a Postgres text column; anything else a receiver sends can. */
export function storableText(s: string | null): string | null {
  return s === null ? null : s.replaceAll("\u0000", "\uFFFD");
}

/**
 * Writes attempt outcomes in batches: every attempt that finished within `maxDelayMs` goes into one
 * transaction — one multi-row INSERT of the attempts and one UPDATE of their deliveries.
 *
 * What it promises:
 * - An outcome applies only while its claim is the delivery's current one (`claim_token`): an attempt whose
 *   lease lapsed and was claimed again, or a delivery since deleted, leaves the newer state alone. Its
 *   attempt row is still written when the delivery exists, since the request did go out.
 * - One outcome never costs the others of its batch: when a batch fails for anything but an unavailable
 *   database, each outcome is written on its own, and one that still fails is written without its response
 *   excerpt and error text; only if that fails too is it dropped (reported to `onDropped`), and then its
 *   delivery is attempted again once its lease lapses.
 * - While Postgres is unavailable, batches are kept and tried again with back-off until they commit or the
 *   writer is closed.
 */
export class AttemptWriter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly db: Db;
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly highWater: number;
  private readonly maxBackoffMs: number;
  private readonly onDropped: (err: unknown, deliveryId: string) => void;
  private readonly onUnavailable: (err: unknown, outcomes: number) => void;
  private readonly onAvailable: () => void;
  private unavailable = false;
  private readonly closing = new AbortController();
  private uncommitted = 0;

  constructor(db: Db, options: WriterOptions = {}) {
    this.db = db;
    this.maxBatch = options.maxBatch ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5;
    this.highWater = options.highWater ?? 2000;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.onDropped = options.onDropped ?? (() => {});
    this.onUnavailable = options.onUnavailable ?? (() => {});
    this.onAvailable = options.onAvailable ?? (() => {});
  }

  /**
   * Queues an outcome without waiting for its commit, so a worker slot is not held for a database round trip.
   * Nothing is lost if the process dies first: the delivery row is still `pending` under its lease, and once
   * the lease lapses the sweeper queues it again (at least once, same Idempotency-Key). When more than
   * `highWater` outcomes are uncommitted it waits for this one's commit instead, so a slow or absent
   * database slows the workers down rather than filling memory.
   */
  async accept(
    attempt: AttemptRecord,
    claim: { token: string; generation: number },
    outcome: AttemptOutcome,
  ): Promise<void> {
    const committed = this.write(attempt, claim, outcome);
    if (this.uncommitted > this.highWater) {
      await committed;
      return;
    }
    // Failures are handled (retried, then reported to onDropped) inside; nothing is left to the caller.
    committed.catch(() => {});
  }

  /** Resolves once the attempt and its delivery's new state are committed (or the outcome was dropped). */
  write(
    attempt: AttemptRecord,
    claim: { token: string; generation: number },
    outcome: AttemptOutcome,
  ): Promise<void> {
    this.uncommitted++;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        attempt,
        claimToken: claim.token,
        generation: claim.generation,
        outcome,
        resolve,
        reject,
      });
      if (this.queue.length >= this.maxBatch) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), this.maxDelayMs);
    });
  }

  /**
   * Writes whatever is waiting and waits for every batch in flight, for at most `timeoutMs` (default 5 000)
   * while Postgres is unavailable; what is still unwritten then is left to the leases (attempted again).
   */
  async close(timeoutMs = 5000): Promise<void> {
    this.flushNow();
    const deadline = setTimeout(() => this.closing.abort(), timeoutMs);
    try {
      await Promise.allSettled([...this.inFlight]);
    } finally {
      clearTimeout(deadline);
    }
  }

  private flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const p = this.commitWithRetry(batch)
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

  /** Commits a batch, waiting out an unavailable database; splits it when the batch itself is at fault. */
  private async commitWithRetry(batch: Pending[]): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        // The first try takes the plain insert; a try after a failure the careful one (see insertAttempts).
        await commitOutcomes(this.db, batch, tries === 0 ? "fast" : "full");
        if (this.unavailable) {
          this.unavailable = false;
          this.onAvailable();
        }
        return;
      } catch (err) {
        if (!isUnavailable(err)) break;
        if (this.closing.signal.aborted) throw err;
        if (!this.unavailable) {
          this.unavailable = true;
          this.onUnavailable(err, batch.length);
        }
        const pause = Math.min(this.maxBackoffMs, 100 * 2 ** tries);
        await sleep(pause, undefined, { signal: this.closing.signal }).catch(() => {});
        if (this.closing.signal.aborted) throw err;
      }
    }
    for (const one of batch) {
      try {
        await commitOutcomes(this.db, [one], "full");
      } catch {
        try {
          await commitOutcomes(this.db, [one], "bare");
        } catch (err) {
          this.onDropped(err, one.attempt.deliveryId);
        }
      }
    }
  }
}

/**
 * Writes attempts and applies their outcomes in one transaction. `fast` inserts the attempts as they are
 * (the usual case: every delivery still there, nothing written before); `full` skips attempts of deliveries
 * that are gone and attempts already stored (a try after a commit whose answer was lost); `bare` is `full`
 * without what came from the receiver (excerpt, error text), for an outcome whose full form could not be
 * stored.
 */
async function commitOutcomes(db: Db, batch: Pending[], form: "fast" | "full" | "bare"): Promise<void> {
  const full = form !== "bare";
  await db.transaction(async (tx) => {
    await insertAttempts(tx, batch, full, form !== "fast");
    const rows = batch.map((b) => {
      const a = b.attempt;
      const lastError = a.errorKind
        ? storableText(full ? `${a.errorKind}: ${a.errorMessage ?? ""}` : a.errorKind)
        : null;
      return sql`(${a.deliveryId}, ${b.claimToken}, ${b.generation}::int, ${b.outcome.ok}::boolean,
        ${a.httpStatus}::int, ${lastError}::text, ${a.startedAt.toISOString()}::timestamptz,
        ${Math.max(0, Math.round(b.outcome.retryInMs))}::int, ${b.outcome.final === true}::boolean)`;
    });
    // Status and next time are decided here, against the row as it is now: a manual retry made while the
    // attempt ran has raised max_attempts (so no `failed`) and set its own due time (kept), and a
    // destination disabled meanwhile holds what did not get through.
    await tx.execute(sql`
      update deliveries d set
        status = case
          when u.ok then 'delivered'
          when u.final then 'failed'
          when d.status = 'held' or not w.enabled then 'held'
          when d.attempt_count >= d.max_attempts then 'failed'
          else 'pending' end,
        last_http_status = u.http_status,
        last_error = u.last_error,
        last_attempt_at = u.last_attempt_at,
        delivered_at = case when u.ok then now() else d.delivered_at end,
        next_attempt_at = case
          when not u.ok and d.generation = u.generation
            then now() + make_interval(secs => u.retry_in_ms / 1000.0)
          else d.next_attempt_at end,
        leased_until = null,
        claim_token = null
      from (values ${sql.join(rows, sql`, `)})
        as u(id, claim_token, generation, ok, http_status, last_error, last_attempt_at, retry_in_ms, final),
        webhooks w
      where d.id = u.id and d.claim_token = u.claim_token and d.status in ('pending', 'held')
        and w.id = d.webhook_id`);
  });
}

/**
 * Inserts the attempts. `careful`: only those of deliveries that still exist (a deleted destination takes
 * its deliveries with it), and once each, so a batch tried again after a commit whose answer was lost does
 * not write its attempts twice; it costs two index look-ups per attempt, so only tries after a failure pay it.
 */
async function insertAttempts(
  tx: Executor,
  batch: Pending[],
  full: boolean,
  careful: boolean,
): Promise<void> {
  const rows = batch.map(({ attempt: a }) => {
    const message = full ? storableText(a.errorMessage) : null;
    const excerpt = full ? storableText(a.responseExcerpt) : null;
    return sql`(${a.deliveryId}, ${a.attemptNumber}::int, ${a.startedAt.toISOString()}::timestamptz,
      ${a.durationMs}::int, ${a.httpStatus}::int, ${a.errorKind}::text, ${message}::text, ${excerpt}::text)`;
  });
  await tx.execute(sql`
    insert into delivery_attempts
      (delivery_id, attempt_number, started_at, duration_ms, http_status, error_kind, error_message, response_excerpt)
    select v.* from (values ${sql.join(rows, sql`, `)})
      as v(delivery_id, attempt_number, started_at, duration_ms, http_status, error_kind, error_message, response_excerpt)
    ${
      careful
        ? sql`where exists (select 1 from deliveries d where d.id = v.delivery_id)
      and not exists (select 1 from delivery_attempts x
        where x.delivery_id = v.delivery_id and x.attempt_number = v.attempt_number)`
        : sql``
    }`);
}
