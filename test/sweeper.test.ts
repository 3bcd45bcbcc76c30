/**
 * The sweeper's cost follows the rows due, not the rows pending: pending rows page in due-time order on the
 * partial index, and a destination's held-back backlog (at its cap, or behind an open breaker) is not read
 * on every overdue sweep. Real Postgres, Redis, HTTPS receiver and the delivery worker.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq, sql } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { listPending } from "../src/delivery/outbox.ts";
import { deliveryOutbox } from "../src/delivery/queue.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("the sweeper", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("pages pending rows in due order, each once, however many share a due time", async () => {
    const stack = await startStack({ worker: false });
    try {
      const db = stack.rt.database.db;
      const wh = await stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(stack, wh.id, 23);
      // Three due times shared by several rows each, microseconds apart.
      await db.execute(sql`update deliveries set next_attempt_at = timestamptz '2026-01-01 00:00:00.000001'
        + ((abs(hashtext(id)) % 3) * interval '1 microsecond') where webhook_id = ${wh.id}`);
      const seen: string[] = [];
      let after = "";
      for (;;) {
        const page = await listPending(db, after, 5);
        seen.push(...page.map((r) => r.id));
        if (page.length < 5) break;
        after = page.at(-1)?.cursor ?? "";
      }
      assert.equal(seen.length, alerts.length);
      assert.equal(new Set(seen).size, alerts.length, "no row twice");
      const due = await db
        .select({ id: deliveries.id, t: sql<string>`${deliveries.nextAttemptAt}::text` })
        .from(deliveries)
        .where(eq(deliveries.webhookId, wh.id));
      const order = new Map(due.map((d) => [d.id, d.t]));
      for (let i = 1; i < seen.length; i++) {
        assert.ok(
          (order.get(seen[i - 1] as string) ?? "") <= (order.get(seen[i] as string) ?? ""),
          "due order",
        );
      }
    } finally {
      await stack.close();
    }
  });

  test("a destination's held-back backlog is left out of overdue sweeps, but not of a full one", async () => {
    const stack = await startStack({ env: { DESTINATION_MAX_IN_FLIGHT: "1" } });
    // A receiver that never answers in time: one attempt in flight, the rest waiting behind the cap.
    const hung = await startReceiver({ behaviour: () => {} });
    try {
      const db = stack.rt.database.db;
      const wh = await stack.webhook({ url: hung.url, events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(stack, wh.id, 30);
      const guard = new DestinationGuard(stack.rt.redis, stack.config.queuePrefix);
      await waitFor("the backlog waiting for its destination", async () =>
        (await guard.heldBack()).includes(wh.id),
      );
      // Overdue by more than the sweeper's 5 s grace.
      await sleep(5500);
      const outbox = deliveryOutbox(db, stack.rt.deliveryQueue, stack.rt.box.keyIds(), guard);
      const overdue = await outbox.list("", 1000, 5000);
      assert.equal(overdue.filter((r) => alerts.some((a) => a.id === r.id)).length, 0, "held back, not read");
      const full = await outbox.list("", 1000);
      assert.ok(full.length >= alerts.length - 2, `a full pass reads them all (${full.length})`);
    } finally {
      await hung.close();
      await stack.close();
    }
  });
});
