/**
 * Every configuration list (webhook destinations, automations, feedback integrations, admin keys) pages like
 * the delivery history: `cursor` pages are stable while items are added (none repeated, none skipped), page
 * numbers still work, totals are exact, a cursor of another list is refused, and another organization's
 * items never appear. Real Postgres, Redis and the HTTP API.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type ApiClient, assertApiError, secondOrganization, startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";

interface List {
  path: string;
  /** Creates one item and returns its id. */
  create(api: ApiClient, n: number): Promise<string>;
  /** Items the organization has before the test creates any (its first admin key). */
  existing: number;
  newestFirst: boolean;
}

async function created(res: { status: number; text: string; json: { id: string } }): Promise<string> {
  assert.equal(res.status, 201, res.text);
  return res.json.id;
}

const LISTS: List[] = [
  {
    path: "/api/integrations/webhooks",
    create: async (api, n) =>
      created(
        await api.post("/api/integrations/webhooks", { url: `https://127.0.0.1:9/h${n}`, events: ["*"] }),
      ),
    existing: 0,
    newestFirst: false,
  },
  {
    path: "/api/automations",
    create: async (api, n) =>
      created(
        await api.post("/api/automations", {
          name: `a${n}`,
          trigger: { min_escalation_level: "high" },
          webhook_ids: [],
        }),
      ),
    existing: 0,
    newestFirst: false,
  },
  {
    path: "/api/integrations/feedback",
    create: async (api, n) =>
      created(await api.post("/api/integrations/feedback", { display_name: `f${n}` })),
    existing: 0,
    newestFirst: true,
  },
  {
    path: "/api/keys",
    create: async (api, n) => created(await api.post("/api/keys", { name: `k${n}` })),
    existing: 1,
    newestFirst: false,
  },
];

describe("configuration lists page by cursor", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("each list: stable cursor pages while items are added, page numbers, exact totals, other lists' cursors refused", async () => {
    const s = await startApiStack({ worker: false });
    try {
      const other = await secondOrganization(s.stack, `paging-other-${Date.now()}`);
      for (const list of LISTS) {
        const start: string[] = [];
        for (let i = 0; i < 7; i++) start.push(await list.create(s.api, i));
        // The other organization's items sit between ours in time and must never show.
        await list.create(s.api.as(other.adminApiKey), 99);
        const before = (await s.api.get(`${list.path}?per_page=100`)).json.data.map(
          (x: { id: string }) => x.id,
        );
        assert.equal(before.length, 7 + list.existing, `${list.path}: the whole list in one page`);

        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        let added = 0;
        do {
          const q: string = cursor ? `&cursor=${cursor}` : "";
          const res = await s.api.get(`${list.path}?per_page=3${q}`);
          assert.equal(res.status, 200, `${list.path}: ${res.text}`);
          assert.equal(res.json.total, 7 + list.existing + added, `${list.path}: total on page ${pages + 1}`);
          assert.equal(res.json.per_page, 3);
          seen.push(...res.json.data.map((x: { id: string }) => x.id));
          cursor = res.json.next_cursor;
          pages++;
          // One item added between pages: an oldest-first list shows it at its end, a newest-first one never.
          await list.create(s.api, 100 + pages);
          added++;
        } while (cursor !== null && pages < 20);
        assert.equal(new Set(seen).size, seen.length, `${list.path}: no item twice`);
        for (const id of before) assert.ok(seen.includes(id), `${list.path}: ${id} of the start was skipped`);
        if (list.newestFirst) assert.deepEqual(seen, before, `${list.path}: exactly the items of the start`);
        else assert.deepEqual(seen.slice(0, before.length), before, `${list.path}: in order, oldest first`);

        const second = await s.api.get(`${list.path}?per_page=3&page=2`);
        assert.equal(second.status, 200);
        assert.equal(second.json.page, 2);
        assert.equal(second.json.data.length, 3);

        const foreign = await s.api.get(`/api/integrations/feedback?per_page=1`);
        const foreignCursor =
          list.path === "/api/integrations/feedback" ? undefined : foreign.json.next_cursor;
        if (foreignCursor) {
          assertApiError(
            await s.api.get(`${list.path}?cursor=${foreignCursor}`),
            400,
            "ErrCodeInvalidFieldFormat",
            "query.cursor",
          );
        }
        assertApiError(
          await s.api.get(`${list.path}?cursor=zz`),
          400,
          "ErrCodeInvalidFieldFormat",
          "query.cursor",
        );
        assertApiError(
          await s.api.get(`${list.path}?per_page=101`),
          400,
          "ErrCodeInvalidFieldFormat",
          "query.per_page",
        );
      }
    } finally {
      await s.close();
    }
  });
});
