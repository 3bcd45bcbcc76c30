import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { count, eq } from "drizzle-orm";
import { deliveries, deliveryAttempts } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { type ApiStack, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";

interface Row {
  id: string;
  key: string;
  status: string;
  attemptCount: number;
  maxAttempts: number;
  createdAt: Date;
}

async function rowsOf(s: ApiStack, webhookId: string): Promise<Row[]> {
  return s.stack.rt.database.db
    .select({
      id: deliveries.id,
      key: deliveries.idempotencyKey,
      status: deliveries.status,
      attemptCount: deliveries.attemptCount,
      maxAttempts: deliveries.maxAttempts,
      createdAt: deliveries.createdAt,
    })
    .from(deliveries)
    .where(eq(deliveries.webhookId, webhookId));
}

async function statusesOf(s: ApiStack, ids: string[]): Promise<string[]> {
  const rows = await s.stack.rt.database.db
    .select({ id: deliveries.id, status: deliveries.status })
    .from(deliveries);
  const byId = new Map(rows.map((r) => [r.id, r.status]));
  return ids.map((id) => byId.get(id) ?? "missing");
}

async function allIn(s: ApiStack, ids: string[], status: string): Promise<boolean> {
  return (await statusesOf(s, ids)).every((v) => v === status);
}

async function attemptRowCount(s: ApiStack, deliveryId: string): Promise<number> {
  const [row] = await s.stack.rt.database.db
    .select({ n: count() })
    .from(deliveryAttempts)
    .where(eq(deliveryAttempts.deliveryId, deliveryId));
  return row?.n ?? 0;
}

/** Jobs of the delivery queue in any state but finished. */
async function queuedJobs(s: ApiStack): Promise<number> {
  const counts = await s.stack.rt.deliveryQueue.getJobCounts(
    "waiting",
    "delayed",
    "active",
    "prioritized",
    "waiting-children",
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function keysSeen(r: Receiver): Map<string, number> {
  const seen = new Map<string, number>();
  for (const q of r.requests) {
    const key = String(q.headers["idempotency-key"]);
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return seen;
}

interface Envelope {
  id: string;
  event: string;
  created_at: string;
  data: Record<string, unknown>;
}

/** The envelopes a receiver got, checked for the documented shape and headers on the way. */
function envelopes(r: Receiver): Envelope[] {
  return r.requests.map((q) => {
    const body = JSON.parse(q.body) as Envelope;
    assert.deepEqual(Object.keys(body).sort(), ["created_at", "data", "event", "id"], q.body);
    assert.match(body.id, /^evt_/);
    assert.equal(q.headers["idempotency-key"], body.id, "the Idempotency-Key is the event id");
    assert.equal(q.headers["webhook-event"], body.event);
    assert.ok(!Number.isNaN(Date.parse(body.created_at)), body.created_at);
    return body;
  });
}

async function createWebhook(s: ApiStack, url: string, events: string[]): Promise<string> {
  const res = await s.api.post(WH, { url, events });
  assert.equal(res.status, 201, res.text);
  return res.json.id as string;
}

describe("endpoint health: disable holds, enable releases, recover re-queues", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("disabling holds pending deliveries and the receiver gets nothing; enabling delivers them all", async () => {
    const s = await startApiStack({
      env: { DELIVERY_RETRY_SCHEDULE: "1,1,1,1,1,1,1,1,1", BREAKER_FAILURE_THRESHOLD: "1000" },
    });
    let answer = 500;
    const r = await startReceiver({ behaviour: (_q, res) => res.writeHead(answer).end() });
    try {
      const id = await createWebhook(s, r.url, ["escalation.alert"]);
      const alerts = await enqueueAlerts(s.stack, id, 10);
      const ids = alerts.map((a) => a.id);
      // Every alert failed at least once: all are pending, waiting for a retry.
      await waitFor("a first attempt of each", () => keysSeen(r).size === alerts.length, 30_000);

      const off = await s.api.patch(`${WH}/${id}`, { enabled: false });
      assert.equal(off.status, 200, off.text);
      assert.equal(off.json.enabled, false);
      assert.equal(off.json.disabled_reason, null, "disabled by hand: no reason from endpoint health");
      // An attempt in flight at that moment finishes; its retry then finds the destination disabled.
      await waitFor("every delivery held", () => allIn(s, ids, "held"), 30_000);
      await waitFor("their jobs gone from the queue", async () => (await queuedJobs(s)) === 0, 30_000);
      const sentBefore = r.requests.length;
      // A disabled destination's new work is held as it is created.
      const late = await enqueueAlerts(s.stack, id, 2);
      assert.deepEqual(
        await statusesOf(
          s,
          late.map((a) => a.id),
        ),
        ["held", "held"],
      );
      // Several retry periods and sweeps later, still nothing went out.
      await sleep(3000);
      assert.equal(r.requests.length, sentBefore, "the disabled destination received nothing");
      assert.equal(await queuedJobs(s), 0);
      const held = await s.api.get(`${WH}/${id}/deliveries?status=held&per_page=100`);
      assert.equal(held.status, 200);
      assert.equal(held.json.total, 12);

      answer = 200;
      const on = await s.api.patch(`${WH}/${id}`, { enabled: true });
      assert.equal(on.status, 200, on.text);
      assert.equal(on.json.enabled, true);
      const every = [...ids, ...late.map((a) => a.id)];
      await waitFor("every delivery delivered", () => allIn(s, every, "delivered"), 60_000, 250);
      const seen = keysSeen(r);
      for (const a of [...alerts, ...late]) assert.ok((seen.get(a.key) ?? 0) >= 1, `${a.key} reached`);
      for (const a of late) assert.equal(seen.get(a.key), 1, "held work goes out once, on enable");
      for (const row of await rowsOf(s, id)) {
        assert.equal(row.attemptCount, seen.get(row.key), `attempts of ${row.id}`);
        assert.equal(await attemptRowCount(s, row.id), seen.get(row.key), `attempt rows of ${row.id}`);
      }
    } finally {
      await r.close();
      await s.close();
    }
  });

  test("a destination failing for DESTINATION_DISABLE_AFTER_S is disabled with a reason; subscribers hear failing, disabled and recovered", async () => {
    const s = await startApiStack({
      env: {
        DESTINATION_DISABLE_AFTER_S: "2",
        DELIVERY_RETRY_SCHEDULE: "1,1,1,1,1,1,1,1,1,1,1",
        BREAKER_FAILURE_THRESHOLD: "1000",
      },
    });
    let answer = 500;
    const failing = await startReceiver({ behaviour: (_q, res) => res.writeHead(answer).end() });
    const observer = await startReceiver();
    try {
      // The failing destination subscribes to everything: events about itself must not be sent to it.
      const id = await createWebhook(s, failing.url, ["*"]);
      const observerId = await createWebhook(s, observer.url, [
        "destination.failing",
        "destination.disabled",
        "destination.recovered",
      ]);
      const alerts = await enqueueAlerts(s.stack, id, 5);
      const ids = alerts.map((a) => a.id);

      const disabled = await waitFor(
        "the destination disabled",
        async () => {
          const res = await s.api.get(`${WH}/${id}`);
          return res.json.enabled === false ? res : undefined;
        },
        60_000,
        200,
      );
      const reason = disabled.json.disabled_reason as string;
      assert.match(reason, /^disabled automatically: every attempt has failed since /);
      assert.match(reason, /HTTP 500/);

      // The other destination heard that it was failing, then that it was disabled.
      await waitFor("failing and disabled events", () => observer.requests.length >= 2, 30_000);
      const heard = envelopes(observer);
      const failingEvent = heard.find((e) => e.event === "destination.failing");
      const disabledEvent = heard.find((e) => e.event === "destination.disabled");
      assert.ok(failingEvent && disabledEvent, `events heard: ${heard.map((e) => e.event).join(", ")}`);
      for (const e of [failingEvent, disabledEvent]) {
        assert.equal(e?.data.webhook_id, id);
        // Scheme and host only: a path or query may carry a token, and every subscriber reads this.
        assert.equal(e?.data.url, `${new URL(failing.url).origin}/…`);
      }
      assert.equal(failingEvent?.data.reason, "HTTP 500");
      assert.equal(disabledEvent?.data.reason, reason);
      assert.equal(typeof failingEvent?.data.failing_since, "string");
      assert.equal(disabledEvent?.data.failing_since, failingEvent?.data.failing_since);
      assert.ok(
        reason.includes(String(failingEvent?.data.failing_since)),
        "the reason names when the failures began",
      );

      // What was pending for it is held, and new work too; nothing more reaches it.
      await waitFor("its deliveries held", () => allIn(s, ids, "held"), 30_000);
      const late = await enqueueAlerts(s.stack, id, 2);
      assert.deepEqual(
        await statusesOf(
          s,
          late.map((a) => a.id),
        ),
        ["held", "held"],
      );
      await waitFor("no jobs left", async () => (await queuedJobs(s)) === 0, 30_000);
      const sentBefore = failing.requests.length;
      await sleep(2500);
      assert.equal(failing.requests.length, sentBefore, "the disabled destination received nothing");
      // Only alerts ever went to it, never an event about itself.
      for (const q of failing.requests) assert.equal(q.headers["webhook-event"], "escalation.alert");

      // It is fixed and enabled again: everything held goes out, and subscribers hear it recovered.
      answer = 200;
      const on = await s.api.patch(`${WH}/${id}`, { enabled: true });
      assert.equal(on.status, 200, on.text);
      assert.equal(on.json.enabled, true);
      assert.equal(on.json.disabled_reason, null);
      const every = [...ids, ...late.map((a) => a.id)];
      await waitFor("every delivery delivered", () => allIn(s, every, "delivered"), 60_000, 250);
      const recovered = await waitFor(
        "the recovered event",
        () => envelopes(observer).find((e) => e.event === "destination.recovered"),
        30_000,
      );
      assert.equal(recovered.data.webhook_id, id);
      assert.equal(recovered.data.url, `${new URL(failing.url).origin}/…`);
      assert.equal(recovered.data.reason, null);
      assert.equal(recovered.data.failing_since, null);
      // Each transition was announced once.
      const events = envelopes(observer).map((e) => e.event);
      assert.deepEqual(events.sort(), [
        "destination.disabled",
        "destination.failing",
        "destination.recovered",
      ]);
      // The receiver has them; their outcomes are committed a moment later.
      const observerRows = await waitFor("the events' deliveries delivered", async () => {
        const rows = await rowsOf(s, observerId);
        return rows.length === 3 && rows.every((row) => row.status === "delivered") ? rows : undefined;
      });
      assert.equal(observerRows.length, 3);
    } finally {
      await failing.close();
      await observer.close();
      await s.close();
    }
  });

  test("health events failing at other destinations do not raise health events of their own", async () => {
    const s = await startApiStack({
      env: { DELIVERY_RETRY_SCHEDULE: "1,1,1", BREAKER_FAILURE_THRESHOLD: "1000" },
    });
    // One flaky receiver behind every destination: the first request of each key fails, the next succeeds.
    const tried = new Set<string>();
    const r = await startReceiver({
      behaviour: (q, res) => {
        const key = String(q.headers["idempotency-key"]);
        res.writeHead(tried.has(key) ? 200 : 500).end();
        tried.add(key);
      },
    });
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await createWebhook(s, r.url, ["*"]));
      const [first] = ids as [string];
      const [alert] = await enqueueAlerts(s.stack, first, 1);
      assert.ok(alert);
      await waitFor("the alert delivered", () => allIn(s, [alert.id], "delivered"), 30_000, 250);
      // The alert's destination failed, then recovered: one event each to the two others, and no more.
      const settled = async () => {
        const rows = await s.stack.rt.database.db.select({ status: deliveries.status }).from(deliveries);
        return rows.length === 5 && rows.every((row) => row.status === "delivered");
      };
      await waitFor("the two events to each other destination delivered", settled, 30_000, 250);
      await sleep(2500);
      assert.ok(await settled(), "nothing more was raised");
      const events = envelopes({
        ...r,
        requests: r.requests.filter((q) => q.body.startsWith('{"id":"evt_')),
      });
      assert.deepEqual([...new Set(events.map((e) => `${e.event} ${e.data.webhook_id}`))].sort(), [
        `destination.failing ${first}`,
        `destination.recovered ${first}`,
      ]);
    } finally {
      await r.close();
      await s.close();
    }
  });

  test("recover queues again exactly the failed deliveries created in the window", async () => {
    const s = await startApiStack({
      env: { DELIVERY_RETRY_SCHEDULE: "1,1,1", BREAKER_FAILURE_THRESHOLD: "1000" },
    });
    let answer = 500;
    const r = await startReceiver({ behaviour: (_q, res) => res.writeHead(answer).end() });
    try {
      const id = await createWebhook(s, r.url, ["escalation.alert"]);
      const firstGroup = await enqueueAlerts(s.stack, id, 3);
      const firstIds = firstGroup.map((a) => a.id);
      await waitFor("the first group failed", () => allIn(s, firstIds, "failed"), 60_000, 250);
      const secondGroup = await enqueueAlerts(s.stack, id, 4);
      const secondIds = secondGroup.map((a) => a.id);
      await waitFor("the second group failed", () => allIn(s, secondIds, "failed"), 60_000, 250);
      const rows = await rowsOf(s, id);
      for (const row of rows) assert.equal(row.attemptCount, 4, "four attempts, then failed");

      // The window is the first group's creation times (the API takes milliseconds, Postgres keeps micro).
      const created = rows.filter((row) => firstIds.includes(row.id)).map((row) => row.createdAt.getTime());
      const since = new Date(Math.min(...created));
      const until = new Date(Math.max(...created) + 1);
      const secondCreated = rows.filter((row) => secondIds.includes(row.id)).map((row) => row.createdAt);
      assert.ok(
        secondCreated.every((c) => c > until),
        "the second group lies outside the window",
      );

      answer = 200;
      const sentBefore = r.requests.length;
      const res = await s.api.post(`${WH}/${id}/recover`, {
        since: since.toISOString(),
        until: until.toISOString(),
      });
      assert.equal(res.status, 202, res.text);
      assert.deepEqual(res.json, { queued: firstGroup.length, more: false });

      await waitFor("the first group delivered", () => allIn(s, firstIds, "delivered"), 60_000, 250);
      // A few sweeps later the second group is still failed, and was never sent again.
      await sleep(2500);
      assert.deepEqual(await statusesOf(s, secondIds), ["failed", "failed", "failed", "failed"]);
      const after = r.requests.slice(sentBefore).map((q) => String(q.headers["idempotency-key"]));
      assert.deepEqual(after.sort(), firstGroup.map((a) => a.key).sort(), "exactly the first group went out");

      for (const deliveryId of firstIds) {
        const d = await s.api.get(`${WH}/${id}/deliveries/${deliveryId}`);
        assert.equal(d.status, 200);
        assert.equal(d.json.status, "delivered");
        assert.equal(d.json.attempt_count, 5, "a fresh schedule on top of the four spent");
        assert.equal(d.json.attempts.length, 5);
        assert.equal(d.json.attempts.at(-1).http_status, 200);
      }
      for (const row of await rowsOf(s, id)) {
        if (secondIds.includes(row.id)) assert.equal(row.attemptCount, 4);
        else assert.equal(row.maxAttempts, 8);
      }

      // Nothing failed is left in the window; the other window still has the second group.
      const again = await s.api.post(`${WH}/${id}/recover`, {
        since: since.toISOString(),
        until: until.toISOString(),
      });
      assert.equal(again.status, 202);
      assert.deepEqual(again.json, { queued: 0, more: false });
      const backwards = await s.api.post(`${WH}/${id}/recover`, {
        since: until.toISOString(),
        until: since.toISOString(),
      });
      assert.equal(backwards.status, 400, backwards.text);
    } finally {
      await r.close();
      await s.close();
    }
  });
});
