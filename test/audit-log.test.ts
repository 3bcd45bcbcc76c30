/**
 * Scoped keys and the audit log: a read-only key is refused on every write route the API has (the list is
 * read from the OpenAPI document, so a new route is covered by itself) and changes nothing; every change is
 * recorded with who made it, before and after, and no secret; the log pages by cursor, is the
 * organization's own, and is pruned after AUDIT_RETENTION. Real Postgres, Redis, HTTP API and CLI.
 * (Every other API test checks, when its stack closes, that each change it made is in the audit log.)
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq, sql } from "drizzle-orm";
import { apiKeys } from "../src/db/schema.ts";
import { hashToken } from "../src/orgs.ts";
import { Pruner } from "../src/retention/pruner.ts";
import {
  type ApiClient,
  type ApiStack,
  assertApiError,
  secondOrganization,
  startApiStack,
} from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli } from "./helpers/processes.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";

const WH = "/api/integrations/webhooks";
const DAY = 86_400_000;

interface AuditEvent {
  id: string;
  at: string;
  key_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  changes: { before: Record<string, unknown> | null; after: Record<string, unknown> | null };
  reference_id: string | null;
}

/** Every event of the organization's audit log, walked by cursor `perPage` at a time. */
async function wholeLog(api: ApiClient, perPage = 100): Promise<AuditEvent[]> {
  const all: AuditEvent[] = [];
  let cursor: string | null = null;
  do {
    const res = await api.get(`/api/audit-log?per_page=${perPage}${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(res.status, 200, res.text);
    all.push(...res.json.data);
    cursor = res.json.next_cursor;
  } while (cursor);
  return all;
}

describe("scoped keys and the audit log", () => {
  const baseline = handleBaseline();
  let s: ApiStack;
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver();
    s = await startApiStack({
      worker: true,
      env: { SMTP_URL: "smtp://127.0.0.1:9", SMTP_FROM: "a@example.com" },
    });
  });
  after(async () => {
    await s.close();
    await receiver.close();
    await assertNoOpenHandles(baseline);
  });

  test("a read-only key is refused on every write route of the OpenAPI document, and changes nothing", async (t) => {
    const api = s.api;
    const webhook = await api.post(WH, {
      url: receiver.url,
      events: ["*"],
      auth: { type: "bearer", credential: "tok-ro" },
    });
    const slack = await api.post("/api/integrations/slack", {
      webhook_url: `${receiver.url}/slack`,
      events: ["*"],
    });
    const email = await api.post("/api/integrations/email", { to: ["lead@example.com"], events: ["*"] });
    const automation = await api.post("/api/automations", {
      name: "ro",
      destination_ids: [webhook.json.id],
      trigger: { min_escalation_level: "high" },
    });
    const feedback = await api.post("/api/integrations/feedback", { display_name: "RO" });
    const test = await api.post(`${WH}/${webhook.json.id}/test`, { event: "test.webhook" });
    for (const r of [webhook, slack, email, automation, feedback, test]) assert.ok(r.status < 300, r.text);
    const readOnly = await api.post("/api/keys", { scope: "read-only" });
    assert.equal(readOnly.status, 201, readOnly.text);
    assert.deepEqual([readOnly.json.scope, readOnly.json.name], ["read-only", "read-only key"]);
    const ro = api.as(readOnly.json.api_key);

    const ids: Record<string, string> = {
      webhooks: webhook.json.id,
      slack: slack.json.id,
      email: email.json.id,
      automations: automation.json.id,
      feedback: feedback.json.id,
      keys: readOnly.json.id,
      records: "rec_doesnotmatter",
    };
    const doc = (await api.get("/docs/json", { token: null })).json as {
      paths: Record<string, Record<string, unknown>>;
    };
    const writes: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (!path.startsWith("/api/")) continue;
      for (const method of Object.keys(methods)) {
        if (["get", "head", "options"].includes(method)) continue;
        const concrete = path
          .replace("{delivery_id}", test.json.delivery_id)
          .replace(
            /\/([a-z-]+)\/\{id\}/,
            (_m, collection: string) => `/${collection}/${ids[collection] ?? "x_1"}`,
          );
        writes.push(`${method.toUpperCase()} ${concrete}`);
        const res = await ro.request(method.toUpperCase(), concrete, { body: {} });
        assertApiError(res, 403, "ErrCodeForbidden", "read-only");
      }
    }
    assert.ok(writes.length >= 30, `only ${writes.length} write routes found: ${writes.join(", ")}`);
    t.diagnostic(`${writes.length} write routes refused to the read-only key`);
    // A process older than scopes looks keys up by the token's plain SHA-256: it must find none for a
    // read-only token (and answer 401) rather than take it for an admin key during a rolling upgrade.
    assert.match(readOnly.json.api_key, /^esr_/);
    const plain = await s.stack.rt.database.db
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(eq(apiKeys.tokenHash, hashToken(readOnly.json.api_key)));
    assert.deepEqual(plain, []);
    // It reads everything an admin key reads.
    for (const path of ["/api/keys", "/api/audit-log", WH, `${WH}/${webhook.json.id}`, "/api/automations"])
      assert.equal((await ro.get(path)).status, 200, path);
    // Nothing changed, and nothing was recorded for the read-only key.
    assert.equal((await api.get(`${WH}/${webhook.json.id}`)).json.enabled, true);
    assert.equal((await api.get(`/api/automations/${automation.json.id}`)).status, 200);
    assert.equal((await api.get(`/api/integrations/feedback/${feedback.json.id}`)).status, 200);
    const log = await wholeLog(api);
    assert.ok(!log.some((e) => e.key_id === readOnly.json.id), "no change was made with the read-only key");

    // The organization's last admin-scoped key cannot go, however many read-only keys it has.
    const keys = (await api.get("/api/keys")).json.data as { id: string; scope: string }[];
    const admins = keys.filter((k) => k.scope === "admin");
    assert.equal(admins.length, 1);
    assertApiError(await api.delete(`/api/keys/${admins[0]?.id}`), 400, "ErrCodeBadRequest", "admin");
    assert.equal((await api.delete(`/api/keys/${readOnly.json.id}`)).status, 204);
    assertApiError(await ro.get("/api/keys"), 401, "ErrCodeUnauthorized");
  });

  test("every change is recorded with its key, before and after, and no secret; the log pages by cursor and is the organization's own", async () => {
    const org = await secondOrganization(s.stack, `audit-${Date.now().toString(36)}`);
    const api = s.api.as(org.adminApiKey);
    const secrets: string[] = ["tok-first", "tok-second", "hooks-token-xyz"];
    const created = await api.post(WH, {
      url: receiver.url,
      events: ["escalation.alert"],
      auth: { type: "bearer", credential: "tok-first" },
    });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id as string;
    secrets.push(created.json.secret);
    const patched = await api.patch(`${WH}/${id}`, {
      description: "on call",
      auth: { type: "bearer", credential: "tok-second" },
    });
    assert.equal(patched.status, 200, patched.text);
    // Same host, so no credential needed; the new path carries a token, as receivers' URLs often do.
    const moved = await api.patch(`${WH}/${id}`, { url: `${receiver.url}/in?token=url-token-123` });
    assert.equal(moved.status, 200, moved.text);
    secrets.push("url-token-123");
    const rotated = await api.post(`${WH}/${id}/rotate-secret`, { grace_period_seconds: 60 });
    secrets.push(rotated.json.secret);
    assert.equal((await api.post(`${WH}/${id}/signing-key`, {})).status, 201);
    const slack = await api.post("/api/integrations/slack", {
      webhook_url: `${receiver.url}/services/T1/B1/hooks-token-xyz`,
      events: ["*"],
    });
    assert.equal(slack.status, 201, slack.text);
    const feedback = await api.post("/api/integrations/feedback", { display_name: "Zendesk" });
    secrets.push(feedback.json.api_key);
    const newKey = await api.post(`/api/integrations/feedback/${feedback.json.id}/rotate-key`, {});
    secrets.push(newKey.json.api_key);
    const key = await api.post("/api/keys", { name: "terraform" });
    secrets.push(key.json.api_key);
    assert.equal((await api.delete(`/api/keys/${key.json.id}`)).status, 204);
    const since = new Date(Date.now() - 3600_000).toISOString();
    assert.equal((await api.post(`${WH}/${id}/recover`, { since })).status, 202);
    assert.equal((await api.delete(`${WH}/${id}`)).status, 204);

    const log = await wholeLog(api, 2);
    const text = JSON.stringify(log);
    for (const secret of secrets)
      assert.ok(!text.includes(secret), `the audit log holds a secret (${secret.slice(0, 6)}…)`);
    // Newest first, each once.
    assert.equal(new Set(log.map((e) => e.id)).size, log.length);
    const times = log.map((e) => Date.parse(e.at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
    const actions = log.map((e) => e.action).reverse();
    assert.deepEqual(actions, [
      "api_key.created", // the organization's first key
      "webhook.created",
      "webhook.updated",
      "webhook.updated",
      "webhook.secret_rotated",
      "webhook.signing_key_enabled",
      "slack.created",
      "feedback_integration.created",
      "feedback_integration.key_rotated",
      "api_key.created",
      "api_key.revoked",
      "webhook.recovered",
      "webhook.deleted",
    ]);
    const byAction = (a: string) => log.find((e) => e.action === a) as AuditEvent;
    const urlMove = log.find(
      (e) => e.action === "webhook.updated" && e.changes.after?.url_changed,
    ) as AuditEvent;
    assert.equal(urlMove.changes.after?.url, `${new URL(receiver.url).origin}/…`);
    const update = log.findLast((e) => e.action === "webhook.updated") as AuditEvent;
    assert.equal(update.target_id, id);
    assert.equal(update.changes.before?.description, null);
    assert.equal(update.changes.after?.description, "on call");
    assert.equal(update.changes.after?.credential_replaced, true);
    assert.ok(update.reference_id && update.key_id?.startsWith("key_"));
    assert.equal(byAction("webhook.created").changes.before, null);
    assert.equal(byAction("webhook.deleted").changes.after, null);
    assert.equal(byAction("webhook.secret_rotated").changes.after?.grace_period_seconds, 60);
    assert.equal(log.at(-1)?.key_id, null, "the first key came from outside the API");

    // The first organization's log shows none of it.
    const mine = await wholeLog(s.api);
    assert.ok(!mine.some((e) => log.some((o) => o.id === e.id)));
  });

  test("the CLI's key is recorded without a key; AUDIT_RETENTION prunes what is older", async () => {
    const out = await runCli(["org", "key", "create", s.stack.org.slug], s.stack.env);
    assert.equal(out.code, 0, out.stderr);
    const log = await wholeLog(s.api);
    const cli = log.find(
      (e) => e.action === "api_key.created" && e.key_id === null && e.changes.after?.name === "cli",
    );
    assert.ok(cli, "the CLI's key is in the log");
    assert.equal(cli.reference_id, null);

    const db = s.stack.rt.database.db;
    await db.execute(sql`update audit_events set at = now() - interval '400 days' where id = ${cli.id}`);
    const pruner = new Pruner(db, s.stack.rt.log, {
      databaseUrl: s.stack.databaseUrl,
      deliveryRetentionMs: 0,
      recordRetentionMs: 0,
      auditRetentionMs: 365 * DAY,
      intervalMs: 60_000,
    });
    try {
      const done = await pruner.runOnce();
      assert.equal(done.auditEvents, 1);
    } finally {
      await pruner.stop();
    }
    const left = await wholeLog(s.api);
    assert.equal(left.length, log.length - 1);
    assert.ok(!left.some((e) => e.id === cli.id));
  });
});
