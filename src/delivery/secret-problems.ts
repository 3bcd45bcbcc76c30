import type { Logger } from "../log.ts";

/** How often the same problem is logged again while it lasts, in ms. */
export const SECRET_PROBLEM_LOG_INTERVAL_MS = 60_000;

/**
 * Reports secrets that do not open: at most one log line a minute, naming the key ids the stored data needs
 * and the error, instead of a line per delivery.
 */
export class SecretProblems {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly needed = new Set<string>();
  private lastLoggedAt = Number.NEGATIVE_INFINITY;
  private held = 0;

  /** `intervalMs` defaults to {@link SECRET_PROBLEM_LOG_INTERVAL_MS}. */
  constructor(log: Logger, intervalMs = SECRET_PROBLEM_LOG_INTERVAL_MS) {
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** One delivery held because a secret sealed under `keyId` did not open. */
  report(keyId: string | undefined, err: Error): void {
    this.held++;
    if (keyId) this.needed.add(keyId);
    const now = Date.now();
    if (now - this.lastLoggedAt < this.intervalMs) return;
    this.lastLoggedAt = now;
    this.log.error(
      { neededKeyIds: [...this.needed], heldSinceLastLine: this.held, err: err.message },
      "stored secrets cannot be opened with SECRETS_KEY; deliveries are held until the key that sealed them is configured",
    );
    this.held = 0;
  }
}
