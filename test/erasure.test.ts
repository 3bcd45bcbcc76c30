/**
 * Deletion on request: `DELETE /api/records/:id` and `escalation-shield org delete <slug>` leave nothing of
 * theirs in any table (every table of the schema is scanned for the ids), and touch nothing of another
 * organization's. Real Postgres, Redis, API, workers and the evaluator; the CLI as a real process.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { sql } from "drizzle-orm";
import type { Db } from "../src/db/client.ts";
import { recordId } from "../src/ingestion/store.ts";
import { type ApiClient, type ApiStack, secondOrganization, startApiStack } from "./helpers/api.ts";
import { alertingSetup } from "./helpers/feedback.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { runCli } from "./helpers/processes.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const ANGRY =
  "Third time I'm writing about the double charge on order 4471. Nobody answers. Refund me by Friday or I will file a chargeback and my lawyer will take this to small claims court.";

/** How many rows of every table of the schema mention `needle` anywhere in their text form. */
async function mentions(db: Db, needle: string): Promise<Record<string, number>> {
  const tables = await db.execute<{ table_name: string }>(
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
  );
  const found: Record<string, number> = {};
  for (const { table_name } of tables) {
    if (table_name.startsWith("__drizzle")) continue;
    const [row] = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from ${sql.identifier(table_name)} t where t::text like ${`%${needle}%`}`,
    );
    if ((row?.n ?? 0) > 0) found[table_name] = row?.n ?? 0;
  }
  return found;
}

/** An integration, a destination, an automation that fires, and `count` angry records delivered to it. */
async function seed(s: ApiStack, api: ApiClient, url: string, count: number) {
  const { integrationId, webhookId, ingest } = await alertingSetup(api, url);
  const now = Math.floor(Date.now() / 1000) - 30;
  await ingest(
    Array.from({ length: count }, (_, i) => ({
      id: `r-${i}`,
      fileID: "reviews",
      type: "REVIEW",
      createdAt: now,
      text: ANGRY,
      metadata: {},
    })),
  );
  const ids = Array.from({ length: count }, (_, i) => recordId(integrationId, `r-${i}`));
  const db = s.stack.rt.database.db;
  await waitFor(
    "every record alerted and delivered",
    async () => {
      const [row] = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from deliveries where record_id in ${ids} and status = 'delivered'`,
      );
      return row?.n === count;
    },
    30_000,
    100,
  );
  return { ids, integrationId, webhookId };
}

describe("deletion on request", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("DELETE /api/records/:id and org delete leave nothing of theirs in any table, and nothing else goes", async () => {
    const s = await startApiStack({ worker: "all" });
    const r = await startReceiver();
    try {
      const db = s.stack.rt.database.db;
      const second = await secondOrganization(s.stack, `other-${s.stack.org.slug}`);
      const other = { api: s.api.as(second.adminApiKey) };
      const mine = await seed(s, s.api, r.url, 3);
      const theirs = await seed(s, other.api, r.url, 2);
      const [gone, kept] = mine.ids as [string, string];

      // Another organization's id is not found, and nothing of it goes.
      assert.equal((await other.api.delete(`/api/records/${gone}`)).status, 404);
      assert.ok(Object.keys(await mentions(db, gone)).length > 0);

      const del = await s.api.delete(`/api/records/${gone}`);
      assert.equal(del.status, 204, del.text);
      // The audit log keeps that it was deleted, and when, by its id alone: nothing of its content.
      assert.deepEqual(
        await mentions(db, gone),
        { audit_events: 1 },
        "nothing of the deleted record is left",
      );
      const [deletion] = await db.execute<{ action: string; changes: unknown }>(
        sql`select action, changes from audit_events where target_id = ${gone}`,
      );
      assert.deepEqual(deletion, {
        action: "record.deleted",
        changes: { before: { id: gone }, after: null },
      });
      assert.equal((await s.api.get(`/api/records/${gone}`)).status, 404);
      assert.equal((await s.api.get(`/api/records/${kept}`)).status, 200, "the record's neighbours stay");
      assert.equal((await s.api.delete(`/api/records/${gone}`)).status, 404);

      // The whole organization, through the CLI, in batches.
      const out = await runCli(["org", "delete", s.stack.org.slug], s.stack.env);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout).deleted, { deliveries: 2, records: 2 });
      for (const needle of [s.stack.org.id, mine.integrationId, mine.webhookId, ...mine.ids]) {
        assert.deepEqual(await mentions(db, needle), {}, `nothing of ${needle} is left`);
      }
      assert.equal((await s.api.get("/api/integrations/webhooks")).status, 401, "its keys went with it");
      // The other organization is whole.
      assert.equal((await other.api.get(`/api/records/${theirs.ids[0]}`)).status, 200);
      assert.equal(
        (await other.api.get(`/api/integrations/webhooks/${theirs.webhookId}/deliveries`)).json.total,
        2,
      );
      const unknown = await runCli(["org", "delete", "no-such-org"], s.stack.env);
      assert.equal(unknown.code, 1);
    } finally {
      await r.close();
      await s.close();
    }
  });
});
