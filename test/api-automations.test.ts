import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { automationWebhooks, feedbackIntegrations } from "../src/db/schema.ts";
import { newId } from "../src/ids.ts";
import { hashToken } from "../src/orgs.ts";
import { type ApiStack, assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";

const AUT = "/api/automations";

describe("admin API: automations", () => {
  let s: ApiStack;
  let webhookIds: string[];
  let integrationId: string;
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: false });
    webhookIds = [];
    for (let i = 0; i < 2; i++) {
      const res = await s.api.post("/api/integrations/webhooks", {
        url: `https://127.0.0.1:9/h${i}`,
        events: ["*"],
      });
      webhookIds.push(res.json.id);
    }
    integrationId = newId("fbi");
    await s.stack.rt.database.db.insert(feedbackIntegrations).values({
      id: integrationId,
      orgId: s.stack.org.id,
      displayName: "Zendesk",
      keyHash: hashToken(`fbk_${integrationId}`),
    });
  });
  after(async () => {
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  const valid = () => ({
    name: "Angry enterprise customers",
    active: true,
    filter: {
      integration_ids: [integrationId],
      types: ["CONVERSATION", "REVIEW"],
      metadata: [
        { field: "plan", op: "eq", value: "enterprise" },
        { field: "region", op: "in", value: ["eu", "us"] },
        { field: "arr", op: "gte", value: 50000 },
        { field: "churn_risk", op: "exists" },
        { field: "vip", op: "neq", value: false },
      ],
    },
    trigger: {
      min_escalation_level: "high",
      min_emotional_intensity_level: "medium",
      require_sentiment_degraded: true,
    },
    webhook_ids: [webhookIds[1], webhookIds[0]],
  });

  test("create, list, get, patch and delete", async () => {
    const created = await s.api.post(AUT, valid());
    assert.equal(created.status, 201, created.text);
    const a = created.json;
    assert.match(a.id, /^aut_[a-z0-9]{20}$/);
    assert.deepEqual(Object.keys(a).sort(), [
      "active",
      "created_at",
      "destination_ids",
      "filter",
      "id",
      "last_fired_at",
      "name",
      "trigger",
      "updated_at",
      "webhook_ids",
    ]);
    assert.equal(a.last_fired_at, null, "it has not fired yet");
    const v = valid();
    assert.equal(a.name, v.name);
    assert.equal(a.active, true);
    assert.deepEqual(a.filter, v.filter);
    assert.deepEqual(a.trigger, v.trigger);
    assert.deepEqual(a.webhook_ids, [...webhookIds].sort());

    const list = await s.api.get(AUT);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.json.data.find((x: { id: string }) => x.id === a.id),
      a,
    );
    assert.deepEqual((await s.api.get(`${AUT}/${a.id}`)).json, a);

    const patched = await s.api.patch(`${AUT}/${a.id}`, {
      active: false,
      trigger: { min_escalation_level: "extreme" },
      webhook_ids: [webhookIds[0]],
    });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.active, false);
    assert.equal(patched.json.name, v.name);
    assert.deepEqual(patched.json.filter, v.filter, "filter untouched");
    assert.deepEqual(patched.json.trigger, { min_escalation_level: "extreme" });
    assert.deepEqual(patched.json.webhook_ids, [webhookIds[0]]);
    const links = await s.stack.rt.database.db
      .select()
      .from(automationWebhooks)
      .where(eq(automationWebhooks.automationId, a.id));
    assert.deepEqual(
      links.map((l) => l.webhookId),
      [webhookIds[0]],
    );

    const minimal = await s.api.post(AUT, {
      name: "min",
      trigger: { min_escalation_level: "low" },
      webhook_ids: [],
    });
    assert.equal(minimal.status, 201, minimal.text);
    assert.equal(minimal.json.active, true);
    assert.deepEqual(minimal.json.filter, {});
    assert.deepEqual(minimal.json.webhook_ids, []);

    assert.equal((await s.api.delete(`${AUT}/${a.id}`)).status, 204);
    assertApiError(await s.api.get(`${AUT}/${a.id}`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.delete(`${AUT}/${a.id}`), 404, "ErrCodeNotFound");
    assertApiError(await s.api.patch(`${AUT}/${a.id}`, { active: true }), 404, "ErrCodeNotFound");
  });

  test("deleting a destination removes it from automations", async () => {
    const extra = await s.api.post("/api/integrations/webhooks", {
      url: "https://127.0.0.1:9/x",
      events: ["*"],
    });
    const a = await s.api.post(AUT, { ...valid(), webhook_ids: [extra.json.id, webhookIds[0]] });
    assert.equal(a.status, 201);
    await s.api.delete(`/api/integrations/webhooks/${extra.json.id}`);
    assert.deepEqual((await s.api.get(`${AUT}/${a.json.id}`)).json.webhook_ids, [webhookIds[0]]);
  });

  type Case = [string, (b: ReturnType<typeof valid>) => unknown, string, string];
  const invalid: Case[] = [
    ["missing name", ({ name: _, ...b }) => b, "ErrCodeMissingRequiredField", "body.name: required"],
    ["blank name", (b) => ({ ...b, name: "  " }), "ErrCodeInvalidFieldFormat", "body.name"],
    ["missing trigger", ({ trigger: _, ...b }) => b, "ErrCodeMissingRequiredField", "body.trigger: required"],
    [
      "missing min_escalation_level",
      (b) => ({ ...b, trigger: {} }),
      "ErrCodeMissingRequiredField",
      "body.trigger.min_escalation_level: required",
    ],
    [
      "level none",
      (b) => ({ ...b, trigger: { min_escalation_level: "none" } }),
      "ErrCodeInvalidFieldFormat",
      "body.trigger.min_escalation_level",
    ],
    [
      "bad intensity",
      (b) => ({ ...b, trigger: { min_escalation_level: "low", min_emotional_intensity_level: "HIGH" } }),
      "ErrCodeInvalidFieldFormat",
      "body.trigger.min_emotional_intensity_level",
    ],
    [
      "sentiment as string",
      (b) => ({ ...b, trigger: { min_escalation_level: "low", require_sentiment_degraded: "yes" } }),
      "ErrCodeInvalidFieldFormat",
      "body.trigger.require_sentiment_degraded",
    ],
    ["active as number", (b) => ({ ...b, active: 1 }), "ErrCodeInvalidFieldFormat", "body.active"],
    [
      "missing destination_ids and webhook_ids",
      ({ webhook_ids: _, ...b }) => b,
      "ErrCodeMissingRequiredField",
      "body.destination_ids",
    ],
    [
      "unknown webhook id",
      (b) => ({ ...b, webhook_ids: [b.webhook_ids[0], "whe_doesnotexist"] }),
      "ErrCodeInvalidFieldFormat",
      "body.webhook_ids[1]",
    ],
    [
      "duplicate webhook ids",
      (b) => ({ ...b, webhook_ids: [b.webhook_ids[0], b.webhook_ids[0]] }),
      "ErrCodeInvalidFieldFormat",
      "body.webhook_ids",
    ],
    [
      "unknown integration",
      (b) => ({ ...b, filter: { integration_ids: ["fbi_nope"] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.integration_ids[0]",
    ],
    [
      "empty integration list",
      (b) => ({ ...b, filter: { integration_ids: [] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.integration_ids",
    ],
    [
      "unknown record type",
      (b) => ({ ...b, filter: { types: ["EMAIL"] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.types[0]",
    ],
    [
      "unknown filter field",
      (b) => ({ ...b, filter: { sources: ["x"] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.sources: unknown field",
    ],
    [
      "unknown op",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "like", value: "x" }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].op",
    ],
    [
      "missing field",
      (b) => ({ ...b, filter: { metadata: [{ op: "exists" }] } }),
      "ErrCodeMissingRequiredField",
      "body.filter.metadata[0].field",
    ],
    [
      "in with scalar",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "in", value: "x" }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value: must be a non-empty list when op is in",
    ],
    [
      "in with empty list",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "in", value: [] }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value",
    ],
    [
      "in without value",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "in" }] } }),
      "ErrCodeMissingRequiredField",
      "body.filter.metadata[0].value: required when op is in",
    ],
    [
      "gt with string",
      (b) => ({
        ...b,
        filter: {
          metadata: [
            { field: "a", op: "eq", value: 1 },
            { field: "b", op: "gt", value: "5" },
          ],
        },
      }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[1].value: must be a number when op is gt",
    ],
    [
      "lte without value",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "lte" }] } }),
      "ErrCodeMissingRequiredField",
      "body.filter.metadata[0].value",
    ],
    [
      "exists with value",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "exists", value: true }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value: not allowed when op is exists",
    ],
    [
      "eq with list",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "eq", value: ["x"] }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value",
    ],
    [
      "eq with object",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "eq", value: { x: 1 } }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value",
    ],
    [
      "eq with null",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "eq", value: null }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value",
    ],
    [
      "unknown condition key",
      (b) => ({ ...b, filter: { metadata: [{ field: "a", op: "exists", negate: true }] } }),
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].negate: unknown field",
    ],
    [
      "unknown top-level field",
      (b) => ({ ...b, org_id: "org_x" }),
      "ErrCodeInvalidFieldFormat",
      "body.org_id",
    ],
  ];

  for (const [name, make, code, field] of invalid) {
    test(`create refuses: ${name}`, async () => {
      assertApiError(await s.api.post(AUT, make(valid())), 400, code, field);
    });
  }

  test("PATCH validates the same way and changes nothing when refused", async () => {
    const a = (await s.api.post(AUT, valid())).json;
    assertApiError(
      await s.api.patch(`${AUT}/${a.id}`, { name: "new", webhook_ids: ["whe_nope"] }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.webhook_ids[0]",
    );
    assertApiError(
      await s.api.patch(`${AUT}/${a.id}`, { filter: { metadata: [{ field: "x", op: "gte", value: [1] }] } }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.filter.metadata[0].value",
    );
    assertApiError(await s.api.patch(`${AUT}/${a.id}`, { trigger: {} }), 400, "ErrCodeMissingRequiredField");
    assertApiError(
      await s.api.patch(`${AUT}/${a.id}`, { id: "aut_x" }),
      400,
      "ErrCodeInvalidFieldFormat",
      "body.id",
    );
    assert.deepEqual((await s.api.get(`${AUT}/${a.id}`)).json, a);
  });
});
