/**
 * Delivery history pages at any depth: `cursor` pages are stable while new deliveries arrive (none
 * repeated, none skipped), `page` still works, totals are exact up to 10,000, and a bad cursor is a 400
 * naming the field. Real Postgres, Redis and the HTTP API.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { sql } from "drizzle-orm";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertApiError, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";

const WH = "/api/integrations/webhooks";

describe("delivery history paging", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("cursor pages are stable while deliveries arrive; page numbers and totals still work", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const wh = await s.stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      const first = await enqueueAlerts(s.stack, wh.id, 45);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const q: string = cursor ? `&cursor=${cursor}` : "";
        const res = await s.api.get(`${WH}/${wh.id}/deliveries?per_page=10${q}`);
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.total, pages === 0 ? 45 : 45 + 5 * pages);
        assert.equal(res.json.total_estimated, undefined);
        seen.push(...res.json.data.map((d: { id: string }) => d.id));
        cursor = res.json.next_cursor;
        pages++;
        // New deliveries arrive between pages: they are newer, so they never push rows into a later page.
        await enqueueAlerts(s.stack, wh.id, 5);
      } while (cursor !== null);
      assert.equal(pages, 5);
      assert.equal(new Set(seen).size, seen.length, "no delivery twice");
      assert.deepEqual([...seen].sort(), first.map((a) => a.id).sort(), "every delivery of the start, once");

      const byNumber = await s.api.get(`${WH}/${wh.id}/deliveries?per_page=10&page=2`);
      assert.equal(byNumber.status, 200);
      assert.equal(byNumber.json.data.length, 10);
      assert.equal(typeof byNumber.json.next_cursor, "string");

      assertApiError(
        await s.api.get(`${WH}/${wh.id}/deliveries?cursor=not-a-cursor`),
        400,
        "ErrCodeInvalidFieldFormat",
        "query.cursor",
      );
      const forged = Buffer.from(JSON.stringify({ t: "'; drop table deliveries; --", i: "del_x" })).toString(
        "base64url",
      );
      assertApiError(
        await s.api.get(`${WH}/${wh.id}/deliveries?cursor=${forged}`),
        400,
        "ErrCodeInvalidFieldFormat",
        "query.cursor",
      );
      assertApiError(
        await s.api.get(`${WH}/${wh.id}/deliveries?cursor=${byNumber.json.next_cursor}&page=2`),
        400,
        "ErrCodeInvalidFieldFormat",
        "query.cursor",
      );
    } finally {
      await s.close();
    }
  });

  test("past 10,000 matching deliveries the total is an estimate, and says so", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const db = s.stack.rt.database.db;
      const wh = await s.stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      await db.execute(sql`insert into deliveries (id, org_id, webhook_id, event_type, idempotency_key, payload, status, max_attempts)
        select 'del_bulk' || g, ${s.stack.org.id}, ${wh.id}, 'escalation.alert', 'bulk:' || g, '{}', 'delivered', 8
        from generate_series(1, 12000) g`);
      await db.execute(sql`analyze deliveries`);
      const res = await s.api.get(`${WH}/${wh.id}/deliveries?per_page=5`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.total_estimated, true);
      assert.ok(res.json.total > 10_000 && res.json.total < 20_000, `estimate ${res.json.total}`);
      const exact = await s.api.get(`${WH}/${wh.id}/deliveries?per_page=5&status=pending`);
      assert.equal(exact.json.total, 0);
      assert.equal(exact.json.total_estimated, undefined);
    } finally {
      await s.close();
    }
  });
});
