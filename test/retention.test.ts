/**
 * Retention: finished deliveries and old records are deleted in batches by one pruning process at a time;
 * pending and held deliveries and young rows are kept; and an alert whose delivery row was pruned is never
 * created again for its record. Real Postgres, Redis, workers and the evaluator.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { eq, inArray, sql } from "drizzle-orm";
import { deliveries, deliveryAttempts, recordEvaluations, records } from "../src/db/schema.ts";
import { recordId } from "../src/ingestion/store.ts";
import { Pruner } from "../src/retention/pruner.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { startApiStack } from "./helpers/api.ts";
import { alertingSetup } from "./helpers/feedback.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

const DAY = 86_400_000;

const ANGRY =
  "Third time I'm writing about the double charge on order 4471. Nobody answers. Refund me by Friday or I will file a chargeback and my lawyer will take this to small claims court.";

function pruner(stack: Stack, deliveryRetentionMs = 30 * DAY, recordRetentionMs = 90 * DAY): Pruner {
  return new Pruner(stack.rt.database.db, stack.rt.log, {
    databaseUrl: stack.config.databaseUrl,
    deliveryRetentionMs,
    recordRetentionMs,
    auditRetentionMs: 365 * DAY,
    intervalMs: 60_000,
  });
}

describe("retention", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("deletes exactly the finished deliveries past retention, with their attempts; never pending, held or younger", async () => {
    const stack = await startStack({ worker: false });
    const p = pruner(stack);
    const other = pruner(stack);
    try {
      const db = stack.rt.database.db;
      const wh = await stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(stack, wh.id, 7);
      const ids = alerts.map((a) => a.id);
      const ago = (days: number) => sql`now() - make_interval(days => ${days})`;
      const set = (id: string, values: Record<string, unknown>) =>
        db.update(deliveries).set(values).where(eq(deliveries.id, id));
      const [oldDelivered, oldFailed, youngDelivered, oldPending, oldHeld, justInside, manyOld] = ids as [
        string,
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      await set(oldDelivered, { status: "delivered", deliveredAt: ago(31), lastAttemptAt: ago(31) });
      await set(oldFailed, { status: "failed", lastAttemptAt: ago(40) });
      await set(youngDelivered, { status: "delivered", deliveredAt: ago(2), lastAttemptAt: ago(2) });
      await set(oldPending, { createdAt: ago(60), lastAttemptAt: ago(59) });
      await set(oldHeld, { status: "held", createdAt: ago(60), lastAttemptAt: ago(59) });
      // Created long ago but delivered (after a long outage) 29 days ago: counted from when it finished.
      await set(justInside, { status: "delivered", createdAt: ago(45), deliveredAt: ago(29) });
      await set(manyOld, { status: "delivered", deliveredAt: ago(100) });
      for (const id of [oldDelivered, oldFailed, manyOld]) {
        await db.insert(deliveryAttempts).values({
          deliveryId: id,
          attemptNumber: 1,
          startedAt: new Date(Date.now() - 31 * DAY),
          durationMs: 5,
          httpStatus: 200,
          responseExcerpt: "x".repeat(200),
        });
      }
      // Two processes at once: only the one holding the lock prunes.
      const [a, b] = await Promise.all([p.runOnce(), other.runOnce()]);
      assert.equal(a.deliveries + b.deliveries, 3);
      assert.ok(
        a.deliveries === 0 || b.deliveries === 0,
        "one process pruned, the other found the lock taken",
      );
      const left = await db.select({ id: deliveries.id }).from(deliveries).where(inArray(deliveries.id, ids));
      assert.deepEqual(
        left.map((r) => r.id).sort(),
        [youngDelivered, oldPending, oldHeld, justInside].sort(),
      );
      const attempts = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(deliveryAttempts)
        .where(inArray(deliveryAttempts.deliveryId, [oldDelivered, oldFailed, manyOld]));
      assert.equal(attempts[0]?.n, 0, "their attempts went with them");
      assert.deepEqual(
        await p.runOnce(),
        { deliveries: 0, records: 0, auditEvents: 0, deletedDestinations: 0 },
        "nothing more to do",
      );
    } finally {
      await p.stop();
      await other.stop();
      await stack.close();
    }
  });

  test("a destination disabled for longer than DELIVERY_RETENTION keeps its held deliveries; its GET and /metrics say how many", async () => {
    const s = await startApiStack({ worker: false });
    const p = pruner(s.stack);
    try {
      const db = s.stack.rt.database.db;
      const wh = await s.stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const ids = (await enqueueAlerts(s.stack, wh.id, 5)).map((a) => a.id);
      const off = await s.api.patch(`/api/integrations/webhooks/${wh.id}`, { enabled: false });
      assert.equal(off.status, 200, off.text);
      const statuses = async () =>
        (
          await db.select({ status: deliveries.status }).from(deliveries).where(inArray(deliveries.id, ids))
        ).map((r) => r.status);
      await waitFor("the backlog held", async () => (await statuses()).every((st) => st === "held"));
      // Three of them were created 40 days ago: a finished delivery that old would be pruned.
      await db
        .update(deliveries)
        .set({ createdAt: sql`now() - interval '40 days'` })
        .where(inArray(deliveries.id, ids.slice(0, 3)));
      assert.deepEqual(await p.runOnce(), {
        deliveries: 0,
        records: 0,
        auditEvents: 0,
        deletedDestinations: 0,
      });
      const got = await s.api.get(`/api/integrations/webhooks/${wh.id}`);
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(got.json.held, { total: 5, past_retention: 3, estimated: false });
      const metrics = await s.api.get("/metrics", { token: null });
      assert.match(metrics.text, /^escalation_shield_deliveries_held 5$/m);
      assert.match(metrics.text, /^escalation_shield_deliveries_held_past_retention 3$/m);

      // Enabled again, they all go out: nothing of the backlog was lost to retention.
      const on = await s.api.patch(`/api/integrations/webhooks/${wh.id}`, { enabled: true });
      assert.equal(on.status, 200, on.text);
      await waitFor("the backlog released", async () => {
        const now = await statuses();
        return now.length === 5 && now.every((st) => st === "pending");
      });
      const after = await s.api.get(`/api/integrations/webhooks/${wh.id}`);
      assert.deepEqual(after.json.held, { total: 0, past_retention: 0, estimated: false });
    } finally {
      await p.stop();
      await s.close();
    }
  });

  test("an alert is not created again after its delivery row was pruned, and records go after RECORD_RETENTION", async () => {
    const s = await startApiStack({ worker: "all" });
    const r = await startReceiver();
    const p = pruner(s.stack, 1000);
    try {
      const db = s.stack.rt.database.db;
      const { integrationId, webhookId, ingest: post } = await alertingSetup(s.api, r.url, { mutable: true });
      const ingest = (text: string) =>
        post([
          {
            id: "r-1",
            fileID: "reviews",
            type: "REVIEW",
            createdAt: Math.floor(Date.now() / 1000) - 30,
            text,
            metadata: {},
          },
        ]);
      const rid = recordId(integrationId, "r-1");
      await ingest(ANGRY);
      await waitFor("the alert delivered", () => r.requests.length === 1);
      await waitFor("its delivery finished", async () => {
        const [row] = await db
          .select({ status: deliveries.status })
          .from(deliveries)
          .where(eq(deliveries.recordId, rid));
        return row?.status === "delivered";
      });
      // Retention of 1 s: the delivered row goes.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      assert.equal((await p.runOnce()).deliveries, 1);
      assert.equal((await db.select().from(deliveries).where(eq(deliveries.recordId, rid))).length, 0);

      // The record is replaced (data_mutability on) and evaluated again; its window is recovered.
      await ingest(`${ANGRY} Still nothing.`);
      await waitFor("evaluated again", async () => {
        const [row] = await db
          .select({ v: records.analyzedVersion })
          .from(records)
          .where(eq(records.id, rid));
        return row?.v === 2;
      });
      const recovered = await s.api.post(`/api/integrations/webhooks/${webhookId}/recover`, {
        since: "2000-01-01T00:00:00Z",
      });
      assert.equal(recovered.status, 202);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(r.requests.length, 1, "the alert was not created or sent again");
      assert.equal((await db.select().from(deliveries).where(eq(deliveries.recordId, rid))).length, 0);

      // Records are pruned by when they were stored: its evaluations and alert key go with it.
      const records0 = pruner(s.stack, 0, 1000);
      try {
        assert.equal((await records0.runOnce()).records, 1);
      } finally {
        await records0.stop();
      }
      assert.equal((await db.select().from(records).where(eq(records.id, rid))).length, 0);
      assert.equal(
        (await db.select().from(recordEvaluations).where(eq(recordEvaluations.recordId, rid))).length,
        0,
      );
      const keys = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from alert_keys where record_id = ${rid}`,
      );
      assert.equal(keys[0]?.n, 0);
    } finally {
      await p.stop();
      await r.close();
      await s.close();
    }
  });
});
