/**
 * Disabling, enabling and deleting a destination with a large backlog answer at once with their usual
 * status and finish in batches: disable holds the backlog, enable releases it into the queue, delete makes
 * the destination invisible and undeliverable at once and the pruner removes its rows. Real Postgres,
 * Redis, HTTP API, worker and HTTPS receiver.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";
const BACKLOG = 2_000;

describe("a destination with a large backlog", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("disable, enable and delete answer at once and finish in batches", async () => {
    const s = await startApiStack({ worker: false });
    const r = await startReceiver();
    try {
      const db = s.stack.rt.database.db;
      const wh = await s.stack.webhook({ url: r.url, events: ["escalation.alert"] });
      // A backlog due in an hour, as after a long outage of the receiver.
      await db.execute(sql`insert into deliveries
          (id, org_id, webhook_id, event_type, idempotency_key, payload, status, max_attempts, next_attempt_at)
        select 'del_backlog' || g, ${s.stack.org.id}, ${wh.id}, 'escalation.alert', 'backlog:' || g, '{}',
          'pending', 8, now() + interval '1 hour'
        from generate_series(1, ${BACKLOG}) g`);
      const count = async (status: string) =>
        (
          await db.execute<{ n: number }>(
            sql`select count(*)::int as n from deliveries where webhook_id = ${wh.id} and status = ${status}`,
          )
        )[0]?.n ?? 0;
      const timed = async (fn: () => Promise<{ status: number }>) => {
        const started = Date.now();
        const res = await fn();
        return { status: res.status, ms: Date.now() - started };
      };

      const disabled = await timed(() => s.api.patch(`${WH}/${wh.id}`, { enabled: false }));
      assert.equal(disabled.status, 200);
      await waitFor("the backlog held", async () => (await count("held")) === BACKLOG, 60_000, 200);

      const enabled = await timed(() => s.api.patch(`${WH}/${wh.id}`, { enabled: true }));
      assert.equal(enabled.status, 200);
      await waitFor(
        "the backlog released and queued",
        async () => (await count("pending")) === BACKLOG,
        60_000,
        200,
      );
      const jobs = await s.stack.rt.deliveryQueue.getJobCounts("waiting", "delayed");
      assert.equal(
        (jobs.waiting ?? 0) + (jobs.delayed ?? 0),
        BACKLOG,
        "each released delivery queued, due at once",
      );

      // The backlog fails for good; recovering its window answers at once and queues it all, in batches.
      await db.execute(sql`update deliveries set status = 'failed' where webhook_id = ${wh.id}`);
      await s.stack.rt.deliveryQueue.obliterate({ force: true });
      const recovered = await timed(() =>
        s.api.post(`${WH}/${wh.id}/recover`, { since: "2000-01-01T00:00:00Z" }),
      );
      assert.equal(recovered.status, 202);
      await waitFor("the window recovered", async () => (await count("pending")) === BACKLOG, 60_000, 200);

      const deleted = await timed(() => s.api.delete(`${WH}/${wh.id}`));
      assert.equal(deleted.status, 204);
      assert.equal((await s.api.get(`${WH}/${wh.id}`)).status, 404, "gone for the API at once");
      assert.equal((await s.api.get(`${WH}/${wh.id}/deliveries`)).status, 404);
      // From the 204 on nothing is delivered to it, though its jobs are queued and a worker runs now; the
      // worker's pruner removes its rows a batch at a time.
      const worker = s.stack.startWorker();
      const left = async () =>
        Number(
          (
            await db.execute<{ n: number }>(
              sql`select (select count(*) from deliveries where webhook_id = ${wh.id})
                + (select count(*) from webhooks where id = ${wh.id})
                + (select count(*) from webhook_deletions where webhook_id = ${wh.id}) as n`,
            )
          )[0]?.n,
        );
      await waitFor("nothing of it left", async () => (await left()) === 0, 60_000, 200);
      await sleep(2000);
      assert.equal(r.requests.length, 0, "nothing delivered after the delete");
      await worker.close();
      // Each answer came before its backlog was done, whatever its size.
      for (const [what, t] of [
        ["disable", disabled],
        ["enable", enabled],
        ["recover", recovered],
        ["delete", deleted],
      ] as const) {
        assert.ok(t.ms < 1500, `${what} answered in ${t.ms} ms`);
      }
    } finally {
      await r.close();
      await s.close();
    }
  });
});
