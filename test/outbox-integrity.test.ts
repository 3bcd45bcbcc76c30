/**
 * The outbox never lies: what a receiver answers, what an admin does meanwhile and how stale an outcome is
 * never costs another delivery its outcome, shortens a schedule or sends an alert twice at once.
 * Real Postgres, Redis, HTTPS receivers and workers; each test has its own database and queue prefix.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq, sql } from "drizzle-orm";
import { deliveries, deliveryAttempts, webhooks } from "../src/db/schema.ts";
import { CLAIM_LEASE_MS } from "../src/delivery/attempt.ts";
import { ClaimBatcher } from "../src/delivery/claims.ts";
import { claimDeliveries } from "../src/delivery/outbox.ts";
import { AttemptWriter } from "../src/delivery/writer.ts";
import { attemptRows, deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Behaviour, startReceiver } from "./helpers/receiver.ts";
import { startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";

const status =
  (code: number, headers: Record<string, string> = {}): Behaviour =>
  (_req, res) => {
    res.writeHead(code, headers).end(code < 300 ? "ok" : "no");
  };

/** An API stack with `schedule` as its retry schedule and one alert to a receiver that always answers 500. */
async function failingDelivery(schedule: string) {
  const s = await startApiStack({ env: { DELIVERY_RETRY_SCHEDULE: schedule } });
  const r = await startReceiver({ behaviour: status(500) });
  const wh = await s.stack.webhook({ url: r.url, events: ["escalation.alert"] });
  const [alert] = await enqueueAlerts(s.stack, wh.id, 1);
  return { s, r, wh, id: (alert as { id: string }).id, db: s.stack.rt.database.db };
}

describe("the outbox never lies", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("a receiver answering with NUL bytes, invalid UTF-8 or a huge line costs no other delivery its outcome", async () => {
    const stack = await startStack();
    const nul = await startReceiver({ behaviour: (_q, res) => res.writeHead(200).end("O\0K\0") });
    const binary = await startReceiver({
      behaviour: (_q, res) => res.writeHead(200).end(Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80])),
    });
    const huge = await startReceiver({ behaviour: (_q, res) => res.writeHead(200).end("x".repeat(200_000)) });
    const plain = await startReceiver();
    try {
      const hooks = await Promise.all(
        [nul, binary, huge, plain].map((r) => stack.webhook({ url: r.url, events: ["escalation.alert"] })),
      );
      // Interleaved, so the outcomes share the writer's batches.
      const alerts = (await Promise.all(hooks.map((h) => enqueueAlerts(stack, h.id, 60)))).flat();
      const db = stack.rt.database.db;
      await waitFor(
        "every delivery delivered",
        async () => {
          const [row] = await db
            .select({ n: sql<number>`count(*)::int` })
            .from(deliveries)
            .where(eq(deliveries.status, "delivered"));
          return row?.n === alerts.length;
        },
        30_000,
        100,
      );
      const [first] = await attemptRows(db, (alerts[0] as { id: string }).id);
      assert.equal(first?.responseExcerpt, "O\uFFFDK\uFFFD", "a NUL is stored as U+FFFD, the rest as sent");
      assert.equal(nul.requests.length, 60, "one request each: nothing was sent again");
      assert.equal(binary.requests.length + huge.requests.length + plain.requests.length, 180);
    } finally {
      for (const r of [nul, binary, huge, plain]) await r.close();
      await stack.close();
    }
  });

  test("a late outcome of a lapsed claim leaves the newer attempt's state alone", async () => {
    const stack = await startStack({ worker: false });
    const writer = new AttemptWriter(stack.rt.database.db);
    try {
      const db = stack.rt.database.db;
      const wh = await stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const [alert] = await enqueueAlerts(stack, wh.id, 1);
      const id = (alert as { id: string }).id;
      // The first claim's lease lapses (its worker stalled past it); a second worker claims the delivery.
      const old = (await claimDeliveries(db, [{ id, generation: 0 }], 1)).get(id);
      assert.ok(old);
      await sleep(1100);
      const current = (await claimDeliveries(db, [{ id, generation: 0 }], CLAIM_LEASE_MS)).get(id);
      assert.ok(current);
      assert.notEqual(current.attemptNumber, old.attemptNumber, "each claim has its own attempt number");
      // The stalled worker's failure arrives now: it must not end the lease the second attempt holds.
      const attempt = (n: number, httpStatus: number) => ({
        deliveryId: id,
        attemptNumber: n,
        startedAt: new Date(),
        durationMs: 10,
        httpStatus,
        errorKind: null,
        errorMessage: null,
        responseExcerpt: null,
      });
      await writer.write(
        attempt(old.attemptNumber, 500),
        { token: old.claimToken, generation: 0 },
        { ok: false, retryInMs: 60_000 },
      );
      let row = await deliveryRow(db, id);
      assert.equal(row?.status, "pending");
      assert.ok(row?.leasedUntil, "the current claim still holds its lease");
      assert.equal(row?.claimToken, current.claimToken);
      // The attempt did happen, so the history has it.
      assert.equal((await attemptRows(db, id)).length, 1);
      await writer.write(
        attempt(current.attemptNumber, 200),
        { token: current.claimToken, generation: 0 },
        { ok: true, retryInMs: 0 },
      );
      row = await deliveryRow(db, id);
      assert.equal(row?.status, "delivered");
      assert.deepEqual(
        (await attemptRows(db, id)).map((a) => a.attemptNumber),
        [1, 2],
      );
    } finally {
      await writer.close();
      await stack.close();
    }
  });

  test("two generations of one delivery claimed in one batch: only the current one gets the claim", async () => {
    const stack = await startStack({ worker: false });
    try {
      const db = stack.rt.database.db;
      const wh = await stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const [alert] = await enqueueAlerts(stack, wh.id, 1);
      const id = (alert as { id: string }).id;
      // A manual retry made the delivery generation 1; the generation-0 job is still around.
      await db.update(deliveries).set({ generation: 1 }).where(eq(deliveries.id, id));
      const batcher = new ClaimBatcher(db, CLAIM_LEASE_MS, { maxDelayMs: 50 });
      const [old, current] = await Promise.all([batcher.claim(id, 0), batcher.claim(id, 1)]);
      assert.equal(old, undefined, "the superseded job gets no claim");
      assert.equal(current?.generation, 1);
    } finally {
      await stack.close();
    }
  });

  test("an outcome of a deleted destination's delivery does not roll back the rest of its batch", async () => {
    const stack = await startStack({ worker: false });
    // A long batching window, so both outcomes share one transaction.
    const writer = new AttemptWriter(stack.rt.database.db, { maxDelayMs: 300 });
    try {
      const db = stack.rt.database.db;
      const gone = await stack.webhook({ url: "https://127.0.0.1:9/a", events: ["escalation.alert"] });
      const kept = await stack.webhook({ url: "https://127.0.0.1:9/b", events: ["escalation.alert"] });
      const [a] = await enqueueAlerts(stack, gone.id, 1);
      const [b] = await enqueueAlerts(stack, kept.id, 1);
      const ids = [a, b].map((x) => (x as { id: string }).id);
      const claims = await claimDeliveries(
        db,
        ids.map((id) => ({ id, generation: 0 })),
        CLAIM_LEASE_MS,
      );
      const writes = ids.map((id) => {
        const c = claims.get(id);
        assert.ok(c);
        return writer.write(
          {
            deliveryId: id,
            attemptNumber: c.attemptNumber,
            startedAt: new Date(),
            durationMs: 5,
            httpStatus: 200,
            errorKind: null,
            errorMessage: null,
            responseExcerpt: "ok",
          },
          { token: c.claimToken, generation: 0 },
          { ok: true, retryInMs: 0 },
        );
      });
      // Deleted while its attempt was in flight: its deliveries and their history go with it.
      await db.delete(webhooks).where(eq(webhooks.id, gone.id));
      await Promise.all(writes);
      assert.equal((await deliveryRow(db, ids[1] as string))?.status, "delivered");
      assert.equal((await attemptRows(db, ids[1] as string)).length, 1);
      const orphans = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(deliveryAttempts)
        .where(eq(deliveryAttempts.deliveryId, ids[0] as string));
      assert.equal(orphans[0]?.n, 0);
    } finally {
      await writer.close();
      await stack.close();
    }
  });

  test("a manual retry of a pending delivery keeps the rest of its schedule", async () => {
    // 4 attempts in all: 0, +1 s, +1 s, +1 s.
    const { s, r, wh, id, db } = await failingDelivery("1,1,1");
    try {
      await waitFor("two failed attempts", async () => (await attemptRows(db, id)).length === 2, 20_000);
      const res = await s.api.post(`${WH}/${wh.id}/deliveries/${id}/retry`);
      assert.equal(res.status, 202);
      await waitFor(
        "the delivery failed for good",
        async () => (await deliveryRow(db, id))?.status === "failed",
      );
      // The retry was one attempt more than the four, never a cut to three.
      const rowsNow = await attemptRows(db, id);
      assert.equal(
        r.requests.length,
        5,
        JSON.stringify(rowsNow.map((a) => [a.attemptNumber, a.startedAt, a.httpStatus])) +
          JSON.stringify(await deliveryRow(db, id)),
      );
      assert.deepEqual(
        (await attemptRows(db, id)).map((a) => a.attemptNumber),
        [1, 2, 3, 4, 5],
      );
    } finally {
      await r.close();
      await s.close();
    }
  });

  test("a manual retry during an attempt in flight waits for it: never two requests at once", async () => {
    const s = await startApiStack({ env: { DELIVERY_RETRY_SCHEDULE: "1,1,1" } });
    let open = 0;
    let most = 0;
    const r = await startReceiver({
      behaviour: (_q, res, n) => {
        open++;
        most = Math.max(most, open);
        // The first answer takes 2 s, long enough for the retry to be asked for meanwhile.
        setTimeout(
          () => {
            open--;
            res.writeHead(n === 0 ? 500 : 200).end();
          },
          n === 0 ? 2000 : 10,
        );
      },
    });
    try {
      const wh = await s.stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const [alert] = await enqueueAlerts(s.stack, wh.id, 1);
      const id = (alert as { id: string }).id;
      const db = s.stack.rt.database.db;
      await waitFor("the first attempt in flight", () => r.requests.length === 1);
      assert.equal((await s.api.post(`${WH}/${wh.id}/deliveries/${id}/retry`)).status, 202);
      await waitFor("delivered", async () => (await deliveryRow(db, id))?.status === "delivered");
      await sleep(1500);
      assert.equal(most, 1, "never two requests of one delivery at once");
      assert.equal(r.requests.length, 2, "the failed attempt and one more");
      assert.deepEqual(
        (await attemptRows(db, id)).map((a) => a.attemptNumber),
        [1, 2],
      );
    } finally {
      await r.close();
      await s.close();
    }
  });

  test("Retry-After lengthens the scheduled wait (up to twice) and never shortens it", async () => {
    const s = await startApiStack({ env: { DELIVERY_RETRY_SCHEDULE: "3,3" } });
    const short = await startReceiver({ behaviour: status(503, { "retry-after": "1" }) });
    const long = await startReceiver({ behaviour: status(429, { "retry-after": "3600" }) });
    try {
      const db = s.stack.rt.database.db;
      const a = await s.stack.webhook({ url: short.url, events: ["escalation.alert"] });
      const b = await s.stack.webhook({ url: long.url, events: ["escalation.alert"] });
      const [x] = await enqueueAlerts(s.stack, a.id, 1);
      const [y] = await enqueueAlerts(s.stack, b.id, 1);
      await waitFor("two attempts at the short one", () => short.requests.length >= 2, 20_000);
      const gap = (short.requests[1]?.at ?? 0) - (short.requests[0]?.at ?? 0);
      // Scheduled 3 s (×0.8–1.2): `Retry-After: 1` does not bring it forward.
      assert.ok(gap >= 2400, `second attempt ${gap} ms after the first`);
      await waitFor("the long one retried", () => long.requests.length >= 1);
      await waitFor(
        "its next time stored",
        async () => (await deliveryRow(db, (y as { id: string }).id))?.lastAttemptAt,
      );
      const row = await deliveryRow(db, (y as { id: string }).id);
      const wait = (row?.nextAttemptAt.getTime() ?? 0) - (row?.lastAttemptAt?.getTime() ?? 0);
      // `Retry-After: 3600` is held to twice the scheduled 3 s (×1.2 at most).
      assert.ok(wait >= 2400 && wait <= 7500, `next attempt ${wait} ms after the last`);
      assert.ok(x);
    } finally {
      await short.close();
      await long.close();
      await s.close();
    }
  });

  test("enabling a destination sends its held deliveries at once, whatever old jobs Redis still has", async () => {
    // A long first wait: a delayed job sits in Redis for a minute after the failed attempt.
    const s = await startApiStack({ env: { DELIVERY_RETRY_SCHEDULE: "60" } });
    let up = false;
    const r = await startReceiver({ behaviour: (_q, res) => res.writeHead(up ? 200 : 500).end() });
    try {
      const wh = await s.stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(s.stack, wh.id, 5);
      const db = s.stack.rt.database.db;
      await waitFor("each failed once", () => r.requests.length === 5);
      assert.equal((await s.api.patch(`${WH}/${wh.id}`, { enabled: false })).status, 200);
      await waitFor("all held", async () => {
        for (const a of alerts) if ((await deliveryRow(db, a.id))?.status !== "held") return false;
        return true;
      });
      up = true;
      const enabledAt = Date.now();
      assert.equal((await s.api.patch(`${WH}/${wh.id}`, { enabled: true })).status, 200);
      await waitFor(
        "all delivered",
        async () => {
          for (const a of alerts) if ((await deliveryRow(db, a.id))?.status !== "delivered") return false;
          return true;
        },
        5000,
      );
      assert.ok(Date.now() - enabledAt < 5000);
      assert.equal(r.requests.length, 10);
    } finally {
      await r.close();
      await s.close();
    }
  });

  test("recover gives the recovered deliveries the schedule from its start", async () => {
    const { s, r, wh, id, db } = await failingDelivery("1,60");
    try {
      await waitFor("two attempts", async () => (await attemptRows(db, id)).length === 2, 10_000);
      // Its schedule is used up (the 60 s wait would follow): end it as exhausted deliveries end.
      await db.update(deliveries).set({ status: "failed", maxAttempts: 2 }).where(eq(deliveries.id, id));
      const res = await s.api.post(`${WH}/${wh.id}/recover`, { since: "2000-01-01T00:00:00Z" });
      assert.equal(res.status, 202);
      assert.equal(res.json.queued, 1);
      // Attempt 3 fails; the wait after it is the schedule's first (1 s), not its last (60 s).
      await waitFor(
        "the third and fourth attempts",
        async () => (await attemptRows(db, id)).length === 4,
        10_000,
      );
    } finally {
      await r.close();
      await s.close();
    }
  });
});
