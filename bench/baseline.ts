/**
 * Part A's baseline: what BullMQ and undici alone deliver on this machine, so the product's rate can be
 * read as a ratio. A Queue and a Worker (in a child process, as the product's worker is) post the same
 * kind of bytes with the same headers to the same receivers, with the same concurrency and the same
 * connection pool settings, and persist nothing: the body travels in the job and no attempt is stored.
 *
 * The parent side is `runBaseline`; run as a script (`node bench/baseline.ts`, which `runBaseline` does)
 * this file is the worker.
 */
import { createHmac, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { Agent, request } from "undici";
import { ALERT_EVENT, alertIdempotencyKey } from "../src/delivery/payloads.ts";
import { USER_AGENT } from "../src/delivery/request.ts";
import { newId } from "../src/ids.ts";
import { benchAlertBody } from "./alerts.ts";
import { startCpuMeter } from "./cpu.ts";
import {
  benchPrefix,
  CONCURRENCY,
  type PartContext,
  perSecond,
  pollUntil,
  REDIS_URL,
  randomTag,
  waitUntilMs,
} from "./lib.ts";
import { markedRecordId, wallNow } from "./marker.ts";
import { spawnNode } from "./proc.ts";
import type { Receivers, Summary } from "./receiver.ts";

const QUEUE = "delivery";

interface BaselineJob {
  /** Receiver index. */
  u: number;
  /** `webhook-id`: a delivery id, as the product sends. */
  id: string;
  /** Idempotency-Key. */
  k: string;
  /** The exact body. */
  b: string;
}

export interface BaselineResult {
  jobs: number;
  complete: boolean;
  enqueueMs: number;
  enqueueRate: number;
  /** From the first enqueue to the last job's arrival (or to the deadline when incomplete). */
  deliveryMs: number;
  deliveryRate: number;
  receiver: Summary;
  /** Cores busy from the first enqueue to the end of the wait. */
  cpu: Record<string, number | null>;
}

/** Enqueues `jobs` in batches of `batch` while the worker runs; measures until the last one arrives. */
export async function runBaseline(
  ctx: PartContext,
  receivers: Receivers,
  options: { jobs: number; batch: number; deadlineMs: number },
): Promise<BaselineResult> {
  const prefix = benchPrefix(ctx);
  const secret = `whs_${randomBytes(32).toString("base64url")}`;
  const token = `bench-${randomTag(8)}`;
  const worker = spawnNode("baseline worker", [fileURLToPath(import.meta.url)], {
    BENCH_REDIS_URL: REDIS_URL,
    BENCH_PREFIX: prefix,
    BENCH_URLS: JSON.stringify(receivers.urls),
    BENCH_SECRET: secret,
    BENCH_TOKEN: token,
    BENCH_CONCURRENCY: String(CONCURRENCY),
  });
  ctx.defer("stop the baseline worker", () => worker.stop());
  await worker.waitForLine(/^ready$/, 15_000);

  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  const queue = new Queue<BaselineJob>(QUEUE, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 3 },
  });
  ctx.defer("close the baseline queue", async () => {
    await queue.close();
    connection.disconnect();
  });
  await queue.waitUntilReady();
  await receivers.reset();

  const automationId = newId("aut");
  const tag = randomTag(3);
  const meter = startCpuMeter([
    { name: "worker", pid: worker.proc.pid },
    { name: "receivers", pid: receivers.child.proc.pid },
    { name: "bench", self: true },
  ]);
  const started = wallNow();
  for (let from = 0; from < options.jobs; from += options.batch) {
    ctx.signal.throwIfAborted();
    const stamp = wallNow();
    const jobs = [];
    for (let seq = from; seq < Math.min(options.jobs, from + options.batch); seq++) {
      const u = seq % receivers.urls.length;
      const recordId = markedRecordId(tag, seq, stamp);
      const body = benchAlertBody("bench", automationId, recordId, seq);
      const data: BaselineJob = {
        u,
        id: newId("del"),
        k: alertIdempotencyKey(automationId, `whe_bench${u}`, recordId),
        b: body,
      };
      jobs.push({ name: "deliver", data });
    }
    await queue.addBulk(jobs);
  }
  const enqueueMs = wallNow() - started;

  const complete = await pollUntil(
    ctx.signal,
    waitUntilMs(ctx, options.deadlineMs),
    async () => (await receivers.progress()).unique >= options.jobs,
  );
  const cpu = meter.stop();
  // An idle worker still polls Redis; it must not share the machine with what is measured next.
  await worker.stop();
  const receiver = await receivers.summary(undefined, options.jobs);
  const end = complete && receiver.nthAt !== null ? receiver.nthAt : wallNow();
  const deliveryMs = end - started;
  return {
    jobs: options.jobs,
    complete,
    enqueueMs,
    enqueueRate: perSecond(options.jobs, enqueueMs),
    deliveryMs,
    deliveryRate: perSecond(receiver.unique, deliveryMs),
    receiver,
    cpu,
  };
}

/** The baseline worker: sign, post, read the answer; nothing stored anywhere. */
async function work(): Promise<void> {
  const env = process.env;
  const urls = JSON.parse(env.BENCH_URLS ?? "[]") as string[];
  const secret = env.BENCH_SECRET ?? "";
  const token = env.BENCH_TOKEN ?? "";
  const connection = new Redis(env.BENCH_REDIS_URL ?? REDIS_URL, { maxRetriesPerRequest: null });
  // The product's outbound pool settings (src/outbound/http.ts), so only what the product adds differs.
  const agent = new Agent({
    connections: 64,
    keepAliveTimeout: 4000,
    keepAliveMaxTimeout: 4000,
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const worker = new Worker<BaselineJob>(
    QUEUE,
    async (job) => {
      const { u, id, k, b } = job.data;
      const ts = Math.floor(Date.now() / 1000);
      const signature = createHmac("sha256", secret).update(`${id}.${ts}.${b}`).digest("base64");
      const res = await request(urls[u] as string, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": USER_AGENT,
          "idempotency-key": k,
          "webhook-id": id,
          "webhook-timestamp": String(ts),
          "webhook-signature": `v1,${signature}`,
          "webhook-event": ALERT_EVENT,
          authorization: `Bearer ${token}`,
        },
        body: b,
        signal: AbortSignal.timeout(5000),
        dispatcher: agent,
      });
      // Read the answer as the product does (it keeps an excerpt), so the socket goes back to the pool.
      let kept = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) kept += chunk.length;
      if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`status ${res.statusCode}`);
      return kept;
    },
    {
      connection,
      prefix: env.BENCH_PREFIX ?? "es_bench",
      concurrency: Number(env.BENCH_CONCURRENCY ?? CONCURRENCY),
      // The product's lock settings (workers/options.ts).
      lockDuration: 15_000,
      stalledInterval: 10_000,
      maxStalledCount: 10,
    },
  );
  worker.on("error", (err) => process.stderr.write(`baseline worker error: ${err.message}\n`));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await worker.close();
    await agent.close();
    connection.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("disconnect", () => void stop());
  await worker.waitUntilReady();
  process.stdout.write("ready\n");
}

if (import.meta.main) await work();
