import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import { deliveries } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startCli } from "./helpers/processes.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { startPrivateRedis } from "./helpers/redis.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

async function statuses(stack: Stack, webhookId: string): Promise<Map<string, string>> {
  const rows = await stack.rt.database.db
    .select({ key: deliveries.idempotencyKey, status: deliveries.status })
    .from(deliveries)
    .where(eq(deliveries.webhookId, webhookId));
  return new Map(rows.map((r) => [r.key, r.status]));
}

describe("crashes and a flushed Redis lose nothing", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("a worker killed with SIGKILL mid-delivery: a new worker delivers every alert", async () => {
    const stack = await startStack({ worker: false });
    // Slow answers keep attempts in flight when the worker dies.
    const r = await startReceiver({
      behaviour: (_req, res) => {
        setTimeout(() => res.writeHead(200).end("ok"), 1500);
      },
    });
    try {
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      const alerts = await enqueueAlerts(stack, wh.id, 30);
      const first = startCli(["worker", "--only", "delivery"], stack.env);
      await waitFor("attempts in flight", () => r.requests.length >= 5, 30_000);
      assert.equal(await first.stop("SIGKILL"), null);
      const inFlight = new Set(r.requests.map((q) => q.headers["idempotency-key"]));
      const second = startCli(["worker", "--only", "delivery"], stack.env);
      try {
        await waitFor(
          "every alert delivered",
          async () => [...(await statuses(stack, wh.id)).values()].every((s) => s === "delivered"),
          90_000,
          250,
        );
      } finally {
        assert.equal(await second.stop("SIGTERM"), 0);
      }
      const received = new Set(r.requests.map((q) => q.headers["idempotency-key"]));
      for (const a of alerts) assert.ok(received.has(a.key), `alert ${a.key} reached the receiver`);
      // What was in flight at the kill went out again with the same key.
      for (const key of inFlight)
        assert.ok(r.requests.filter((q) => q.headers["idempotency-key"] === key).length >= 1);
    } finally {
      await r.close();
      await stack.close();
    }
  });

  test("SIGTERM lets attempts in flight finish, then exits 0", async () => {
    const stack = await startStack({ worker: false });
    const r = await startReceiver({
      behaviour: (_req, res) => {
        setTimeout(() => res.writeHead(200).end("ok"), 2000);
      },
    });
    try {
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      await enqueueAlerts(stack, wh.id, 5);
      const worker = startCli(["worker", "--only", "delivery"], stack.env);
      await waitFor("all five in flight", () => r.requests.length >= 5, 30_000);
      const code = await worker.stop("SIGTERM");
      assert.equal(code, 0);
      const s = await statuses(stack, wh.id);
      assert.deepEqual([...s.values()], ["delivered", "delivered", "delivered", "delivered", "delivered"]);
    } finally {
      await r.close();
      await stack.close();
    }
  });

  test("FLUSHALL with deliveries pending: all delivered afterwards without a manual step", async () => {
    const redis = await startPrivateRedis();
    const stack = await startStack({
      worker: false,
      env: { REDIS_URL: redis.url, DELIVERY_RETRY_SCHEDULE: "4,4,4" },
    });
    const seen = new Set<string>();
    // The first request for each alert fails, so some deliveries wait for a later retry at the flush.
    const r: Receiver = await startReceiver({
      behaviour: (req, res) => {
        const key = String(req.headers["idempotency-key"]);
        res.writeHead(seen.has(key) ? 200 : 500).end();
        seen.add(key);
      },
    });
    const admin = new Redis(redis.url);
    try {
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      const waiting = await enqueueAlerts(stack, wh.id, 10);
      const worker = stack.startWorker();
      await waitFor("first attempts", () => seen.size >= 10, 30_000);
      await worker.close();
      // Due now, never attempted: their jobs exist only in Redis until the flush.
      const due = await enqueueAlerts(stack, wh.id, 10);
      assert.equal(await admin.flushall(), "OK");
      const flushedAt = Date.now();
      stack.startWorker();
      await waitFor(
        "every alert delivered",
        async () => {
          const s = await statuses(stack, wh.id);
          return s.size === 20 && [...s.values()].every((v) => v === "delivered");
        },
        60_000,
        250,
      );
      assert.ok(Date.now() - flushedAt < 60_000);
      for (const a of [...waiting, ...due]) assert.ok(seen.has(a.key));
    } finally {
      admin.disconnect();
      await r.close();
      await stack.close();
      await redis.stop();
    }
  });

  test("FLUSHALL under a running worker: pending deliveries are queued again by the sweeper", async () => {
    const redis = await startPrivateRedis();
    const stack = await startStack({ env: { REDIS_URL: redis.url, DELIVERY_RETRY_SCHEDULE: "3,3,3" } });
    const r = await startReceiver({ behaviour: (_q, res) => res.writeHead(503).end() });
    const admin = new Redis(redis.url);
    try {
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      const alerts = await enqueueAlerts(stack, wh.id, 5);
      await waitFor("first attempts", () => r.requests.length >= 5, 30_000);
      await admin.flushall();
      r.setBehaviour((_q, res) => res.writeHead(200).end());
      await waitFor(
        "delivered after the flush",
        async () => [...(await statuses(stack, wh.id)).values()].every((s) => s === "delivered"),
        60_000,
        250,
      );
      const keys = new Set(r.requests.map((q) => q.headers["idempotency-key"]));
      for (const a of alerts) assert.ok(keys.has(a.key));
    } finally {
      admin.disconnect();
      await r.close();
      await stack.close();
      await redis.stop();
    }
  });
});
