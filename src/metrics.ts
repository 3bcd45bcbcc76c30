import type { JobType } from "bullmq";
import { and, count, eq, isNotNull, or, sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "./db/client.ts";
import { deliveries, webhooks } from "./db/schema.ts";
import { notDeleted } from "./destinations/store.ts";
import type { Logger } from "./log.ts";

const P = "escalation_shield_";

/** How long one scrape waits for Postgres or Redis before skipping what it wanted from them, in ms. */
export const SCRAPE_SOURCE_TIMEOUT_MS = 3000;
/** Most destinations reported per per-destination gauge; keeps a scrape's size and series count bounded. */
export const MAX_DESTINATION_SERIES = 1000;
/**
 * SCAN calls (of {@link SCAN_COUNT} keys each) one scrape spends looking for breakers. The breaker keys share
 * Redis with every queued job, so a full SCAN of a big backlog would cost more than the metric is worth.
 */
export const MAX_SCAN_CALLS = 50;
export const SCAN_COUNT = 1000;

/** Queue states reported by `queue_jobs`; finished jobs are removed at once, so they are not counted. */
const QUEUE_STATES = ["waiting", "delayed", "active", "prioritized"] as const satisfies readonly JobType[];

export type AttemptOutcomeLabel = "delivered" | "retry" | "failed";
export type HeldBackReason = "cap" | "open" | "rate" | "throttled";

/** What the delivery path reports. */
export interface DeliveryMetrics {
  /**
   * One attempt that went out. `kind` is the status class (`2xx`…`5xx`) or the error kind (`timeout`, `dns`,
   * `refused`, `reset`, `tls`, `blocked`, `network`); `seconds` is how long it took.
   */
  attempt(outcome: AttemptOutcomeLabel, kind: string, seconds: number): void;
  /** A job sent back to wait, spending no attempt, because its destination was full or its breaker open. */
  heldBack(reason: HeldBackReason): void;
  /** A delivery held, spending no attempt, because a stored secret did not open with this process's keys. */
  secretUnreadable(): void;
  /** An attempt outcome that could not be stored at all; its delivery is attempted again after its lease. */
  outcomeDropped(): void;
}

/** The process's metrics: its own registry and the delivery path's sink. */
export interface Metrics {
  registry: Registry;
  delivery: DeliveryMetrics;
}

/** The parts of a BullMQ queue a scrape reads. */
export interface ObservedQueue {
  readonly name: string;
  getJobCounts(...types: JobType[]): Promise<Record<string, number>>;
  getJobs(
    types: JobType[],
    start: number,
    end: number,
    asc: boolean,
  ): Promise<{ timestamp: number; delay: number; processedOn?: number }[]>;
}

/** Where scrape-time gauges come from. */
export interface MetricsSources {
  db: Db;
  /** A fail-fast connection (the runtime's producer): during a Redis outage a read fails instead of queueing. */
  redis: Redis;
  queues: readonly ObservedQueue[];
  /** The queue prefix: breaker keys are `<prefix>:dest:<webhook id>:breaker` (see delivery/isolation.ts). */
  prefix: string;
  log: Logger;
  /** DELIVERY_RETENTION in ms (0 keeps forever), for the held-past-retention gauge. */
  deliveryRetentionMs: number;
}

type Source = "postgres" | "redis";

/** Rejects when `work` takes longer than `ms`; the race keeps a late rejection of `work` handled. */
async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Redis glob characters in the prefix would widen the SCAN pattern; escape them. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

/**
 * When a job became ready to run, in ms since the epoch. BullMQ keeps no promotion time: a job moved back to
 * delayed after running has `delay` counted from that move, which came after `processedOn`, so this may be
 * early by up to one attempt's duration (≤ 5 s) and the lag that much high.
 */
function readyAt(job: { timestamp: number; delay: number; processedOn?: number }): number {
  return (job.processedOn ?? job.timestamp) + (job.delay ?? 0);
}

interface QueueStat {
  name: string;
  counts: Record<string, number>;
  lagSeconds: number;
}

async function readQueue(q: ObservedQueue, now: number): Promise<QueueStat> {
  const [counts, oldest] = await Promise.all([
    q.getJobCounts(...QUEUE_STATES),
    // Oldest first (asc): the end of wait, which a worker takes next, and the head of prioritized.
    q.getJobs(["waiting", "prioritized"], 0, 0, true),
  ]);
  const first = Math.min(...oldest.map(readyAt));
  return { name: q.name, counts, lagSeconds: oldest.length === 0 ? 0 : Math.max(0, (now - first) / 1000) };
}

/**
 * Held deliveries: those of disabled destinations (and how many of them are older than `retentionMs`, which
 * held rows outlive), and those whose secret does not open.
 */
async function countHeld(
  db: Db,
  retentionMs: number,
): Promise<{ disabled: number; pastRetention: number; secret: number }> {
  const old =
    retentionMs > 0
      ? sql`${deliveries.createdAt} < now() - make_interval(secs => ${retentionMs / 1000})`
      : sql`false`;
  const rows = await db
    .select({
      unreadable: isNotNull(deliveries.holdReason),
      n: count(),
      old: sql<number>`(count(*) filter (where ${old}))::int`,
    })
    .from(deliveries)
    .where(eq(deliveries.status, "held"))
    .groupBy(isNotNull(deliveries.holdReason));
  const disabled = rows.find((r) => !r.unreadable);
  return {
    disabled: disabled?.n ?? 0,
    pastRetention: disabled?.old ?? 0,
    secret: rows.find((r) => r.unreadable)?.n ?? 0,
  };
}

/** Destinations that are disabled or failing, at most {@link MAX_DESTINATION_SERIES}. */
function listUnwell(db: Db) {
  return db
    .select({ id: webhooks.id, enabled: webhooks.enabled, failingSince: webhooks.failingSince })
    .from(webhooks)
    .where(and(or(eq(webhooks.enabled, false), isNotNull(webhooks.failingSince)), notDeleted))
    .orderBy(webhooks.id)
    .limit(MAX_DESTINATION_SERIES);
}

/**
 * Ids of destinations whose breaker is open or half-open, found by a bounded SCAN of their breaker keys.
 * `complete` is false when the bound cut the SCAN short.
 */
async function scanOpenBreakers(redis: Redis, prefix: string): Promise<{ ids: string[]; complete: boolean }> {
  const head = `${prefix}:dest:`;
  const tail = ":breaker";
  const keys: string[] = [];
  let cursor = "0";
  let calls = 0;
  do {
    const [next, found] = await redis.scan(
      cursor,
      "MATCH",
      `${globEscape(head)}*${tail}`,
      "COUNT",
      SCAN_COUNT,
    );
    keys.push(...found);
    cursor = next;
    calls++;
  } while (cursor !== "0" && calls < MAX_SCAN_CALLS && keys.length < MAX_DESTINATION_SERIES);
  const complete = cursor === "0";
  if (keys.length === 0) return { ids: [], complete };
  const pipeline = redis.pipeline();
  for (const k of keys) pipeline.hget(k, "open_until");
  const until = (await pipeline.exec()) ?? [];
  // The hash also exists while it only counts failures or marks a full destination; open_until means open.
  const ids = keys
    .filter((_, i) => Number(until[i]?.[1] ?? 0) > 0)
    .slice(0, MAX_DESTINATION_SERIES)
    .map((k) => k.slice(head.length, -tail.length));
  return { ids, complete };
}

/**
 * Creates this process's registry (not prom-client's global one, so several runtimes in one test process
 * stay apart) with Node's default metrics, the delivery counters, and gauges computed on scrape from
 * BullMQ, Redis and Postgres. A scrape never throws: a source that fails or takes longer than
 * {@link SCRAPE_SOURCE_TIMEOUT_MS} is left out of that scrape and counted in
 * `escalation_shield_metrics_scrape_errors_total`.
 */
export function createMetrics(sources: MetricsSources): Metrics {
  const { db, redis, queues, prefix, log, deliveryRetentionMs } = sources;
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const attempts = new Counter({
    name: `${P}delivery_attempts_total`,
    help: "Delivery attempts that went out, by outcome (delivered, retry, failed) and status class or error kind.",
    labelNames: ["outcome", "kind"] as const,
    registers,
  });
  const attemptSeconds = new Histogram({
    name: `${P}delivery_attempt_duration_seconds`,
    help: "Duration of delivery attempts, in seconds (an attempt times out at 5 s).",
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6],
    registers,
  });
  const heldBack = new Counter({
    name: `${P}deliveries_held_back_total`,
    help: "Delivery jobs sent back to wait without an attempt: destination at its in-flight cap, or breaker open.",
    labelNames: ["reason"] as const,
    registers,
  });

  const secretUnreadable = new Counter({
    name: `${P}secrets_unreadable_total`,
    help: "Deliveries held because a stored secret did not open with SECRETS_KEY (no attempt spent); see the log for the key id needed.",
    registers,
  });
  const outcomesDropped = new Counter({
    name: `${P}attempt_outcomes_dropped_total`,
    help: "Attempt outcomes that could not be stored even without their response excerpt; those deliveries are attempted again when their lease lapses.",
    registers,
  });

  const scrapeErrors = new Counter({
    name: `${P}metrics_scrape_errors_total`,
    help: "Scrape-time reads of Postgres or Redis that failed or timed out; the gauges they feed are left out of that scrape.",
    labelNames: ["source"] as const,
    registers,
    // Reported after this scrape's reads, so a failure shows in the scrape it spoiled.
    async collect() {
      await snapshot();
    },
  });
  const failing = new Set<string>();
  /** One scrape-time read; on failure counts it, warns once until it works again, and returns undefined. */
  async function read<T>(source: Source, what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      const value = await withDeadline(fn(), SCRAPE_SOURCE_TIMEOUT_MS, what);
      failing.delete(what);
      return value;
    } catch (err) {
      scrapeErrors.inc({ source });
      if (!failing.has(what)) {
        failing.add(what);
        log.warn(
          { err: err instanceof Error ? err.message : String(err), source },
          `metrics: ${what} failed`,
        );
      }
      return undefined;
    }
  }

  let scanCutWarned = false;
  async function readAll() {
    const now = Date.now();
    const [queueStats, held, unwell, breakers] = await Promise.all([
      read("redis", "queue stats", () => Promise.all(queues.map((q) => readQueue(q, now)))),
      read("postgres", "held deliveries count", () => countHeld(db, deliveryRetentionMs)),
      read("postgres", "failing and disabled destinations", () => listUnwell(db)),
      read("redis", "breaker scan", () => scanOpenBreakers(redis, prefix)),
    ]);
    if (breakers && !breakers.complete && !scanCutWarned) {
      scanCutWarned = true;
      log.warn("metrics: breaker scan hit its bound; destination_breaker_open may leave some out");
    }
    return { queueStats, held, unwell, openBreakers: breakers?.ids };
  }
  // The registry starts every collect in the same tick, so they all share this one in-flight read.
  let running: ReturnType<typeof readAll> | undefined;
  function snapshot(): ReturnType<typeof readAll> {
    running ??= readAll().finally(() => {
      running = undefined;
    });
    return running;
  }

  new Gauge({
    name: `${P}queue_jobs`,
    help: "Jobs in each BullMQ queue, by state.",
    labelNames: ["queue", "state"] as const,
    registers,
    async collect() {
      const { queueStats } = await snapshot();
      this.reset();
      for (const q of queueStats ?? []) {
        for (const state of QUEUE_STATES) this.set({ queue: q.name, state }, q.counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: `${P}queue_lag_seconds`,
    help: "How long the oldest job ready to run (waiting or prioritized) has waited for a worker, in seconds.",
    labelNames: ["queue"] as const,
    registers,
    async collect() {
      const { queueStats } = await snapshot();
      this.reset();
      for (const q of queueStats ?? []) this.set({ queue: q.name }, q.lagSeconds);
    },
  });
  new Gauge({
    name: `${P}deliveries_held`,
    help: "Deliveries held because their destination is disabled; they go out when it is enabled again.",
    registers,
    async collect() {
      const { held } = await snapshot();
      if (held !== undefined) {
        this.set(held.disabled);
        return;
      }
      // No sample rather than a 0 that would read as "nothing held".
      this.reset();
      this.remove({});
    },
  });
  new Gauge({
    name: `${P}deliveries_held_past_retention`,
    help: "Of the deliveries held because their destination is disabled, those created longer ago than DELIVERY_RETENTION (held ones are never pruned by age).",
    registers,
    async collect() {
      const { held } = await snapshot();
      this.reset();
      if (held !== undefined) this.set(held.pastRetention);
      else this.remove({});
    },
  });
  new Gauge({
    name: `${P}deliveries_held_secret_unreadable`,
    help: "Deliveries held because a stored secret does not open with the configured SECRETS_KEY; they go out once the key that sealed it is configured.",
    registers,
    async collect() {
      const { held } = await snapshot();
      this.reset();
      if (held !== undefined) this.set(held.secret);
      else this.remove({});
    },
  });
  new Gauge({
    name: `${P}destination_failing`,
    help: "1 for each enabled destination whose attempts have been failing since its last success.",
    labelNames: ["webhook_id"] as const,
    registers,
    async collect() {
      const { unwell } = await snapshot();
      this.reset();
      for (const w of unwell ?? []) if (w.enabled && w.failingSince) this.set({ webhook_id: w.id }, 1);
    },
  });
  new Gauge({
    name: `${P}destination_disabled`,
    help: "1 for each disabled destination (by an admin, or automatically after failing too long).",
    labelNames: ["webhook_id"] as const,
    registers,
    async collect() {
      const { unwell } = await snapshot();
      this.reset();
      for (const w of unwell ?? []) if (!w.enabled) this.set({ webhook_id: w.id }, 1);
    },
  });
  new Gauge({
    name: `${P}destination_breaker_open`,
    help: "1 for each destination whose circuit breaker is open or half-open (waiting for its probe).",
    labelNames: ["webhook_id"] as const,
    registers,
    async collect() {
      const { openBreakers } = await snapshot();
      this.reset();
      for (const id of openBreakers ?? []) this.set({ webhook_id: id }, 1);
    },
  });

  return {
    registry,
    delivery: {
      attempt(outcome, kind, seconds) {
        attempts.inc({ outcome, kind });
        attemptSeconds.observe(seconds);
      },
      heldBack(reason) {
        heldBack.inc({ reason });
      },
      secretUnreadable() {
        secretUnreadable.inc();
      },
      outcomeDropped() {
        outcomesDropped.inc();
      },
    },
  };
}
