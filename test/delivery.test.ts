import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { attemptRows, deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("delivery over HTTPS", () => {
  let stack: Stack;
  const receivers: Receiver[] = [];
  const baseline = handleBaseline();
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await stack.close();
    await assertNoOpenHandles(baseline);
  });
  async function receiver(...args: Parameters<typeof startReceiver>) {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  }

  const authCases = [
    { type: "none", credential: null, header: null, expected: null },
    {
      type: "bearer",
      credential: "tok-bearer-123",
      header: "authorization",
      expected: "Bearer tok-bearer-123",
    },
    { type: "api_key", credential: "key-abc-456", header: "x-api-key", expected: "key-abc-456" },
    { type: "custom_header", credential: "custom-789", header: "x-escalation-token", expected: "custom-789" },
  ] as const;

  for (const c of authCases) {
    test(`sends the contract's headers and body with ${c.type} auth`, async () => {
      const r = await receiver();
      const wh = await stack.webhook({
        url: r.url,
        events: ["*"],
        auth: {
          type: c.type,
          credential: c.credential,
          headerName: c.type === "custom_header" ? "X-Escalation-Token" : null,
        },
      });
      const [alert] = await enqueueAlerts(stack, wh.id);
      assert.ok(alert);
      const got = await waitFor("delivery", () => r.requests[0]);
      assert.equal(got.method, "POST");
      assert.equal(got.path, "/hook");
      assert.equal(got.headers["content-type"], "application/json");
      assert.equal(got.headers["user-agent"], "SupportEscalationAutomation/1.0");
      assert.equal(got.headers["idempotency-key"], alert.key);
      assert.match(alert.key, /^aut_[a-z0-9]+:whe_[a-z0-9]+:rec_[a-z0-9]+$/);
      assert.equal(got.body, alert.body);
      const body = JSON.parse(got.body);
      assert.deepEqual(Object.keys(body), ["automation_id", "org_id", "escalated_at", "levels", "record"]);
      assert.equal(body.org_id, stack.org.slug);
      if (c.header === null) {
        assert.equal(got.headers.authorization, undefined);
        assert.equal(got.headers["x-api-key"], undefined);
      } else {
        assert.equal(got.headers[c.header], c.expected);
        for (const other of ["authorization", "x-api-key", "x-escalation-token"].filter(
          (h) => h !== c.header,
        )) {
          assert.equal(got.headers[other], undefined, `${other} must not be sent`);
        }
      }
      const row = await waitFor("delivered status", async () => {
        const d = await deliveryRow(stack.rt.database.db, alert.id);
        return d?.status === "delivered" ? d : undefined;
      });
      assert.equal(row.attemptCount, 1);
      assert.equal(r.requests.length, 1);
    });
  }

  test("500, 500, 200: three attempts with the same key and bytes, then delivered", async () => {
    const r = await receiver({
      behaviour: (_req, res, n) => {
        res.writeHead(n < 2 ? 500 : 200).end(n < 2 ? "boom" : "ok");
      },
    });
    const wh = await stack.webhook({
      url: r.url,
      events: ["*"],
      auth: { type: "bearer", credential: "t-500" },
    });
    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    const row = await waitFor("delivered", async () => {
      const d = await deliveryRow(stack.rt.database.db, alert.id);
      return d?.status === "delivered" ? d : undefined;
    });
    assert.equal(r.requests.length, 3);
    assert.equal(new Set(r.requests.map((q) => q.headers["idempotency-key"])).size, 1);
    assert.equal(new Set(r.requests.map((q) => q.body)).size, 1);
    assert.equal(r.requests[0]?.body, alert.body);
    assert.equal(row.attemptCount, 3);
    const attempts = await attemptRows(stack.rt.database.db, alert.id);
    assert.deepEqual(
      attempts.map((a) => [a.attemptNumber, a.httpStatus]),
      [
        [1, 500],
        [2, 500],
        [3, 200],
      ],
    );
    assert.equal(attempts[0]?.responseExcerpt, "boom");
  });

  test("a 302 is a failed attempt and the redirect target receives nothing", async () => {
    const target = await receiver();
    const r = await receiver({
      behaviour: (_req, res) => {
        res.writeHead(302, { location: target.url }).end();
      },
    });
    const wh = await stack.webhook({ url: r.url, events: ["*"] });
    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    const attempts = await waitFor("first attempt", async () => {
      const a = await attemptRows(stack.rt.database.db, alert.id);
      return a.length >= 1 ? a : undefined;
    });
    assert.equal(attempts[0]?.httpStatus, 302);
    const d = await deliveryRow(stack.rt.database.db, alert.id);
    assert.notEqual(d?.status, "delivered");
    assert.equal(target.requests.length, 0);
  });

  test("attempts exhausted: failed, with every attempt recorded", async () => {
    const r = await receiver({
      behaviour: (_req, res) => {
        res.writeHead(503).end("down");
      },
    });
    const wh = await stack.webhook({ url: r.url, events: ["*"] });
    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    const row = await waitFor("failed", async () => {
      const d = await deliveryRow(stack.rt.database.db, alert.id);
      return d?.status === "failed" ? d : undefined;
    });
    // DELIVERY_RETRY_SCHEDULE is 1,1,1 in tests: four attempts in all.
    assert.equal(row.attemptCount, 4);
    assert.equal(r.requests.length, 4);
    const attempts = await attemptRows(stack.rt.database.db, alert.id);
    assert.deepEqual(
      attempts.map((a) => a.httpStatus),
      [503, 503, 503, 503],
    );
  });

  test("connection refused is a failed attempt with error kind 'refused'", async () => {
    const r = await receiver();
    const url = r.url;
    await r.close();
    receivers.splice(receivers.indexOf(r), 1);
    const wh = await stack.webhook({ url, events: ["*"] });
    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    const attempts = await waitFor("first attempt", async () => {
      const a = await attemptRows(stack.rt.database.db, alert.id);
      return a.length >= 1 ? a : undefined;
    });
    assert.equal(attempts[0]?.errorKind, "refused");
    assert.equal(attempts[0]?.httpStatus, null);
  });
});
