import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { pruneAuditEvents } from "../audit/log.ts";
import type { Db } from "../db/client.ts";
import type { Logger } from "../log.ts";
import { PRUNE_BATCH, pruneBacklog, pruneDeliveries, pruneRecords, purgeDeletedWebhooks } from "./prune.ts";

/** The advisory lock that lets one process prune at a time (an arbitrary constant of this product's). */
const PRUNE_LOCK = 7_310_442_001;
/** Pause between two batches, in ms, so pruning never crowds out deliveries. */
const BATCH_PAUSE_MS = 20;
/** Longest one run goes on, in ms; what is left waits for the next run. */
const RUN_BUDGET_MS = 30_000;

export interface PrunerSettings {
  databaseUrl: string;
  /** 0 keeps deliveries forever. */
  deliveryRetentionMs: number;
  /** 0 keeps records forever. */
  recordRetentionMs: number;
  /** 0 keeps audit events forever. */
  auditRetentionMs: number;
  intervalMs: number;
}

/**
 * Retention, in every worker process: every `intervalMs`, the process that gets the advisory lock finishes
 * deleting destinations an admin deleted, then deletes finished deliveries, old records and old audit
 * events in batches of
 * {@link PRUNE_BATCH}, pausing between batches. The lock
 * is held on a connection of its own, so a process that dies releases it with its connection.
 */
export class Pruner {
  private readonly db: Db;
  private readonly log: Logger;
  private readonly settings: PrunerSettings;
  private readonly lockConnection: postgres.Sql;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  private announced = false;

  constructor(db: Db, log: Logger, settings: PrunerSettings) {
    this.db = db;
    this.log = log;
    this.settings = settings;
    this.lockConnection = postgres(settings.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  }

  start(): void {
    const tick = () => {
      this.running = this.runOnce()
        .catch((err: unknown) => this.log.warn({ err }, "prune failed; will try again"))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.settings.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.lockConnection.end({ timeout: 1 });
  }

  /** One run, if no other process is pruning; returns what it deleted (zeros when it did not get the lock). */
  async runOnce(): Promise<{
    deliveries: number;
    records: number;
    auditEvents: number;
    deletedDestinations: number;
  }> {
    const done = { deliveries: 0, records: 0, auditEvents: 0, deletedDestinations: 0 };
    const [lock] = await this.lockConnection`select pg_try_advisory_lock(${PRUNE_LOCK}) as ok`;
    if (!lock?.ok) return done;
    try {
      const { deliveryRetentionMs, recordRetentionMs, auditRetentionMs } = this.settings;
      if (!this.announced) {
        this.announced = true;
        const backlog = await pruneBacklog(this.db, deliveryRetentionMs, recordRetentionMs);
        if (backlog.deliveries + backlog.records > 0) {
          this.log.info(
            { ...backlog, deliveryRetentionMs, recordRetentionMs },
            "retention: deleting what is older than the retention periods, in batches",
          );
        }
      }
      // Destinations an admin deleted go whatever the retention: their rows, then themselves.
      done.deletedDestinations = await purgeDeletedWebhooks(this.db);
      const deadline = Date.now() + RUN_BUDGET_MS;
      for (const [what, prune, retention] of [
        ["deliveries", pruneDeliveries, deliveryRetentionMs],
        ["records", pruneRecords, recordRetentionMs],
        ["auditEvents", pruneAuditEvents, auditRetentionMs],
      ] as const) {
        if (retention === 0) continue;
        while (!this.stopped && Date.now() < deadline) {
          const n = await prune(this.db, retention, PRUNE_BATCH);
          done[what] += n;
          if (n < PRUNE_BATCH) break;
          await sleep(BATCH_PAUSE_MS);
        }
      }
      if (done.deliveries + done.records + done.auditEvents + done.deletedDestinations > 0)
        this.log.info(done, "retention: pruned");
      return done;
    } finally {
      await this.lockConnection`select pg_advisory_unlock(${PRUNE_LOCK})`;
    }
  }
}
