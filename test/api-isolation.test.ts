import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type ApiClient,
  type ApiResponse,
  type ApiStack,
  secondOrganization,
  startApiStack,
} from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";

describe("admin API: organizations are isolated", () => {
  let s: ApiStack;
  let r: Receiver;
  let b: ApiClient;
  const a: Record<string, string> = {};
  const baseline = handleBaseline();

  before(async () => {
    s = await startApiStack();
    r = await startReceiver();
    const orgB = await secondOrganization(s.stack, `b-${s.stack.org.slug}`.slice(0, 60));
    b = s.api.as(orgB.adminApiKey);

    const wh = await s.api.post(WH, {
      url: r.url,
      events: ["*"],
      description: "org-a-private-description",
      auth: { type: "custom_header", header_name: "X-Org-A-Header", credential: "org-a-credential" },
    });
    assert.equal(wh.status, 201, wh.text);
    a.webhook = wh.json.id;
    a.secret = wh.json.secret;
    a.url = r.url;
    const sent = await s.api.post(`${WH}/${a.webhook}/test`, { event: "escalation.alert" });
    a.delivery = sent.json.delivery_id;
    await waitFor("org A delivery", () => r.requests[0]);
    a.idempotencyKey = String(r.requests[0]?.headers["idempotency-key"]);
    const aut = await s.api.post("/api/automations", {
      name: "org-a-automation-name",
      trigger: { min_escalation_level: "high" },
      webhook_ids: [a.webhook],
    });
    assert.equal(aut.status, 201, aut.text);
    a.automation = aut.json.id;
    const key = await s.api.post("/api/keys", { name: "org-a-key-name" });
    a.key = key.json.id;
  });
  after(async () => {
    await r.close();
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  /** Nothing of organization A in an answer to B: not its ids, names, URL, slug, secrets or keys. */
  function assertLeaksNothing(res: ApiResponse, what: string): void {
    const needles = [
      ...Object.values(a),
      s.stack.org.slug,
      s.stack.org.id,
      "org-a-private-description",
      "org-a-automation-name",
      "org-a-key-name",
      "org-a-credential",
      "X-Org-A-Header",
    ];
    for (const n of needles) assert.ok(!res.text.includes(n), `${what} leaks ${n}: ${res.text}`);
  }

  test("org B gets 404 for every endpoint with org A's ids, and learns nothing", async () => {
    const calls: [string, string, unknown?][] = [
      ["GET", `${WH}/${a.webhook}`],
      ["PATCH", `${WH}/${a.webhook}`, { enabled: false }],
      ["PATCH", `${WH}/${a.webhook}`, { auth: { type: "bearer", credential: "hijack" } }],
      ["DELETE", `${WH}/${a.webhook}`],
      ["POST", `${WH}/${a.webhook}/rotate-secret`],
      ["POST", `${WH}/${a.webhook}/test`, { event: "test.webhook" }],
      ["GET", `${WH}/${a.webhook}/deliveries`],
      ["GET", `${WH}/${a.webhook}/deliveries?status=delivered&page=1&per_page=5`],
      ["GET", `${WH}/${a.webhook}/deliveries/${a.delivery}`],
      ["POST", `${WH}/${a.webhook}/deliveries/${a.delivery}/retry`],
      ["GET", `/api/automations/${a.automation}`],
      ["PATCH", `/api/automations/${a.automation}`, { active: false }],
      ["DELETE", `/api/automations/${a.automation}`],
      ["DELETE", `/api/keys/${a.key}`],
    ];
    for (const [method, path, body] of calls) {
      const res = await b.request(method, path, body === undefined ? {} : { body });
      assert.equal(res.status, 404, `${method} ${path}: ${res.status} ${res.text}`);
      assert.equal(res.json.code, "ErrCodeNotFound");
      assertLeaksNothing(res, `${method} ${path}`);
    }
    // A's delivery under one of B's own destinations is not found either.
    const own = await b.post(WH, { url: "https://127.0.0.1:9/b", events: ["*"] });
    for (const [method, path] of [
      ["GET", `${WH}/${own.json.id}/deliveries/${a.delivery}`],
      ["POST", `${WH}/${own.json.id}/deliveries/${a.delivery}/retry`],
    ] as const) {
      const res = await b.request(method, path);
      assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      assertLeaksNothing(res, path);
    }
    // A's destination cannot be wired into B's automation; the answer names the field, not A's data.
    const wired = await b.post("/api/automations", {
      name: "b",
      trigger: { min_escalation_level: "low" },
      webhook_ids: [a.webhook],
    });
    assert.equal(wired.status, 400);
    assert.match(wired.json.msg, /body\.webhook_ids\[0\]/);
    assertLeaksNothing(wired, "automation with A's webhook");
  });

  test("org B's lists show none of org A's resources", async () => {
    for (const path of [WH, "/api/automations", "/api/keys"]) {
      const res = await b.get(path);
      assert.equal(res.status, 200);
      assertLeaksNothing(res, path);
    }
  });

  test("org A's resources are untouched by org B's calls", async () => {
    const wh = await s.api.get(`${WH}/${a.webhook}`);
    assert.equal(wh.status, 200);
    assert.equal(wh.json.enabled, true);
    assert.deepEqual(wh.json.auth, {
      type: "custom_header",
      header_name: "X-Org-A-Header",
      credential_set: true,
    });
    const aut = await s.api.get(`/api/automations/${a.automation}`);
    assert.equal(aut.json.active, true);
    const d = await s.api.get(`${WH}/${a.webhook}/deliveries/${a.delivery}`);
    assert.equal(d.status, 200);
    assert.equal(d.json.attempts.length, 1, "B's retry did not run");
    assert.equal(r.requests.length, 1);
    assert.equal(r.requests[0]?.headers["x-org-a-header"], "org-a-credential");
    const keys = await s.api.get("/api/keys");
    assert.ok(
      keys.json.data.some((k: { id: string }) => k.id === a.key),
      "B could not revoke A's key",
    );
  });
});
