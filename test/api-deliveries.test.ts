import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { deliveryJobId } from "../src/jobs.ts";
import { Pruner } from "../src/retention/pruner.ts";
import { standardSignature } from "../src/signing/standard.ts";
import { type ApiStack, assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Behaviour, type ReceivedRequest, type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";

const answer =
  (status: number): Behaviour =>
  (_req, res) => {
    res
      .writeHead(status, { "content-type": "application/json" })
      .end(status < 300 ? '{"ok":true}' : '{"err":1}');
  };

function verifies(req: ReceivedRequest, secret: string): boolean {
  const id = String(req.headers["webhook-id"]);
  const ts = Number(req.headers["webhook-timestamp"]);
  const expected = standardSignature(secret, id, ts, req.body);
  return String(req.headers["webhook-signature"]).split(" ").includes(expected);
}

describe("admin API: delivery history, retries, tests, disable/enable and delete", () => {
  let s: ApiStack;
  const receivers: Receiver[] = [];
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack();
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await s.close();
    await assertNoOpenHandles(baseline);
  });
  async function receiver(behaviour?: Behaviour): Promise<Receiver> {
    const r = await startReceiver({ behaviour });
    receivers.push(r);
    return r;
  }
  async function destination(url: string, extra: Record<string, unknown> = {}) {
    const res = await s.api.post(WH, { url, events: ["escalation.alert"], ...extra });
    assert.equal(res.status, 201, res.text);
    return res.json as { id: string; secret: string };
  }
  async function delivery(webhookId: string, deliveryId: string) {
    const res = await s.api.get(`${WH}/${webhookId}/deliveries/${deliveryId}`);
    assert.equal(res.status, 200, res.text);
    return res.json;
  }
  async function settled(webhookId: string, deliveryId: string, status: string) {
    return waitFor(`delivery ${status}`, async () => {
      const d = await delivery(webhookId, deliveryId);
      return d.status === status ? d : undefined;
    });
  }

  test("a test escalation.alert goes out as a sample alert and shows in the history with its attempt", async () => {
    const r = await receiver();
    const wh = await destination(r.url, { auth: { type: "bearer", credential: "test-cred-1" } });
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    assert.equal(sent.status, 202, sent.text);
    assert.equal(sent.json.status, "pending");
    assert.match(sent.json.delivery_id, /^del_/);

    const got = await waitFor("test alert", () => r.requests[0]);
    const body = JSON.parse(got.body);
    assert.deepEqual(Object.keys(body), [
      "automation_id",
      "org_id",
      "escalated_at",
      "levels",
      "record",
      "test",
    ]);
    assert.equal(body.test, true);
    assert.equal(body.org_id, s.stack.org.slug);
    assert.match(body.automation_id, /^aut_[a-z0-9]{20}$/);
    assert.match(body.record.id, /^rec_[a-z0-9]{20}$/);
    assert.equal(body.record.url, `${s.stack.config.publicUrl}/${s.stack.org.slug}/record/${body.record.id}`);
    assert.equal(got.headers["idempotency-key"], `${body.automation_id}:${wh.id}:${body.record.id}`);
    assert.equal(got.headers.authorization, "Bearer test-cred-1");
    assert.equal(got.headers["webhook-id"], sent.json.delivery_id);
    assert.ok(verifies(got, wh.secret), "signed with the destination's secret");

    const d = await settled(wh.id, sent.json.delivery_id, "delivered");
    assert.equal(d.event, "escalation.alert");
    assert.equal(d.attempt_count, 1);
    assert.equal(d.http_status, 200);
    assert.equal(d.idempotency_key, got.headers["idempotency-key"]);
    assert.equal(d.next_attempt_at, null);
    assert.ok(d.delivered_at);
    assert.deepEqual(d.payload, body);
    assert.equal(d.attempts.length, 1);
    const [a] = d.attempts;
    assert.equal(a.attempt_number, 1);
    assert.equal(a.http_status, 200);
    assert.equal(a.error_kind, null);
    assert.equal(a.response_excerpt, '{"ok":true}');
    assert.ok(a.duration_ms >= 0);
    assert.ok(!Number.isNaN(Date.parse(a.started_at)));
    // The request as it was sent: every header the receiver got, the signature the same bytes (it is
    // recomputed for the attempt's timestamp), the credential masked.
    assert.equal(d.request.url, r.url);
    assert.equal(d.request.headers.authorization, "Bearer ••••••••");
    for (const h of [
      "content-type",
      "user-agent",
      "idempotency-key",
      "webhook-id",
      "webhook-timestamp",
      "webhook-signature",
    ])
      assert.equal(d.request.headers[h], got.headers[h], h);
    assert.equal(Date.parse(d.request.signed_at), Date.parse(a.started_at));
    assert.ok(!JSON.stringify(d).includes("test-cred-1"));
    // A read-only key sees no signature it could replay the request with.
    const ro = await s.api.post("/api/keys", { scope: "read-only" });
    const seen = (await s.api.as(ro.json.api_key).get(`${WH}/${wh.id}/deliveries/${sent.json.delivery_id}`))
      .json;
    assert.equal(seen.request.headers["webhook-signature"], "(shown to admin keys only)");
    assert.equal((await s.api.delete(`/api/keys/${ro.json.id}`)).status, 204);

    const list = await s.api.get(`${WH}/${wh.id}/deliveries`);
    assert.equal(list.status, 200);
    assert.equal(list.json.total, 1);
    assert.equal(list.json.page, 1);
    assert.equal(list.json.per_page, 20);
    assert.deepEqual(Object.keys(list.json.data[0]).sort(), [
      "attempt_count",
      "created_at",
      "delivered_at",
      "digest_id",
      "event",
      "held_reason",
      "http_status",
      "id",
      "idempotency_key",
      "last_error",
      "next_attempt_at",
      "status",
    ]);
    assert.equal(list.json.data[0].digest_id, null, "a webhook's deliveries are never digested");
  });

  test("test events of the other types travel in their envelope, even when not subscribed", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    for (const event of [
      "test.webhook",
      "destination.failing",
      "destination.disabled",
      "destination.recovered",
    ]) {
      const sent = await s.api.post(`${WH}/${wh.id}/test`, { event });
      assert.equal(sent.status, 202, sent.text);
      const got = await waitFor(`${event} test`, () =>
        r.requests.find((q) => q.headers["webhook-event"] === event),
      );
      const body = JSON.parse(got.body);
      assert.deepEqual(Object.keys(body), ["id", "event", "created_at", "data"]);
      assert.equal(body.event, event);
      assert.equal(body.data.test, true);
      assert.equal(body.data.webhook_id, wh.id);
      assert.match(body.id, /^evt_/);
      assert.equal(got.headers["idempotency-key"], body.id);
      await settled(wh.id, sent.json.delivery_id, "delivered");
    }
  });

  test("test event validation", async () => {
    const wh = await destination("https://127.0.0.1:9/x");
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/test`, { event: "survey.response.created" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.event",
    );
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/test`, {}),
      400,
      "ErrCodeMissingRequiredField",
      "body.event",
    );
    assertApiError(await s.api.post(`${WH}/${wh.id}/test`), 400, "ErrCodeMissingRequiredField", "body");
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/test`, { event: "test.webhook", data: {} }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.data",
    );
    assertApiError(
      await s.api.post(`${WH}/whe_nope/test`, { event: "test.webhook" }),
      404,
      "ErrCodeNotFound",
    );
  });

  test("retry sends a delivered delivery again at once, same bytes and key; the attempt shows in the history", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    await settled(wh.id, sent.json.delivery_id, "delivered");
    const retried = await s.api.post(`${WH}/${wh.id}/deliveries/${sent.json.delivery_id}/retry`);
    assert.equal(retried.status, 202, retried.text);
    assert.deepEqual(retried.json, { id: sent.json.delivery_id, status: "pending" });
    await waitFor("second request", () => r.requests[1]);
    assert.equal(r.requests[1]?.body, r.requests[0]?.body);
    assert.equal(r.requests[1]?.headers["idempotency-key"], r.requests[0]?.headers["idempotency-key"]);
    const d = await waitFor("two attempts", async () => {
      const x = await delivery(wh.id, sent.json.delivery_id);
      return x.status === "delivered" && x.attempts.length === 2 ? x : undefined;
    });
    assert.equal(d.attempt_count, 2);
    assert.deepEqual(
      d.attempts.map((a: { attempt_number: number }) => a.attempt_number),
      [1, 2],
    );

    assertApiError(await s.api.post(`${WH}/${wh.id}/deliveries/del_nope/retry`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.get(`${WH}/${wh.id}/deliveries/del_nope`), 404, "ErrCodeNotFound");
    assertApiError(
      await s.api.post(`${WH}/${wh.id}/deliveries/${sent.json.delivery_id}/retry`, { now: true }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.now",
    );
    // Another destination's delivery id is not found under this one.
    const other = await destination("https://127.0.0.1:9/other");
    assertApiError(
      await s.api.post(`${WH}/${other.id}/deliveries/${sent.json.delivery_id}/retry`),
      404,
      "ErrCodeNotFound",
    );
    assertApiError(
      await s.api.get(`${WH}/${other.id}/deliveries/${sent.json.delivery_id}`),
      404,
      "ErrCodeNotFound",
    );
  });

  test("a failed delivery retried goes out again", async () => {
    const r = await receiver(answer(500));
    const wh = await destination(r.url);
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "test.webhook" });
    // DELIVERY_RETRY_SCHEDULE is 1,1,1 in tests: four attempts, then failed.
    const failed = await settled(wh.id, sent.json.delivery_id, "failed");
    assert.equal(failed.attempts.length, 4);
    assert.equal(failed.http_status, 500);
    r.setBehaviour(answer(200));
    const retried = await s.api.post(`${WH}/${wh.id}/deliveries/${sent.json.delivery_id}/retry`, {});
    assert.equal(retried.status, 202);
    const d = await settled(wh.id, sent.json.delivery_id, "delivered");
    assert.equal(d.attempts.length, 5);
    assert.equal(r.requests.length, 5);
  });

  test("disable holds pending deliveries and new ones; enable releases them", async () => {
    const r = await receiver(answer(500));
    const wh = await destination(r.url);
    const first = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    // Once the first attempt is recorded, the delivery waits for its retry (an attempt in flight always finishes).
    await waitFor(
      "first attempt recorded",
      async () => (await delivery(wh.id, first.json.delivery_id)).attempts.length === 1,
    );
    const disabled = await s.api.patch(`${WH}/${wh.id}`, { enabled: false });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.json.enabled, false);
    // Held right after the answer (a batch at a time): the retry scheduled for 1 s later does not go out.
    const held = await waitFor("held", async () => {
      const d = await delivery(wh.id, first.json.delivery_id);
      return d.status === "held" ? d : undefined;
    });
    assert.equal(held.status, "held");
    assert.equal(held.next_attempt_at, null);
    const more = await Promise.all(
      [1, 2].map(() => s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" })),
    );
    for (const m of more) assert.deepEqual(m.json.status, "held");
    await sleep(2500);
    assert.equal(r.requests.length, 1, "nothing goes out while disabled");
    const heldList = await s.api.get(`${WH}/${wh.id}/deliveries?status=held`);
    assert.equal(heldList.json.total, 3);

    r.setBehaviour(answer(200));
    const enabled = await s.api.patch(`${WH}/${wh.id}`, { enabled: true });
    assert.equal(enabled.json.enabled, true);
    await waitFor("released deliveries", () => r.requests.length >= 4);
    for (const id of [first.json.delivery_id, ...more.map((m) => m.json.delivery_id)]) {
      await settled(wh.id, id, "delivered");
    }
    assert.equal(r.requests.length, 4);
  });

  test("delete stops pending retries: the queued job finds nothing and does nothing", async () => {
    const r = await receiver(answer(500));
    const wh = await destination(r.url);
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    await waitFor("first attempt", () => r.requests[0]);
    await waitFor(
      "retry scheduled",
      async () => (await delivery(wh.id, sent.json.delivery_id)).attempts.length === 1,
    );
    const del = await s.api.delete(`${WH}/${wh.id}`);
    assert.equal(del.status, 204);
    // The delayed job still runs once, finds its destination gone and finishes without an attempt or an error.
    const queue = s.stack.rt.deliveryQueue;
    const key = `${queue.opts.prefix}:${queue.name}:${deliveryJobId(sent.json.delivery_id, 0)}`;
    await waitFor("queued job gone", async () => (await s.stack.rt.redis.exists(key)) === 0, 10_000);
    await sleep(2000);
    assert.equal(r.requests.length, 1, "nothing more reaches the receiver");
    assert.ok(!s.stack.logs.some((l) => l.includes(sent.json.delivery_id) && l.includes('"level":50')));
    assertApiError(await s.api.get(`${WH}/${wh.id}/deliveries`), 404, "ErrCodeNotFound");
    // The pruner then removes its rows (in batches; here one run).
    const pruner = new Pruner(s.stack.rt.database.db, s.stack.rt.log, {
      databaseUrl: s.stack.config.databaseUrl,
      deliveryRetentionMs: 0,
      recordRetentionMs: 0,
      auditRetentionMs: 0,
      intervalMs: 60_000,
    });
    try {
      await pruner.runOnce();
    } finally {
      await pruner.stop();
    }
    const rows = await s.stack.rt.database.db
      .select()
      .from(deliveries)
      .where(eq(deliveries.webhookId, wh.id));
    assert.equal(rows.length, 0, "its deliveries are gone");
  });

  test("a new credential and URL are used from the next attempt on", async () => {
    const a = await receiver(answer(500));
    const b = await receiver(answer(200));
    const wh = await destination(a.url, { auth: { type: "bearer", credential: "old-cred-1" } });
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    const first = await waitFor("first attempt", () => a.requests[0]);
    assert.equal(first.headers.authorization, "Bearer old-cred-1");
    const patched = await s.api.patch(`${WH}/${wh.id}`, {
      url: b.url,
      auth: { type: "custom_header", header_name: "X-Shield-Token", credential: "new-cred-2" },
    });
    assert.equal(patched.status, 200, patched.text);
    const second = await waitFor("next attempt at the new URL", () => b.requests[0]);
    assert.equal(second.headers["x-shield-token"], "new-cred-2");
    assert.equal(second.headers.authorization, undefined);
    assert.equal(second.body, first.body);
    await settled(wh.id, sent.json.delivery_id, "delivered");
    assert.equal(a.requests.length, 1);
  });

  test("rotate-secret: the next attempt is signed with the new secret only", async () => {
    const r = await receiver();
    const wh = await destination(r.url);
    const sent = await s.api.post(`${WH}/${wh.id}/test`, { event: "escalation.alert" });
    await settled(wh.id, sent.json.delivery_id, "delivered");
    assert.ok(verifies(r.requests[0] as ReceivedRequest, wh.secret));
    const rotated = await s.api.post(`${WH}/${wh.id}/rotate-secret`);
    assert.equal(rotated.status, 200);
    await s.api.post(`${WH}/${wh.id}/deliveries/${sent.json.delivery_id}/retry`);
    const again = await waitFor("retry", () => r.requests[1]);
    assert.ok(verifies(again, rotated.json.secret), "signed with the new secret");
    assert.ok(!verifies(again, wh.secret), "the old secret no longer signs");
  });

  test("history: filters, paging, newest first, and query validation", async () => {
    const wh = await destination("https://127.0.0.1:9/never", { enabled: false });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await s.api.post(`${WH}/${wh.id}/test`, { event: "test.webhook" });
      assert.equal(res.json.status, "held");
      ids.push(res.json.delivery_id);
      await sleep(5);
    }
    const all: string[] = [];
    for (const page of [1, 2, 3]) {
      const res = await s.api.get(`${WH}/${wh.id}/deliveries?per_page=2&page=${page}`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.total, 5);
      assert.equal(res.json.page, page);
      assert.equal(res.json.per_page, 2);
      all.push(...res.json.data.map((d: { id: string }) => d.id));
    }
    assert.deepEqual(all, [...ids].reverse(), "newest first, no overlap");
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?page=4&per_page=2`)).json.data.length, 0);
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?status=held`)).json.total, 5);
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?status=delivered`)).json.total, 0);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const past = "2020-01-01T00:00:00Z";
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?from=${future}`)).json.total, 0);
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?to=${past}`)).json.total, 0);
    assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries?from=${past}&to=${future}`)).json.total, 5);

    const bad: [string, string, string][] = [
      ["page=0", "ErrCodeInvalidFieldFormat", "query.page"],
      ["page=x", "ErrCodeInvalidFieldFormat", "query.page"],
      ["page=1.5", "ErrCodeInvalidFieldFormat", "query.page"],
      ["per_page=0", "ErrCodeInvalidFieldFormat", "query.per_page"],
      ["per_page=101", "ErrCodeInvalidFieldFormat", "query.per_page"],
      ["status=sent", "ErrCodeInvalidFieldFormat", "query.status"],
      ["from=yesterday", "ErrCodeInvalidFieldFormat", "query.from"],
      ["to=2026-13-01T00:00:00Z", "ErrCodeInvalidFieldFormat", "query.to"],
      [`from=${future}&to=${past}`, "ErrCodeInvalidFieldFormat", "query.to"],
      ["sort=asc", "ErrCodeInvalidFieldFormat", "query.sort: unknown field"],
      ["page=1&page=2", "ErrCodeInvalidFieldFormat", "query.page"],
    ];
    for (const [query, code, field] of bad) {
      assertApiError(await s.api.get(`${WH}/${wh.id}/deliveries?${query}`), 400, code, field);
    }
    assertApiError(await s.api.get(`${WH}/whe_nope/deliveries`), 404, "ErrCodeNotFound");
  });
});
