import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { and, eq, inArray } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { recordId } from "../src/ingestion/store.ts";
import { type ApiStack, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const nowS = () => Math.floor(Date.now() / 1000) - 30;

const ANGRY =
  "Third time I'm writing about the double charge on order 4471. Nobody answers. Refund me by Friday or I will file a chargeback and my lawyer will take this to small claims court.";
const PRAISE = "Honestly the best support team I have dealt with. Fast, friendly and the app just works.";

function review(
  id: string,
  text: string,
  metadata: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  return { id, fileID: "reviews", type: "REVIEW", createdAt: nowS(), text, metadata, ...extra };
}

describe("feedback in, alerts out", { concurrency: true }, () => {
  let s: ApiStack;
  const receivers: Receiver[] = [];
  const baseline = handleBaseline();
  before(async () => {
    s = await startApiStack({ worker: "all" });
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await s.close();
    await assertNoOpenHandles(baseline);
  });

  /** A test's own integration, receiver and destination, so automations of other tests never see its records. */
  async function setup(options: { mutable?: boolean; enabled?: boolean } = {}) {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const integration = await s.api.post("/api/integrations/feedback", {
      display_name: "ZendeskSupport",
      data_mutability: options.mutable ?? false,
    });
    assert.equal(integration.status, 201, integration.text);
    const destination = await s.api.post("/api/integrations/webhooks", {
      url: receiver.url,
      events: ["escalation.alert"],
      enabled: options.enabled ?? true,
      auth: { type: "bearer", credential: "receiver-token" },
    });
    assert.equal(destination.status, 201, destination.text);
    // Automations of concurrent tests are created at any time; only this test's own must have judged a record.
    const mine: string[] = [];
    const automation = async (body: Record<string, unknown>) => {
      const filter = { integration_ids: [integration.json.id], ...((body.filter as object) ?? {}) };
      const res = await s.api.post("/api/automations", {
        name: "escalations",
        active: true,
        trigger: { min_escalation_level: "high" },
        webhook_ids: [destination.json.id],
        ...body,
        filter,
      });
      assert.equal(res.status, 201, res.text);
      mine.push(res.json.id);
      return res.json.id as string;
    };
    const ingest = async (recs: unknown[]) => {
      const res = await s.api.request("POST", "/webhook/custom/all", {
        token: null,
        headers: { "api-key": integration.json.api_key },
        body: { records: recs },
      });
      assert.equal(res.status, 200, res.text);
      return res.json;
    };
    const rid = (external: string) => recordId(integration.json.id, external);
    /** Waits until every listed record's current version has been evaluated. */
    const evaluated = async (externals: string[], version = 1) => {
      for (const e of externals) {
        await waitFor(`evaluation of ${e}`, async () => {
          const v = await s.api.get(`/api/records/${rid(e)}`);
          const own = (v.json?.automations ?? []).filter((a: { automation_id: string }) =>
            mine.includes(a.automation_id),
          );
          return v.json?.analysis &&
            v.json.version === version &&
            own.length === mine.length &&
            own.every((a: { record_version: number | null }) => a.record_version === version)
            ? v.json
            : undefined;
        });
      }
    };
    /** Waits until every delivery of this destination is settled, then returns what the receiver got. */
    const settled = async () => {
      await waitFor("deliveries settled", async () => {
        const rows = await s.stack.rt.database.db
          .select({ status: deliveries.status })
          .from(deliveries)
          .where(eq(deliveries.webhookId, destination.json.id));
        return (
          rows.every((r) => r.status === "delivered" || r.status === "held") &&
          receiver.requests.length >= rows.filter((r) => r.status === "delivered").length
        );
      });
      return receiver.requests;
    };
    return {
      receiver,
      integration: integration.json,
      destination: destination.json,
      automation,
      ingest,
      rid,
      evaluated,
      settled,
    };
  }

  test("an escalating review fires exactly one alert with the contract's payload; praise fires none", async () => {
    const t = await setup();
    const automationId = await t.automation({});
    const createdAt = nowS();
    await t.ingest([
      review("angry-1", ANGRY, {}, { createdAt, sourceURL: "https://support.example.com/tickets/4471" }),
      review("praise-1", PRAISE),
    ]);
    await t.evaluated(["angry-1", "praise-1"]);
    const got = await t.settled();
    assert.equal(got.length, 1);
    const [alert] = got;
    assert.ok(alert);
    assert.equal(alert.headers["idempotency-key"], `${automationId}:${t.destination.id}:${t.rid("angry-1")}`);
    assert.equal(alert.headers.authorization, "Bearer receiver-token");
    const body = JSON.parse(alert.body);
    assert.deepEqual(Object.keys(body), ["automation_id", "org_id", "escalated_at", "levels", "record"]);
    assert.equal(body.automation_id, automationId);
    assert.equal(body.org_id, s.stack.org.slug);
    assert.ok(["high", "extreme"].includes(body.levels.escalation_level), body.levels.escalation_level);
    assert.ok(["low", "medium", "high", "extreme"].includes(body.levels.emotional_intensity_level));
    assert.equal(body.levels.sentiment_shift, null);
    assert.deepEqual(body.record, {
      id: t.rid("angry-1"),
      url: `${s.stack.config.publicUrl}/${s.stack.org.slug}/record/${t.rid("angry-1")}`,
      source_url: "https://support.example.com/tickets/4471",
      content_excerpt: ANGRY,
      created_at: new Date(createdAt * 1000).toISOString(),
      source: "ZendeskSupport",
    });
    assert.ok(Date.parse(body.escalated_at) > 0);
    const why = await s.api.get(`/api/records/${t.rid("praise-1")}`);
    assert.equal(
      why.json.automations.find((a: { automation_id: string }) => a.automation_id === automationId).fired,
      false,
    );
    assert.match(
      why.json.automations.find((a: { automation_id: string }) => a.automation_id === automationId).reason,
      /below high/,
    );
  });

  test("filters that exclude: record types and metadata conditions", async () => {
    const t = await setup();
    await t.automation({ filter: { types: ["SURVEY"] } });
    const enterprise = await t.automation({
      filter: { metadata: [{ field: "plan", op: "eq", value: "Enterprise" }] },
    });
    await t.ingest([
      review("ent-1", ANGRY, { plan: { array: { s: ["Enterprise"] } } }),
      review("free-1", ANGRY, { plan: { array: { s: ["Free"] } } }),
      review("none-1", ANGRY),
    ]);
    await t.evaluated(["ent-1", "free-1", "none-1"]);
    const got = await t.settled();
    assert.deepEqual(
      got.map((r) => r.headers["idempotency-key"]),
      [`${enterprise}:${t.destination.id}:${t.rid("ent-1")}`],
    );
    const why = await s.api.get(`/api/records/${t.rid("free-1")}`);
    const reasons = why.json.automations.map((a: { reason: string }) => a.reason).join(" | ");
    assert.match(reasons, /type REVIEW is not one of/);
    assert.match(reasons, /metadata plan eq "Enterprise" does not hold/);
  });

  test("an inactive automation fires nothing", async () => {
    const t = await setup();
    const inactive = await t.automation({ active: false });
    await t.ingest([review("inactive-1", ANGRY)]);
    await t.evaluated(["inactive-1"]);
    assert.equal((await t.settled()).length, 0);
    const why = await s.api.get(`/api/records/${t.rid("inactive-1")}`);
    const verdict = why.json.automations.find((a: { automation_id: string }) => a.automation_id === inactive);
    assert.equal(verdict.fired, false);
    assert.match(verdict.reason, /inactive/);
  });

  test("a disabled destination gets its alert held, and enabling it releases the alert", async () => {
    const t = await setup({ enabled: false });
    await t.automation({});
    await t.ingest([review("held-1", ANGRY)]);
    await t.evaluated(["held-1"]);
    const rows = await waitFor("a held delivery", async () => {
      const r = await s.stack.rt.database.db
        .select()
        .from(deliveries)
        .where(eq(deliveries.webhookId, t.destination.id));
      return r.length === 1 && r[0]?.status === "held" ? r : undefined;
    });
    assert.equal(rows.length, 1);
    assert.equal(t.receiver.requests.length, 0);
    const enabled = await s.api.patch(`/api/integrations/webhooks/${t.destination.id}`, { enabled: true });
    assert.equal(enabled.status, 200, enabled.text);
    await waitFor("the released alert", () => t.receiver.requests.length === 1);
  });

  test("two automations on one record: two alerts, one per automation", async () => {
    const t = await setup();
    const a1 = await t.automation({ name: "first" });
    const a2 = await t.automation({ name: "second", trigger: { min_escalation_level: "medium" } });
    await t.ingest([review("two-1", ANGRY)]);
    await t.evaluated(["two-1"]);
    await waitFor("two alerts", () => t.receiver.requests.length === 2);
    const keys = t.receiver.requests.map((r) => r.headers["idempotency-key"]).sort();
    assert.deepEqual(
      keys,
      [`${a1}:${t.destination.id}:${t.rid("two-1")}`, `${a2}:${t.destination.id}:${t.rid("two-1")}`].sort(),
    );
  });

  test("a conversation updated into escalation fires then, once; a resend fires nothing more", async () => {
    const t = await setup({ mutable: true });
    const automationId = await t.automation({});
    const calm = [
      { actor: "user", text: "Hi, the CSV export from the reports page seems slow today." },
      { actor: "agent", text: "Thanks for flagging, we are looking into it." },
    ];
    const conversation = (msgs: unknown[]) => ({
      id: "conv-1",
      fileID: "chat",
      type: "CONVERSATION",
      createdAt: nowS(),
      conversation: { msgs },
      metadata: {},
    });
    await t.ingest([conversation(calm)]);
    await t.evaluated(["conv-1"], 1);
    assert.equal((await t.settled()).length, 0);

    const turned = [
      ...calm,
      {
        actor: "user",
        text: "It has now failed for three days and we missed our board deadline because of it.",
      },
      {
        actor: "user",
        text: "This is unacceptable. Escalate this to a manager today or we cancel the contract, demand a full refund and talk to our lawyers.",
      },
    ];
    await t.ingest([conversation(turned)]);
    await t.evaluated(["conv-1"], 2);
    await waitFor("the alert", () => t.receiver.requests.length === 1);
    const body = JSON.parse(t.receiver.requests[0]?.body ?? "{}");
    assert.equal(body.levels.sentiment_shift, "sentiment degraded");
    assert.match(body.record.content_excerpt, /manager/);

    // Replaced again: evaluated again, but the alert for this automation, destination and record exists.
    await t.ingest([
      conversation([...turned, { actor: "agent", text: "A manager will call you within the hour." }]),
    ]);
    await t.evaluated(["conv-1"], 3);
    await t.settled();
    assert.equal(t.receiver.requests.length, 1);
    const rows = await s.stack.rt.database.db
      .select({ id: deliveries.id })
      .from(deliveries)
      .where(
        and(eq(deliveries.webhookId, t.destination.id), inArray(deliveries.automationId, [automationId])),
      );
    assert.equal(rows.length, 1);
  });
});
