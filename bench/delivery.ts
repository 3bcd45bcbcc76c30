/**
 * The product's own delivery path (parts A, B and C): alerts go through `enqueueDeliveries` (an outbox row
 * in Postgres, then a BullMQ job) from this process, and a real `escalation-shield worker --only delivery`
 * child process delivers them, claiming, signing and storing every attempt.
 */
import { sql } from "drizzle-orm";
import { loadConfig } from "../src/config.ts";
import { enqueueDeliveries } from "../src/delivery/enqueue.ts";
import { ALERT_EVENT } from "../src/delivery/payloads.ts";
import { createWebhook } from "../src/destinations/store.ts";
import { newId } from "../src/ids.ts";
import { createOrganization } from "../src/orgs.ts";
import { openRuntime, type Runtime } from "../src/runtime.ts";
import { type AlertTarget, alertDeliveries } from "./alerts.ts";
import { type CpuMeter, startCpuMeter } from "./cpu.ts";
import {
  benchDatabase,
  benchPrefix,
  type PartContext,
  perSecond,
  pollUntil,
  productEnv,
  randomTag,
  waitUntilMs,
} from "./lib.ts";
import { wallNow } from "./marker.ts";
import { spawnProduct } from "./proc.ts";
import type { Receivers, Summary } from "./receiver.ts";

export interface ProductSetup {
  rt: Runtime;
  databaseName: string;
  workerPids: (number | undefined)[];
  target: AlertTarget;
  maxAttempts: number;
  tag: string;
}

/**
 * A database, queue prefix, organization and one destination per receiver (bearer credential, standard
 * signature), with `workers` delivery worker processes running.
 */
export async function startProduct(
  ctx: PartContext,
  receivers: Receivers,
  options: { workers?: number } = {},
): Promise<ProductSetup> {
  const databaseUrl = await benchDatabase(ctx);
  const env = productEnv(databaseUrl, benchPrefix(ctx));
  const rt = openRuntime(loadConfig({ ...env, LOG_LEVEL: "warn" }));
  ctx.defer("close the enqueuer's runtime", () => rt.close());
  const org = await rt.database.db.transaction((tx) => createOrganization(tx, `bench-${randomTag(3)}`));
  const webhookIds: string[] = [];
  const workerPids: (number | undefined)[] = [];
  for (const url of receivers.urls) {
    const { id } = await createWebhook(rt.database.db, rt.box, org.id, {
      url,
      events: [ALERT_EVENT],
      auth: { type: "bearer", credential: `bench-${randomTag(8)}` },
    });
    webhookIds.push(id);
  }
  for (let i = 0; i < (options.workers ?? 1); i++) {
    const worker = spawnProduct(`delivery worker ${i + 1}`, ["worker", "--only", "delivery"], env);
    ctx.defer(`stop delivery worker ${i + 1}`, () => worker.stop());
    workerPids.push(worker.proc.pid);
    await worker.waitForLine(/"workers running"/, 20_000);
  }
  await rt.deliveryQueue.waitUntilReady();
  return {
    rt,
    databaseName: new URL(databaseUrl).pathname.slice(1),
    workerPids,
    target: { orgId: org.id, orgSlug: org.slug, automationId: newId("aut"), webhookIds },
    maxAttempts: rt.config.retrySchedule.length + 1,
    tag: randomTag(3),
  };
}

export interface SustainedResult {
  alerts: number;
  /** Whether every awaited alert arrived before the deadline. */
  complete: boolean;
  enqueueMs: number;
  enqueueRate: number;
  /** First enqueue → the last awaited arrival (or the deadline), ms. */
  deliveryMs: number;
  deliveryRate: number;
  awaited: number;
  receiver: Summary;
  /** Rows `delivered` in the outbox shortly after the last arrival: every attempt was stored. */
  deliveredRows: number;
  /** Cores busy from the first enqueue to the end of the wait. */
  cpu: Record<string, number | null>;
}

/** What to watch while the product delivers: its workers, its database's backends, receivers and bench. */
export function productCpu(setup: ProductSetup, receivers: Receivers): CpuMeter {
  return startCpuMeter([
    ...setup.workerPids.map((pid, i) => ({
      name: setup.workerPids.length > 1 ? `worker${i + 1}` : "worker",
      pid,
    })),
    { name: "postgres", database: setup.databaseName },
    { name: "receivers", pid: receivers.child.proc.pid },
    { name: "bench", self: true },
  ]);
}

/**
 * Enqueues `alerts` in batches of `batch` as fast as `enqueueDeliveries` takes them while the worker runs,
 * then waits until the receivers at `dests` (default all) have `awaited` first arrivals.
 */
export async function sustained(
  ctx: PartContext,
  receivers: Receivers,
  setup: ProductSetup,
  options: { alerts: number; batch: number; deadlineMs: number; dests?: number[]; awaited?: number },
): Promise<SustainedResult> {
  const awaited = options.awaited ?? options.alerts;
  await receivers.reset();
  const db = setup.rt.database.db;
  const meter = productCpu(setup, receivers);
  const started = wallNow();
  for (let from = 0; from < options.alerts; from += options.batch) {
    ctx.signal.throwIfAborted();
    const items = alertDeliveries(
      setup.target,
      setup.tag,
      from,
      Math.min(options.batch, options.alerts - from),
      wallNow(),
    );
    await enqueueDeliveries(db, setup.rt.deliveryQueue, items, setup.maxAttempts);
  }
  const enqueueMs = wallNow() - started;
  ctx.note(
    `enqueued ${options.alerts} in ${(enqueueMs / 1000).toFixed(1)} s; waiting for ${awaited} arrivals`,
  );

  const complete = await pollUntil(
    ctx.signal,
    waitUntilMs(ctx, options.deadlineMs),
    async () => (await receivers.progress(options.dests)).unique >= awaited,
  );
  const cpu = meter.stop();
  const receiver = await receivers.summary(options.dests, awaited);
  const end = complete && receiver.nthAt !== null ? receiver.nthAt : wallNow();
  const deliveryMs = end - started;
  if (!complete) ctx.note(`deadline: ${receiver.unique} of ${awaited} arrived`);

  // The attempt is stored after the answer, so the last rows land a moment after the last arrival.
  let deliveredRows = 0;
  await pollUntil(
    ctx.signal,
    Date.now() + 5000,
    async () => {
      deliveredRows = await countDelivered(setup.rt);
      return deliveredRows >= receiver.unique;
    },
    200,
  );
  return {
    alerts: options.alerts,
    complete,
    enqueueMs,
    enqueueRate: perSecond(options.alerts, enqueueMs),
    deliveryMs,
    deliveryRate: perSecond(Math.min(receiver.unique, awaited), deliveryMs),
    awaited,
    receiver,
    deliveredRows,
    cpu,
  };
}

async function countDelivered(rt: Runtime): Promise<number> {
  const rows = await rt.database.db.execute<{ n: number }>(
    sql`select count(*)::int as n from deliveries where status = 'delivered'`,
  );
  return rows[0]?.n ?? 0;
}

export interface SteadyResult {
  targetRate: number;
  seconds: number;
  sent: number;
  achievedRate: number;
  /** Enqueue calls that were still running when the next tick came, so the tick skipped (catch-up later). */
  skippedTicks: number;
  arrived: number;
  missing: number;
  /** Every alert still missing has waited at least this long (last enqueue → end of the drain), ms. */
  missingWaitedMs: number;
  receiver: Summary;
  /** Cores busy while the load ran (the drain excluded). */
  cpu: Record<string, number | null>;
}

/**
 * An open-loop load: every 10 ms, enqueue whatever the schedule says is due (several enqueues may be in
 * flight at once, as several evaluators would), each alert stamped when its enqueue call starts.
 */
export async function steady(
  ctx: PartContext,
  receivers: Receivers,
  setup: ProductSetup,
  options: { rate: number; seconds: number; drainMs: number; tagSuffix?: string; resetFirst?: boolean },
): Promise<SteadyResult> {
  if (options.resetFirst !== false) await receivers.reset();
  const db = setup.rt.database.db;
  const tag = `${setup.tag}${options.tagSuffix ?? ""}`;
  const maxInFlight = 8;
  let inFlight = 0;
  let sent = 0;
  let skippedTicks = 0;
  let failure: unknown;
  const pending = new Set<Promise<unknown>>();
  let lastStamp = 0;
  const meter = productCpu(setup, receivers);
  const started = wallNow();
  const endAt = started + options.seconds * 1000;
  for (;;) {
    ctx.signal.throwIfAborted();
    if (failure) throw failure;
    const now = wallNow();
    if (now >= endAt) break;
    const due = Math.floor((options.rate * (now - started)) / 1000) - sent;
    if (due > 0) {
      if (inFlight >= maxInFlight) skippedTicks++;
      else {
        lastStamp = wallNow();
        const items = alertDeliveries(setup.target, tag, sent, due, lastStamp);
        sent += due;
        inFlight++;
        const p = enqueueDeliveries(db, setup.rt.deliveryQueue, items, setup.maxAttempts)
          .catch((err: unknown) => {
            failure ??= err;
          })
          .finally(() => {
            inFlight--;
            pending.delete(p);
          });
        pending.add(p);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await Promise.all(pending);
  if (failure) throw failure;
  const elapsed = wallNow() - started;
  const cpu = meter.stop();
  await pollUntil(
    ctx.signal,
    Date.now() + options.drainMs,
    async () => (await receivers.progress()).unique >= sent,
  );
  const receiver = await receivers.summary();
  return {
    targetRate: options.rate,
    seconds: options.seconds,
    sent,
    achievedRate: perSecond(sent, elapsed),
    skippedTicks,
    arrived: receiver.unique,
    missing: Math.max(0, sent - receiver.unique),
    missingWaitedMs: wallNow() - lastStamp,
    receiver,
    cpu,
  };
}
