import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import { isUnavailable } from "./api/errors.ts";
import { type EvaluationQueue, openEvaluationQueue } from "./automations/queue.ts";
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/client.ts";
import { type DeliveryQueue, openDeliveryQueue } from "./delivery/queue.ts";
import { AudioChecker } from "./ingestion/audio-check.ts";
import { createLogger, type Logger, quietOutages } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createOutboundClient, type OutboundClient } from "./outbound/http.ts";
import { openRedis } from "./redis.ts";
import type { SecretBox } from "./secrets/box.ts";
import { loadSecretBox } from "./secrets/keys.ts";

export type Dependency = "postgres" | "redis";
const DEPENDENCIES: Dependency[] = ["postgres", "redis"];

/** How long a probe of Postgres or Redis may take before it counts as unavailable. */
export const PROBE_TIMEOUT_MS = 2000;
/** How a probe that timed out begins its reason. */
const NO_ANSWER = "no answer within";
/** Probes run this often while everything answers, and this often while something does not. */
const PROBE_EVERY_MS = { up: 5000, down: 1000 };
/** However often an outage is suspected, probes start at most this often. */
const MIN_PROBE_GAP_MS = 250;

/**
 * Messages of errors that mean a connection to Postgres or Redis failed, when only the message was kept.
 * BullMQ's "Missing key/lock for job" follows a Redis that restarted empty: the job is gone from Redis, and
 * the outbox sweeper queues its row again.
 */
const OUTAGE_MESSAGE =
  /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|CONNECTION_CLOSED|CONNECTION_ENDED|CONNECTION_DESTROYED|CONNECT_TIMEOUT)\b|Connection is closed|Stream isn't writeable|max retries per request|terminating connection due to administrator command|the database system is (starting up|shutting down)|Missing (key|lock) for job/i;

/** Whether `err` (an error, or only its message) says Postgres or Redis is out of reach. */
export function isOutage(err: unknown): boolean {
  if (typeof err === "string") return OUTAGE_MESSAGE.test(err);
  return isUnavailable(err) || (err instanceof Error && OUTAGE_MESSAGE.test(err.message));
}

/** The message of the innermost cause: drizzle's "Failed query: …" wraps the driver's ECONNREFUSED. */
function deepestMessage(err: unknown): string {
  let e = err;
  for (let depth = 0; e instanceof Error && e.cause instanceof Error && depth < 8; depth++) e = e.cause;
  return e instanceof Error ? e.message || e.name : String(e);
}

/** Runs `check` with a deadline; returns why it failed, or `undefined` when it answered in time. */
export async function probe(check: () => Promise<unknown>, timeoutMs: number): Promise<string | undefined> {
  const abort = new AbortController();
  const running = check().then(
    () => undefined,
    (err: unknown) => deepestMessage(err),
  );
  const timedOut = sleep(timeoutMs, `${NO_ANSWER} ${timeoutMs} ms`, { signal: abort.signal }).catch(
    () => undefined,
  );
  try {
    return await Promise.race([running, timedOut]);
  } finally {
    abort.abort();
  }
}

/**
 * PING on the producer connection. It queues nothing while disconnected, so before its first connect has
 * finished it waits for that connect instead of calling Redis down at start-up.
 */
async function pingRedis(redis: Redis): Promise<unknown> {
  if (redis.status === "wait" || redis.status === "connecting" || redis.status === "connect") {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        redis.off("ready", done);
        redis.off("error", done);
        if (err) reject(err);
        else resolve();
      };
      redis.once("ready", done);
      redis.once("error", done);
    });
  }
  return redis.ping();
}

/**
 * Knows whether Postgres and Redis answer, and logs one line each time that changes
 * (`{"dependency":"redis","state":"down","err":…}`, later `"state":"up"`). It probes every few seconds,
 * and at once when something reports a failure that looks like an outage ({@link suspect}).
 */
export class DependencyMonitor {
  private readonly states = new Map<Dependency, "up" | "down">();
  /** Up, but its last probe got no answer in time: one more slow probe in a row makes it down. */
  private readonly slow = new Set<Dependency>();
  private readonly log: Logger;
  private readonly checks: Record<Dependency, () => Promise<unknown>>;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private lastProbe = 0;
  private stopped = true;

  constructor(log: Logger, checks: Record<Dependency, () => Promise<unknown>>) {
    this.log = log;
    this.checks = checks;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** `false` only once a probe has failed and no later one has succeeded. */
  isUp(dependency: Dependency): boolean {
    return this.states.get(dependency) !== "down";
  }

  /** Those known to be down. */
  down(): Dependency[] {
    return DEPENDENCIES.filter((d) => this.states.get(d) === "down");
  }

  /** Something failed as if Postgres or Redis were gone: probe soon rather than at the next tick. */
  suspect(): void {
    if (this.stopped || this.probing) return;
    this.schedule(Math.max(0, this.lastProbe + MIN_PROBE_GAP_MS - Date.now()));
  }

  /** Probes both now (joining a probe already running) and records what changed. */
  check(): Promise<void> {
    this.probing ??= (async () => {
      this.lastProbe = Date.now();
      const results = await Promise.all(
        DEPENDENCIES.map(async (d) => [d, await probe(this.checks[d], PROBE_TIMEOUT_MS)] as const),
      );
      for (const [d, why] of results) this.record(d, why);
    })().finally(() => {
      this.probing = undefined;
      const unsure = this.down().length > 0 || this.slow.size > 0;
      if (!this.stopped) this.schedule(unsure ? PROBE_EVERY_MS.down : PROBE_EVERY_MS.up);
    });
    return this.probing;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), ms);
    this.timer.unref();
  }

  private record(dependency: Dependency, why: string | undefined): void {
    const before = this.states.get(dependency);
    // A busy machine or a full pool can hold one probe past its limit; a refused or failed connection cannot
    // be mistaken. So a probe that merely timed out makes an answering dependency down only the second time
    // in a row, probed again at once, rather than logging an outage that was not one.
    if (why?.startsWith(NO_ANSWER) && before !== "down" && !this.slow.has(dependency)) {
      this.slow.add(dependency);
      return;
    }
    this.slow.delete(dependency);
    const now = why === undefined ? "up" : "down";
    this.states.set(dependency, now);
    if (now === "down" && before !== "down") {
      this.log.warn(
        { dependency, state: now, err: why },
        `${dependency} unavailable; retrying until it answers`,
      );
    } else if (now === "up" && before === "down") {
      this.log.info({ dependency, state: now }, `${dependency} available again`);
    }
  }
}

/** The shared parts every process opens once: configuration, logger, pools and clients. */
export interface Runtime {
  config: Config;
  /** Warnings and errors caused by an outage go to debug here: {@link dependencies} reports outages. */
  log: Logger;
  database: Database;
  box: SecretBox;
  http: OutboundClient;
  /** Ingestion's audio URL checks, under their own address policy and limits. */
  audio: AudioChecker;
  /** Producer connection: fails fast so request handlers can answer 503. */
  redis: Redis;
  deliveryQueue: DeliveryQueue;
  evaluationQueue: EvaluationQueue;
  /** This process's metrics: the API's `/metrics` (or the worker's metrics server) serves its registry. */
  metrics: Metrics;
  dependencies: DependencyMonitor;
  /** Why the process is not ready yet although it serves (e.g. `migrations`); empty once started. */
  pending: Set<string>;
  close(): Promise<void>;
}

export function openRuntime(config: Config, rawLog: Logger = createLogger(config.logLevel)): Runtime {
  const redisRef: { current?: Redis } = {};
  const databaseRef: { current?: Database } = {};
  const dependencies = new DependencyMonitor(rawLog, {
    postgres: () => (databaseRef.current as Database).db.execute(sql`select 1`),
    redis: () => pingRedis(redisRef.current as Redis),
  });
  const log = quietOutages(rawLog, isOutage, () => dependencies.suspect());
  const box = loadSecretBox(config);
  const database = openDatabase(config.databaseUrl, { max: 20 });
  databaseRef.current = database;
  const http = createOutboundClient({
    allowlist: config.destinationAllowlist,
    dnsServers: config.dnsServers,
  });
  const audio = new AudioChecker({ allowlist: config.audioFetchAllowlist, dnsServers: config.dnsServers });
  const redis = openRedis(config.redisUrl, "producer");
  redisRef.current = redis;
  // Each reconnect attempt emits an error; the monitor says it once.
  redis.on("error", () => dependencies.suspect());
  const deliveryQueue = openDeliveryQueue(redis, config.queuePrefix);
  const evaluationQueue = openEvaluationQueue(redis, config.queuePrefix);
  // Queues re-emit their connection's errors, and an `error` event without a listener ends the process.
  for (const queue of [deliveryQueue, evaluationQueue]) queue.on("error", () => dependencies.suspect());
  const metrics = createMetrics({
    db: database.db,
    redis,
    queues: [deliveryQueue, evaluationQueue],
    prefix: config.queuePrefix,
    log,
    deliveryRetentionMs: config.deliveryRetentionMs,
  });
  dependencies.start();
  return {
    config,
    log,
    database,
    box,
    http,
    audio,
    redis,
    deliveryQueue,
    evaluationQueue,
    metrics,
    dependencies,
    pending: new Set(),
    async close() {
      dependencies.stop();
      await deliveryQueue.close();
      await evaluationQueue.close();
      await http.close();
      await audio.close();
      redis.disconnect();
      // Queries waiting for a Postgres that is down would only hold the close up for the full timeout.
      await database.close(dependencies.isUp("postgres") ? 5 : 1);
    },
  };
}
