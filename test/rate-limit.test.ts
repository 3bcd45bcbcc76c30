/**
 * `rate_limit_per_second` on a destination: admissions at least 1/rate apart, shared by every worker process
 * through Redis, fractional rates, a waiting job's reserved slot, and no attempt spent while waiting. Real
 * Redis, Postgres, HTTP receivers and worker processes.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { deliveries, webhooks } from "../src/db/schema.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type CliProcess, startCli } from "./helpers/processes.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("per-destination rate limits", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("the guard spaces admissions 1/rate apart and keeps a turned-away job's reserved slot", async () => {
    const stack = await startStack({ worker: false });
    try {
      const guard = new DestinationGuard(stack.rt.redis, stack.config.queuePrefix);
      const t = 1_000_000;
      const ask = async (job: string, at: number, rate: number) => {
        const a = await guard.acquire("whe_rate", job, 100, at, job, rate);
        if (a.admitted) await guard.release("whe_rate", job, true, at, 100);
        return a.admitted ? "admitted" : `${a.reason} until +${a.retryAt - t}`;
      };
      assert.equal(await ask("j1", t, 2), "admitted");
      assert.equal(await ask("j2", t + 10, 2), "rate until +500", "the next slot is reserved for j2");
      assert.equal(await ask("j3", t + 20, 2), "rate until +1000", "and the one after for j3");
      assert.equal(await ask("j3", t + 400, 2), "rate until +1000", "j3 back early waits for its own slot");
      assert.equal(await ask("j4", t + 500, 2), "rate until +1500", "a newcomer does not take j2's slot");
      assert.equal(await ask("j2", t + 500, 2), "admitted");
      // j3 comes back late: still admitted, but never closer than 1/rate to the admission before.
      assert.equal(await ask("j3", t + 1200, 2), "admitted");
      assert.equal(await ask("j4", t + 1300, 2), "rate until +1700", "j4's slot moves to 500 ms after j3");
      assert.equal(await ask("j4", t + 1700, 2), "admitted");

      // Fractional: 0.2 per second is one every 5 s.
      const slow = async (job: string, at: number) => {
        const a = await guard.acquire("whe_slow", job, 100, at, job, 0.2);
        if (a.admitted) await guard.release("whe_slow", job, true, at, 100);
        return a.admitted ? "admitted" : `${a.reason} until +${a.retryAt - t}`;
      };
      assert.equal(await slow("s1", t), "admitted");
      assert.equal(await slow("s2", t + 1), "rate until +5000");
      assert.equal(await slow("s2", t + 5000), "admitted");

      // No rate: nothing is spaced.
      for (const job of ["n1", "n2", "n3"]) {
        const a = await guard.acquire("whe_free", job, 100, t, job, null);
        assert.equal(a.admitted, true);
      }
      // Destinations with jobs waiting for a rate slot are held back: the sweeper leaves their backlog alone.
      assert.deepEqual((await guard.heldBack()).sort(), ["whe_rate", "whe_slow"]);
    } finally {
      await stack.close();
    }
  });

  test("5 per second holds across two worker processes, and waiting spends no attempt", async () => {
    const stack = await startStack({ worker: false, env: { DELIVERY_CONCURRENCY: "8" } });
    const r = await startReceiver();
    const procs: CliProcess[] = [];
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      await stack.rt.database.db
        .update(webhooks)
        .set({ rateLimitPerSecond: 5 })
        .where(eq(webhooks.id, wh.id));
      const env = { ...stack.env, LOG_LEVEL: "debug" };
      for (let i = 0; i < 2; i++) procs.push(startCli(["worker", "--only", "delivery"], env));
      const running = (p: CliProcess) => p.output.some((l) => l.includes('"workers running"'));
      await waitFor("both workers running", () => procs.every(running), 60_000);

      const alerts = await enqueueAlerts(stack, wh.id, 20);
      await waitFor("20 alerts received", () => r.requests.length === 20, 60_000, 100);
      const at = r.requests.map((q) => q.at).sort((a, b) => a - b);
      const gaps = at.slice(1).map((x, i) => x - (at[i] as number));
      // Admissions are 200 ms apart by Redis's clock; each request's own travel (a first one also sets up its
      // connection) shifts its arrival a little, so the rate is checked over every run of six posts.
      const spans = at.slice(5).map((x, i) => x - (at[i] as number));
      assert.ok(
        Math.min(...spans) >= 900,
        `6 posts within ${Math.min(...spans)} ms; gaps: ${gaps.join(", ")} ms`,
      );
      assert.ok((at.at(-1) as number) - (at[0] as number) >= 19 * 190, "20 posts took at least 19 intervals");
      const made = (p: CliProcess) => p.output.filter((l) => l.includes('"delivery attempt"')).length;
      assert.ok(made(procs[0] as CliProcess) > 0 && made(procs[1] as CliProcess) > 0, "both processes sent");
      const read = () =>
        stack.rt.database.db
          .select({ attempts: deliveries.attemptCount, status: deliveries.status })
          .from(deliveries)
          .where(eq(deliveries.webhookId, wh.id));
      // The last outcomes commit a moment after their requests arrive.
      await waitFor("every outcome stored", async () =>
        (await read()).every((row) => row.status !== "pending"),
      );
      const rows = await read();
      assert.equal(rows.length, alerts.length);
      assert.ok(
        rows.every((row) => row.status === "delivered" && row.attempts === 1),
        "every alert delivered with its first attempt: waiting for the rate spent none",
      );
    } finally {
      for (const p of procs) await p.stop();
      await r.close();
      await stack.close();
    }
  });

  test("the API takes rate_limit_per_second on create and PATCH, shows it, and refuses what is not a rate", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const WH = "/api/integrations/webhooks";
      const created = await s.api.post(WH, {
        url: "https://127.0.0.1:9/hook",
        events: ["*"],
        rate_limit_per_second: 0.2,
      });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.json.rate_limit_per_second, 0.2);
      const id = created.json.id;
      const patched = await s.api.patch(`${WH}/${id}`, { rate_limit_per_second: 5 });
      assert.equal(patched.json.rate_limit_per_second, 5);
      assert.equal((await s.api.get(`${WH}/${id}`)).json.rate_limit_per_second, 5);
      const cleared = await s.api.patch(`${WH}/${id}`, { rate_limit_per_second: null });
      assert.equal(cleared.json.rate_limit_per_second, null);
      for (const bad of [0, -1, 1001, "5"]) {
        assertApiError(
          await s.api.patch(`${WH}/${id}`, { rate_limit_per_second: bad }),
          400,
          "ErrCodeInvalidFieldFormat",
          "body.rate_limit_per_second",
        );
      }
      assert.equal((await s.api.get(`${WH}/${id}`)).json.rate_limit_per_second, null, "nothing stored");
    } finally {
      await s.close();
    }
  });
});
