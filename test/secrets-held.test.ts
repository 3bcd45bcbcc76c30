/**
 * A secret that does not open (a worker started with the wrong SECRETS_KEY) is the operator's mistake, not
 * the destination's: its deliveries are held with that reason, spend no attempt and leave health and
 * breakers alone; a metric and one log line a minute say so, naming the key id needed; and they go out by
 * themselves once a worker has the right key. Real Postgres, Redis, HTTPS receiver and workers.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq } from "drizzle-orm";
import { request } from "undici";
import { startServer } from "../src/api/server.ts";
import { webhooks } from "../src/db/schema.ts";
import { createLogger } from "../src/log.ts";
import { openRuntime, type Runtime } from "../src/runtime.ts";
import { generateSecretsKey, secretsKeyFromBase64 } from "../src/secrets/box.ts";
import { startWorkers } from "../workers/index.ts";
import { deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { testConfig } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { memorySink, type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

/** A runtime of the stack's own database and queues, with other keys: another worker process's view. */
function runtimeWith(stack: Stack, env: Record<string, string>): { rt: Runtime; logs: string[] } {
  const { logs, sink } = memorySink();
  const rt = openRuntime(
    testConfig({ ...stack.env, HOST: "127.0.0.1", PORT: "0", ...env }),
    createLogger("info", sink),
  );
  return { rt, logs };
}

describe("secrets that do not open", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("hold the deliveries without an attempt, say which key is needed, and go out once it is configured", async () => {
    const stack = await startStack({ worker: false });
    const r = await startReceiver();
    const wrongKey = generateSecretsKey();
    const wrong = runtimeWith(stack, { SECRETS_KEY: wrongKey });
    let right: { rt: Runtime; logs: string[] } | undefined;
    const workers: { close(): Promise<void> }[] = [];
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const neededKeyId = secretsKeyFromBase64(stack.env.SECRETS_KEY as string).id;
      workers.push(startWorkers(wrong.rt, { only: "delivery" }));
      const alerts = await enqueueAlerts(stack, wh.id, 20);
      const db = stack.rt.database.db;
      await waitFor(
        "every delivery held for its secret",
        async () => {
          for (const a of alerts) {
            const row = await deliveryRow(db, a.id);
            if (row?.status !== "held" || row.holdReason !== "secret_unreadable") return false;
          }
          return true;
        },
        20_000,
        100,
      );
      // Give the sweeper a few passes: held rows must stay held, not cycle through the queue.
      await sleep(2500);
      assert.equal(r.requests.length, 0, "nothing was sent");
      for (const a of alerts) {
        const row = await deliveryRow(db, a.id);
        assert.equal(row?.status, "held");
        assert.equal(row?.attemptCount, 0, "no attempt spent");
        assert.match(row?.lastError ?? "", /^secret_unreadable: .*sealed with key/);
      }
      const [health] = await db
        .select({ failingSince: webhooks.failingSince, enabled: webhooks.enabled })
        .from(webhooks)
        .where(eq(webhooks.id, wh.id));
      assert.deepEqual(
        health,
        { failingSince: null, enabled: true },
        "the destination's health is untouched",
      );
      const metric = await wrong.rt.metrics.registry
        .getSingleMetric("escalation_shield_secrets_unreadable_total")
        ?.get();
      assert.equal(metric?.values[0]?.value, 20);
      const gauge = await wrong.rt.metrics.registry
        .getSingleMetric("escalation_shield_deliveries_held_secret_unreadable")
        ?.get();
      assert.equal(gauge?.values[0]?.value, 20);
      const lines = wrong.logs.filter((l) => l.includes("cannot be opened with SECRETS_KEY"));
      assert.equal(lines.length, 1, "one line for the twenty deliveries, not one each");
      assert.ok(lines[0]?.includes(neededKeyId), "the line names the key id the data needs");
      assert.ok(!lines[0]?.includes(wrongKey) && !lines[0]?.includes(stack.env.SECRETS_KEY as string));
      // The misconfigured process's readiness says so, naming the key id the data needs.
      const server = await startServer(wrong.rt);
      try {
        const res = await request(`${server.url}/readyz`);
        const body = (await res.body.json()) as { code: string; msg: string };
        assert.equal(res.statusCode, 503);
        assert.equal(body.code, "ErrCodeUnavailable");
        assert.ok(body.msg.includes(neededKeyId), body.msg);
      } finally {
        await server.close();
      }

      // The operator configures the right key (as the previous one beside the new): they go out by themselves.
      const closing = workers.pop();
      await closing?.close();
      right = runtimeWith(stack, {
        SECRETS_KEY: wrongKey,
        SECRETS_KEY_PREVIOUS: stack.env.SECRETS_KEY as string,
      });
      workers.push(startWorkers(right.rt, { only: "delivery" }));
      const ready = await startServer(right.rt);
      try {
        const res = await request(`${ready.url}/readyz`);
        await res.body.dump();
        assert.equal(res.statusCode, 200, "with the key that sealed them, the process is ready");
      } finally {
        await ready.close();
      }
      await waitFor(
        "every delivery delivered",
        async () => {
          for (const a of alerts) if ((await deliveryRow(db, a.id))?.status !== "delivered") return false;
          return true;
        },
        20_000,
        100,
      );
      assert.equal(r.requests.length, 20, "one request each");
      for (const a of alerts) assert.equal((await deliveryRow(db, a.id))?.attemptCount, 1);
    } finally {
      for (const w of workers) await w.close();
      await wrong.rt.close();
      await right?.rt.close();
      await r.close();
      await stack.close();
    }
  });
});
