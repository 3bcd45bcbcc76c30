/**
 * Chaos: 2,000 alerts while, in turn, the workers' Postgres connections are cut, Redis is killed and
 * started again empty, a worker is SIGKILLed and a destination is deleted with its attempts in flight.
 * Every alert to a live destination must be delivered; none may reach its receiver twice beyond what the
 * killed worker had in flight; and every delivery must end in a state the API shows truthfully.
 * Real worker processes behind a TCP proxy to Postgres and on a private redis-server, real HTTPS receivers.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { and, eq, inArray, sql } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { deleteWebhook } from "../src/destinations/store.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { startApiStack } from "./helpers/api.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type CliProcess, startCli } from "./helpers/processes.ts";
import { startProxy } from "./helpers/proxy.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { startPrivateRedis } from "./helpers/redis.ts";
import { waitFor } from "./helpers/wait.ts";

const WH = "/api/integrations/webhooks";
const DESTINATIONS = 5;
const ALERTS = 2000;
const CONCURRENCY = 20;

function alive(p: CliProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

describe("chaos", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("2,000 alerts through Postgres cuts, a Redis restart, a SIGKILLed worker and a deleted destination", async (t) => {
    let redis = await startPrivateRedis();
    const s = await startApiStack({ worker: false, env: { REDIS_URL: redis.url } });
    const pgProxy = await startProxy(s.stack.env.DATABASE_URL as string);
    const proxied = new URL(s.stack.env.DATABASE_URL as string);
    proxied.port = String(pgProxy.port);
    const workerEnv = {
      ...s.stack.env,
      DATABASE_URL: proxied.toString(),
      DELIVERY_CONCURRENCY: String(CONCURRENCY),
      DELIVERY_RETRY_SCHEDULE: "1,1,2,2,2,2,2,2,2,2",
      SWEEP_INTERVAL_MS: "1000",
    };
    const receivers: Receiver[] = [];
    const workers: CliProcess[] = [];
    const startWorker = () => {
      const w = startCli(["worker", "--only", "delivery"], workerEnv);
      workers.push(w);
      return w;
    };
    try {
      for (let i = 0; i < DESTINATIONS; i++) {
        receivers.push(
          await startReceiver({ behaviour: (_q, res) => setTimeout(() => res.writeHead(200).end(), 20) }),
        );
      }
      const hooks = await Promise.all(
        receivers.map((r) => s.stack.webhook({ url: r.url, events: ["escalation.alert"] })),
      );
      const doomed = hooks[DESTINATIONS - 1] as { id: string };
      const first = startWorker();
      startWorker();

      // Alerts keep arriving through the faults, 100 every 500 ms. While Redis is away their rows are
      // committed and their jobs not queued; the sweeper queues them once it is back.
      let enqueueFailures = 0;
      const producer = (async () => {
        for (let batch = 0; batch < ALERTS / 100; batch++) {
          const hook = hooks[batch % DESTINATIONS] as { id: string };
          try {
            await enqueueAlerts(s.stack, hook.id, 100);
          } catch {
            enqueueFailures++;
          }
          await sleep(500);
        }
      })();

      await sleep(2000);
      pgProxy.cut();
      await sleep(1000);
      pgProxy.reset();
      await sleep(2000);
      await redis.kill();
      await sleep(2000);
      redis = await startPrivateRedis(redis.port);
      await sleep(2000);
      first.child.kill("SIGKILL");
      startWorker();
      await sleep(1500);
      // Deleted with its attempts in flight: its deliveries and their history go with it.
      assert.equal(await deleteWebhook(s.stack.rt.database.db, s.stack.org.id, doomed.id), true);
      await producer;

      const db = s.stack.rt.database.db;
      // Rows whose commit raced with Redis going away are in Postgres all the same: count from there.
      const liveIds = hooks.slice(0, DESTINATIONS - 1).map((h) => h.id);
      const rows = await db
        .select({ id: deliveries.id, key: deliveries.idempotencyKey, webhookId: deliveries.webhookId })
        .from(deliveries)
        .where(inArray(deliveries.webhookId, liveIds));
      const expected = rows.length;
      // A batch whose jobs could not be queued while Redis was away is still committed: all 1,600 are there.
      assert.equal(
        expected,
        (ALERTS * (DESTINATIONS - 1)) / DESTINATIONS,
        `rows (${enqueueFailures} batches unqueued)`,
      );
      await waitFor(
        "every delivery to a live destination delivered",
        async () => {
          const [row] = await db
            .select({ n: sql<number>`count(*)::int` })
            .from(deliveries)
            .where(and(inArray(deliveries.webhookId, liveIds), eq(deliveries.status, "delivered")));
          return row?.n === expected;
        },
        120_000,
        500,
      );
      assert.ok(workers.slice(1).every(alive), "the workers that were not killed are still running");

      // What the receivers saw: every live alert at least once.
      const received = new Map<string, number>();
      for (const r of receivers.slice(0, DESTINATIONS - 1)) {
        for (const q of r.requests) {
          const key = String(q.headers["idempotency-key"]);
          received.set(key, (received.get(key) ?? 0) + 1);
        }
      }
      // Each copy is an attempt the outbox claimed (attempt_count counts claims), and each copy beyond the
      // first is an attempt whose outcome was never stored: the killed worker's, in flight or not yet written.
      const counts = await db
        .select({
          id: deliveries.id,
          claims: deliveries.attemptCount,
          recorded: sql<number>`(select count(*)::int from delivery_attempts a where a.delivery_id = deliveries.id)`,
        })
        .from(deliveries)
        .where(inArray(deliveries.webhookId, liveIds));
      const byId = new Map(counts.map((c) => [c.id, c]));
      let extra = 0;
      for (const a of rows) {
        const copies = received.get(a.key) ?? 0;
        const c = byId.get(a.id);
        assert.ok(copies >= 1, `alert ${a.id} never arrived`);
        assert.ok(c && copies <= c.claims, `${a.id}: ${copies} copies, ${c?.claims} claimed attempts`);
        assert.ok(
          c && copies - 1 <= c.claims - c.recorded,
          `${a.id}: ${copies} copies, ${c?.recorded} of ${c?.claims} attempts stored`,
        );
        extra += copies - 1;
      }
      // The killed worker had CONCURRENCY attempts in flight and a few milliseconds of outcomes unwritten.
      assert.ok(extra <= 2 * CONCURRENCY, `${extra} copies beyond the first`);
      t.diagnostic(
        `${expected} live deliveries; ${extra} copies beyond the first; ${enqueueFailures} batches queued late`,
      );

      // The API tells the same story: every live delivery delivered, the deleted destination's gone.
      for (const id of liveIds) {
        let delivered = 0;
        for (let page = 1; ; page++) {
          const res = await s.api.get(`${WH}/${id}/deliveries?per_page=100&page=${page}`);
          assert.equal(res.status, 200);
          for (const d of res.json.data) {
            assert.equal(d.status, "delivered", `delivery ${d.id}`);
            assert.ok(
              (received.get(d.idempotency_key) ?? 0) >= 1,
              `delivery ${d.id} shown delivered, never arrived`,
            );
            delivered++;
          }
          if (res.json.data.length < 100) break;
        }
        assert.equal(delivered, rows.filter((a) => a.webhookId === id).length);
      }
      assert.equal((await s.api.get(`${WH}/${doomed.id}/deliveries`)).status, 404);
    } finally {
      for (const w of workers) await w.stop("SIGKILL");
      for (const r of receivers) await r.close();
      await pgProxy.close();
      await s.close();
      await redis.stop();
    }
  });
});
