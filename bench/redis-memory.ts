/**
 * Part D: Redis memory per pending delivery. A private redis-server (no persistence, nobody else's keys)
 * holds the product's queue; 100,000 deliveries are written to the outbox with `insertDeliveries` in
 * batches and queued with `queueDeliveries` after each commit, with no worker running, and `used_memory`
 * is read before and after.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { Redis } from "ioredis";
import { loadConfig } from "../src/config.ts";
import { insertDeliveries } from "../src/delivery/outbox.ts";
import { ALERT_EVENT } from "../src/delivery/payloads.ts";
import { queueDeliveries } from "../src/delivery/queue.ts";
import { createWebhook } from "../src/destinations/store.ts";
import { newId } from "../src/ids.ts";
import { createOrganization } from "../src/orgs.ts";
import { openRuntime } from "../src/runtime.ts";
import { alertDeliveries } from "./alerts.ts";
import { benchDatabase, freePort, type PartContext, pollUntil, productEnv, randomTag } from "./lib.ts";
import { wallNow } from "./marker.ts";

export interface RedisMemoryResult {
  deliveries: number;
  usedBefore: number;
  usedAfter: number;
  bytesPerDelivery: number;
  waitingJobs: number;
  keysAfter: number;
  /** `MEMORY USAGE` of one job's hash, for comparison with the average (which includes the queue's lists). */
  sampleJobBytes: number | null;
  seconds: number;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info("memory");
  const m = /^used_memory:(\d+)/m.exec(info);
  if (!m?.[1]) throw new Error("INFO memory has no used_memory");
  return Number(m[1]);
}

/** redis-server on a free loopback port, stopped by the part's clean-ups. */
async function privateRedis(ctx: PartContext): Promise<string> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const exited = once(child, "exit");
  ctx.defer(`stop redis-server :${port}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await exited;
  });
  const spawnError = once(child, "error").then(([err]) => {
    throw new Error(`redis-server: ${(err as Error).message}`);
  });
  const url = `redis://127.0.0.1:${port}`;
  const up = pollUntil(ctx.signal, Date.now() + 10_000, async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  });
  if (!(await Promise.race([up, spawnError]))) throw new Error("private redis-server did not answer in 10 s");
  return url;
}

export async function runRedisMemory(
  ctx: PartContext,
  options: { deliveries: number; batch: number },
): Promise<RedisMemoryResult> {
  const redisUrl = await privateRedis(ctx);
  const databaseUrl = await benchDatabase(ctx);
  // No key clean-up needed: the private server and everything in it go away with the part.
  const env = productEnv(databaseUrl, `es_bench_${randomTag(4)}`, { REDIS_URL: redisUrl, LOG_LEVEL: "warn" });
  const rt = openRuntime(loadConfig(env));
  ctx.defer("close the runtime", () => rt.close());
  const probe = new Redis(redisUrl);
  ctx.defer("close the memory probe", () => probe.disconnect());

  const org = await rt.database.db.transaction((tx) => createOrganization(tx, `bench-${randomTag(3)}`));
  const webhookIds: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { id } = await createWebhook(rt.database.db, rt.box, org.id, {
      url: `http://127.0.0.1:9/hook${i}`,
      events: [ALERT_EVENT],
      auth: { type: "bearer", credential: `bench-${randomTag(8)}` },
    });
    webhookIds.push(id);
  }
  const target = { orgId: org.id, orgSlug: org.slug, automationId: newId("aut"), webhookIds };
  const maxAttempts = rt.config.retrySchedule.length + 1;
  await rt.deliveryQueue.waitUntilReady();

  const usedBefore = await usedMemory(probe);
  const started = wallNow();
  const tag = randomTag(3);
  for (let from = 0; from < options.deliveries; from += options.batch) {
    ctx.signal.throwIfAborted();
    const items = alertDeliveries(
      target,
      tag,
      from,
      Math.min(options.batch, options.deliveries - from),
      wallNow(),
    );
    const { pending } = await rt.database.db.transaction((tx) => insertDeliveries(tx, items, maxAttempts));
    await queueDeliveries(rt.deliveryQueue, pending);
    if ((from / options.batch) % 20 === 19) ctx.note(`${from + options.batch} queued`);
  }
  const usedAfter = await usedMemory(probe);
  const counts = await rt.deliveryQueue.getJobCounts("waiting", "delayed", "prioritized");
  const waitingJobs = (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0);
  const [sample] = await rt.deliveryQueue.getWaiting(0, 0);
  const sampleKey = sample ? `${rt.config.queuePrefix}:delivery:${sample.id}` : undefined;
  const sampleJobBytes = sampleKey
    ? ((await probe.call("MEMORY", "USAGE", sampleKey)) as number | null)
    : null;
  return {
    deliveries: options.deliveries,
    usedBefore,
    usedAfter,
    bytesPerDelivery: (usedAfter - usedBefore) / options.deliveries,
    waitingJobs,
    keysAfter: await probe.dbsize(),
    sampleJobBytes,
    seconds: (wallNow() - started) / 1000,
  };
}
