/**
 * Part E: the whole path, from `POST /webhook/custom/all` to the receiver. One `escalation-shield start`
 * process (API, evaluator and delivery worker, as `npm start` runs them) ingests 100 batches of 100
 * escalating reviews; an automation at `min_escalation_level: "low"` sends each record to one destination.
 */
import { sql } from "drizzle-orm";
import { createAutomation } from "../src/automations/store.ts";
import { ALERT_EVENT } from "../src/delivery/payloads.ts";
import { createWebhook } from "../src/destinations/store.ts";
import { startCpuMeter } from "./cpu.ts";
import { INGEST_CONCURRENCY, type PostResult, postBatches, reviewBatches, startApi } from "./ingest.ts";
import { type PartContext, perSecond, pollUntil, randomTag, waitUntilMs } from "./lib.ts";
import { wallNow } from "./marker.ts";
import type { Receivers, Summary } from "./receiver.ts";

export interface FullPathResult {
  records: number;
  post: PostResult;
  complete: boolean;
  /** Alerts the product created (deliveries rows) once every record was evaluated, or when time ran out. */
  alertsCreated: number;
  evaluated: number;
  /** First POST → last alert's arrival (or the deadline), ms. */
  fullMs: number;
  fullRate: number;
  receiver: Summary;
  /** Cores busy from the first POST to the last arrival. */
  cpu: Record<string, number | null>;
}

export async function runFullPath(
  ctx: PartContext,
  receivers: Receivers,
  options: { batches: number; size: number; deadlineMs: number },
): Promise<FullPathResult> {
  const target = await startApi(ctx, "start", async (t) => {
    const { id: webhookId } = await createWebhook(t.rt.database.db, t.rt.box, t.orgId, {
      url: receivers.urls[0] as string,
      events: [ALERT_EVENT],
      auth: { type: "bearer", credential: `bench-${randomTag(8)}` },
    });
    await t.rt.database.db.transaction((tx) =>
      createAutomation(tx, t.orgId, {
        name: "every escalation",
        active: true,
        filter: {},
        trigger: { min_escalation_level: "low" },
        webhookIds: [webhookId],
      }),
    );
  });
  const records = options.batches * options.size;
  const bodies = reviewBatches(randomTag(3), options.batches, options.size);
  await receivers.reset();
  const meter = startCpuMeter([
    { name: "start", pid: target.pid },
    { name: "postgres", database: target.databaseName },
    { name: "receivers", pid: receivers.child.proc.pid },
    { name: "bench", self: true },
  ]);
  const post = await postBatches(ctx, target, bodies, INGEST_CONCURRENCY);
  ctx.note(`${post.records} records accepted in ${(post.acceptMs / 1000).toFixed(1)} s; waiting for alerts`);

  // Every record should fire; the database says how many did once all are evaluated, so a text the analyzer
  // rates "none" lowers the count awaited instead of making the part wait until its deadline.
  let awaited = records;
  let evaluated = 0;
  let alertsCreated = 0;
  let lastDbCheck = 0;
  const db = target.rt.database.db;
  const countInDb = async () => {
    const [row] = await db.execute<{ evaluated: number; alerts: number }>(sql`
      select (select count(*)::int from records where analyzed_version = version) as evaluated,
             (select count(*)::int from deliveries) as alerts`);
    evaluated = row?.evaluated ?? 0;
    alertsCreated = row?.alerts ?? 0;
    if (evaluated >= records) awaited = alertsCreated;
  };
  const complete = await pollUntil(ctx.signal, waitUntilMs(ctx, options.deadlineMs), async () => {
    if (Date.now() - lastDbCheck >= 1000) {
      lastDbCheck = Date.now();
      await countInDb();
    }
    return (await receivers.progress()).unique >= awaited;
  });
  const cpu = meter.stop();
  const receiver = await receivers.summary(undefined, awaited);
  await countInDb();
  const end = complete && receiver.lastAt !== null ? receiver.lastAt : wallNow();
  const fullMs = end - post.startedAt;
  return {
    records,
    post,
    complete,
    alertsCreated,
    evaluated,
    fullMs,
    fullRate: perSecond(complete ? records : Math.min(receiver.unique, records), fullMs),
    receiver,
    cpu,
  };
}
