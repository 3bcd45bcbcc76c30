/**
 * `GET /api/stats/deliveries`: one organization's own deliveries per minute by outcome, its backlog and its
 * unhealthy destinations; another organization's traffic is not in it. Real Postgres, Redis, a delivery
 * worker and HTTPS receivers on loopback.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { eq, inArray, sql } from "drizzle-orm";
import { deliveries, webhooks } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertApiError, secondOrganization, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

interface Stats {
  window: string;
  bucket_seconds: number;
  series: Array<{ at: string; delivered: number; failed: number; waiting: number }>;
  pending: number;
  held: number;
  failing: Array<{ id: string; kind: string }>;
  disabled: Array<{ id: string; kind: string; disabled_reason: string | null }>;
}

const sum = (s: Stats, k: "delivered" | "failed" | "waiting") => s.series.reduce((n, p) => n + p[k], 0);

describe("delivery stats", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("counts the organization's own deliveries per minute by outcome, its backlog and its unhealthy destinations", async () => {
    const ok = await startReceiver();
    const down = await startReceiver({ behaviour: (_req, res) => res.writeHead(500).end("down") });
    const s = await startApiStack({
      worker: true,
      // Two failures in a row open the breaker, for a cool-down that outlasts the test.
      env: { DELIVERY_RETRY_SCHEDULE: "3600", BREAKER_FAILURE_THRESHOLD: "2", BREAKER_COOLDOWN_MS: "600000" },
    });
    try {
      const db = s.stack.rt.database.db;
      const good = await s.stack.webhook({ url: ok.url, events: ["escalation.alert"] });
      const bad = await s.stack.webhook({ url: down.url, events: ["escalation.alert"] });
      const off = await s.stack.webhook({ url: ok.url, events: ["escalation.alert"] });
      await enqueueAlerts(s.stack, good.id, 3);
      await enqueueAlerts(s.stack, bad.id, 2);
      await waitFor("delivered and failed once", async () => {
        const rows = await db
          .select({ status: deliveries.status, attempts: deliveries.attemptCount })
          .from(deliveries)
          .where(inArray(deliveries.webhookId, [good.id, bad.id]));
        return (
          rows.filter((r) => r.status === "delivered").length === 3 &&
          rows.filter((r) => r.attempts > 0).length === 5
        );
      });
      // One of the failing ones has given up: it ended failed.
      const [gaveUp] = await db
        .select({ id: deliveries.id })
        .from(deliveries)
        .where(eq(deliveries.webhookId, bad.id))
        .limit(1);
      await db
        .update(deliveries)
        .set({ status: "failed" })
        .where(eq(deliveries.id, gaveUp?.id as string));
      assert.equal(
        (await s.api.patch(`/api/integrations/webhooks/${off.id}`, { enabled: false })).status,
        200,
      );
      await enqueueAlerts(s.stack, off.id, 4);
      await waitFor("the failing destination is marked", async () => {
        const [row] = await db
          .select({ f: webhooks.failingSince })
          .from(webhooks)
          .where(eq(webhooks.id, bad.id));
        return row?.f !== null;
      });

      // Health events go only to destinations that subscribe to them: none here.
      // Another organization's traffic, in the same minutes.
      const other = await secondOrganization(s.stack, `stats-${Date.now().toString(36)}`);
      const theirs = await s.api
        .as(other.adminApiKey)
        .post("/api/integrations/webhooks", { url: ok.url, events: ["*"] });
      const otherStack = { ...s.stack, org: { ...s.stack.org, id: other.id } };
      await enqueueAlerts(otherStack, theirs.json.id, 7);

      const res = await s.api.get("/api/stats/deliveries?window=1h");
      assert.equal(res.status, 200, res.text);
      const stats = res.json as Stats;
      assert.equal(stats.series.length, 60);
      assert.equal(stats.bucket_seconds, 60);
      assert.deepEqual([sum(stats, "delivered"), sum(stats, "failed"), sum(stats, "waiting")], [3, 1, 5]);
      assert.equal(stats.held, 4);
      assert.equal(stats.pending, 1);
      assert.deepEqual(
        stats.failing.map((d) => d.id),
        [bad.id],
      );
      assert.deepEqual(
        stats.disabled.map((d) => d.id),
        [off.id],
      );
      // Minutes are in order and the last one is now's.
      const times = stats.series.map((p) => Date.parse(p.at));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => a - b),
      );
      assert.ok(Date.now() - (times.at(-1) as number) < 61_000);

      const day = (await s.api.get("/api/stats/deliveries?window=24h")).json as Stats;
      assert.equal(day.series.length, 1440);
      assert.equal(sum(day, "delivered"), 3);
      // A delivery older than the window is not counted.
      await db.execute(
        sql`update deliveries set created_at = now() - interval '2 hours' where webhook_id = ${good.id}`,
      );
      assert.equal(sum((await s.api.get("/api/stats/deliveries?window=1h")).json, "delivered"), 0);

      // Each destination's own health, in its GET and in the list.
      const badView = (await s.api.get(`/api/integrations/webhooks/${bad.id}`)).json;
      assert.equal(badView.health.state, "failing");
      assert.ok(Date.parse(badView.health.failing_since) <= Date.now());
      assert.equal(badView.health.breaker, "open");
      const listed = (await s.api.get("/api/integrations/webhooks")).json.data as Array<{
        id: string;
        health: { state: string };
      }>;
      assert.deepEqual(Object.fromEntries(listed.map((w) => [w.id, w.health.state])), {
        [good.id]: "healthy",
        [bad.id]: "failing",
        [off.id]: "disabled",
      });

      assertApiError(
        await s.api.get("/api/stats/deliveries?window=7d"),
        400,
        "ErrCodeInvalidFieldFormat",
        "query.window",
      );
      assertApiError(
        await s.api.get("/api/stats/deliveries"),
        400,
        "ErrCodeMissingRequiredField",
        "query.window",
      );
      // The other organization sees its own 7, and nothing of ours.
      const theirStats = (await s.api.as(other.adminApiKey).get("/api/stats/deliveries?window=1h"))
        .json as Stats;
      assert.equal(sum(theirStats, "delivered") + sum(theirStats, "waiting"), 7);
      assert.deepEqual(theirStats.failing, []);
    } finally {
      await s.close();
      await ok.close();
      await down.close();
    }
  });
});
