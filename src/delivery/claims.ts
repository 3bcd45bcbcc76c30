import type { Db } from "../db/client.ts";
import { type ClaimedDelivery, claimDeliveries } from "./outbox.ts";

interface Waiting {
  id: string;
  generation: number;
  resolve: (claimed: ClaimedDelivery | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Claims deliveries for the jobs a worker starts at about the same moment in one statement, instead of one
 * round trip and one transaction each: every claim asked for within `maxDelayMs` (default 2) goes into one
 * UPDATE. At high rates that is most of the per-attempt work Postgres does before an attempt can start.
 */
export class ClaimBatcher {
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly db: Db;
  private readonly leaseMs: number;
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;

  constructor(db: Db, leaseMs: number, options: { maxBatch?: number; maxDelayMs?: number } = {}) {
    this.db = db;
    this.leaseMs = leaseMs;
    this.maxBatch = options.maxBatch ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 2;
  }

  /** The claimed delivery, or `undefined` when it cannot be claimed now (see whyUnclaimable). */
  claim(id: string, generation: number): Promise<ClaimedDelivery | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, generation, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    claimDeliveries(this.db, batch, this.leaseMs).then(
      (claimed) => {
        for (const w of batch) {
          const c = claimed.get(w.id);
          // A manual retry's job and the older job of the same delivery can share a batch: the claim is the
          // one of the generation it matched, never both.
          w.resolve(c?.generation === w.generation ? c : undefined);
        }
      },
      (err: unknown) => {
        for (const w of batch) w.reject(err);
      },
    );
  }
}
