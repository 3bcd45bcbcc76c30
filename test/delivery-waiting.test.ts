/**
 * Waiting without polling, and no starvation: work held back for a destination is woken when a slot frees,
 * and a retry that comes due runs within a bounded delay however many first attempts keep arriving.
 * Real Postgres, Redis, HTTPS receivers and the delivery worker.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq, sql } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

async function heldBackTotal(stack: Stack): Promise<number> {
  const metric = await stack.rt.metrics.registry
    .getSingleMetric("escalation_shield_deliveries_held_back_total")
    ?.get();
  return (metric?.values ?? []).reduce((n, v) => n + v.value, 0);
}

async function deliveredCount(stack: Stack, webhookId: string): Promise<number> {
  const [row] = await stack.rt.database.db
    .select({ n: sql<number>`count(*)::int` })
    .from(deliveries)
    .where(sql`${deliveries.webhookId} = ${webhookId} and ${deliveries.status} = 'delivered'`);
  return row?.n ?? 0;
}

describe("waiting for a destination", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("jobs held back by a slow destination at its cap are woken when a slot frees, not every 100 ms", async () => {
    const stack = await startStack({ env: { DESTINATION_MAX_IN_FLIGHT: "1" } });
    let open = 0;
    let most = 0;
    const r = await startReceiver({
      behaviour: (_q, res) => {
        open++;
        most = Math.max(most, open);
        setTimeout(() => {
          open--;
          res.writeHead(200).end();
        }, 300);
      },
    });
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(stack, wh.id, 15);
      const started = Date.now();
      await waitFor(
        "all delivered",
        async () => (await deliveredCount(stack, wh.id)) === alerts.length,
        30_000,
      );
      const took = Date.now() - started;
      const heldBack = await heldBackTotal(stack);
      assert.equal(most, 1, "the cap held");
      // 15 × 300 ms one at a time: woken jobs follow each other closely, no 5 s fallback sleeps.
      assert.ok(took < 12_000, `took ${took} ms`);
      // Each waiting job is turned away a few times at most (it was woken, or a newcomer took the slot
      // first); polling every 100–200 ms would turn them away hundreds of times.
      assert.ok(
        heldBack <= 3 * alerts.length,
        `${heldBack} jobs turned away for ${alerts.length} deliveries`,
      );
    } finally {
      await r.close();
      await stack.close();
    }
  });

  test("a due retry runs within a bounded delay while first attempts keep arriving faster than they go out", async () => {
    const stack = await startStack({ env: { DELIVERY_CONCURRENCY: "2", DELIVERY_RETRY_SCHEDULE: "1,1" } });
    let failKey: string | undefined;
    const firstFailure: number[] = [];
    const retried: number[] = [];
    const r = await startReceiver({
      behaviour: (q, res) => {
        const key = String(q.headers["idempotency-key"]);
        if (key === failKey) {
          if (firstFailure.length === 0) {
            firstFailure.push(q.at);
            return void res.writeHead(500).end();
          }
          retried.push(q.at);
        }
        setTimeout(() => res.writeHead(200).end(), 30);
      },
    });
    let producing = true;
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const [special] = await enqueueAlerts(stack, wh.id, 1);
      failKey = special?.key;
      // Two slots × ~30 ms: about 60 attempts a second go out; 100 a second arrive, for 8 s.
      const producer = (async () => {
        const until = Date.now() + 8000;
        while (Date.now() < until) {
          await enqueueAlerts(stack, wh.id, 10);
          await sleep(100);
        }
        producing = false;
      })();
      await waitFor("the retry sent", () => retried.length > 0, 30_000, 50);
      const stillProducing = producing;
      await producer;
      const delay = (retried[0] ?? 0) - (firstFailure[0] ?? 0);
      assert.ok(stillProducing, "the retry went out while first attempts still arrived");
      // Due 1 s (×0.8–1.2) after the failure; it waits behind the backlog that was due before it, no longer.
      assert.ok(delay < 6000, `retry sent ${delay} ms after the failed attempt`);
      const [row] = await stack.rt.database.db
        .select({ status: deliveries.status })
        .from(deliveries)
        .where(eq(deliveries.id, special?.id ?? ""));
      assert.equal(row?.status, "delivered");
    } finally {
      producing = false;
      await r.close();
      await stack.close();
    }
  });
});
