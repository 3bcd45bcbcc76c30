/**
 * Ingestion through `POST /webhook/custom/all`: helpers for part E, and `npm run bench:ingest`, which posts
 * 100 batches of 100 REVIEW records to a real `escalation-shield serve` child process (no workers: records
 * are stored and their evaluation queued, nothing more) and prints the records per second accepted.
 */
import os from "node:os";
import { Pool } from "undici";
import { loadConfig } from "../src/config.ts";
import { createIntegration } from "../src/ingestion/store.ts";
import { createOrganization } from "../src/orgs.ts";
import { openRuntime, type Runtime } from "../src/runtime.ts";
import {
  benchDatabase,
  benchPrefix,
  cleanUpOnSignals,
  fmtRate,
  freePort,
  type PartContext,
  perSecond,
  pollUntil,
  productEnv,
  randomTag,
  runPart,
} from "./lib.ts";
import { wallNow } from "./marker.ts";
import { spawnProduct } from "./proc.ts";

const OPENERS = [
  "This is the third time I'm writing.",
  "Unacceptable.",
  "I am furious.",
  "Nobody answers my emails.",
  "Still waiting after two weeks.",
  "Your support is a joke.",
];
const ISSUES = [
  "You charged me twice for order #N.",
  "The app deleted all my invoices.",
  "My account has been locked for days.",
  "The refund for order #N never arrived.",
  "The delivery is ten days late.",
  "Your update broke the export again.",
];
const THREATS = [
  "Refund me or I will file a chargeback.",
  "I want to cancel my subscription today.",
  "My lawyer will hear about this.",
  "I'm leaving a one-star review everywhere.",
  "Fix it now or I report you to consumer protection.",
  "I'm switching to a competitor.",
];

/**
 * An escalating review, different for each `n` (216 combinations of sentences, and an order number). The
 * built-in analyzer rates every combination high or extreme, so an automation at "low" fires on each.
 */
export function escalatingText(n: number): string {
  const issue = (ISSUES[Math.floor(n / 6) % 6] as string).replace("N", String(4000 + n));
  return `${OPENERS[n % 6]} ${issue} ${THREATS[Math.floor(n / 36) % 6]}`;
}

/** `batches` JSON bodies of `size` REVIEW records each, serialized before any timing starts. */
export function reviewBatches(tag: string, batches: number, size: number): string[] {
  const createdAt = Math.floor(Date.now() / 1000) - 60;
  return Array.from({ length: batches }, (_, b) =>
    JSON.stringify({
      records: Array.from({ length: size }, (_, i) => {
        const n = b * size + i;
        return {
          id: `${tag}-${n}`,
          fileID: "bench-reviews",
          type: "REVIEW",
          createdAt,
          text: escalatingText(n),
          metadata: {},
        };
      }),
    }),
  );
}

export interface ApiTarget {
  rt: Runtime;
  baseUrl: string;
  databaseName: string;
  pid: number | undefined;
  orgId: string;
  orgSlug: string;
  integrationId: string;
  apiKey: string;
}

/**
 * A database and queue prefix of the part's own, an organization and a feedback integration, `prepare` for
 * anything else, then `escalation-shield <command>` (`serve` or `start`) listening on a free loopback port.
 */
export async function startApi(
  ctx: PartContext,
  command: "serve" | "start",
  prepare: (t: Omit<ApiTarget, "baseUrl" | "databaseName" | "pid">) => Promise<void> = async () => {},
): Promise<ApiTarget> {
  const databaseUrl = await benchDatabase(ctx);
  const port = await freePort();
  const env = productEnv(databaseUrl, benchPrefix(ctx), { HOST: "127.0.0.1", PORT: String(port) });
  const rt = openRuntime(loadConfig({ ...env, LOG_LEVEL: "warn" }));
  ctx.defer("close the bench's runtime", () => rt.close());
  const org = await rt.database.db.transaction((tx) => createOrganization(tx, `bench-${randomTag(3)}`));
  const { integration, apiKey } = await createIntegration(rt.database.db, org.id, {
    displayName: "ZendeskSupport",
  });
  const target = { rt, orgId: org.id, orgSlug: org.slug, integrationId: integration.id, apiKey };
  await prepare(target);
  const child = spawnProduct(`escalation-shield ${command}`, [command], env);
  ctx.defer(`stop escalation-shield ${command}`, () => child.stop());
  const baseUrl = `http://127.0.0.1:${port}`;
  const up = await pollUntil(
    ctx.signal,
    Date.now() + 30_000,
    async () => {
      if (child.proc.exitCode !== null) {
        throw new Error(`escalation-shield ${command} exited: ${child.tail().slice(-5).join(" | ")}`);
      }
      try {
        const res = await fetch(`${baseUrl}/healthz`);
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    100,
  );
  if (!up) throw new Error(`escalation-shield ${command} did not answer /healthz within 30 s`);
  return { ...target, baseUrl, databaseName: new URL(databaseUrl).pathname.slice(1), pid: child.proc.pid };
}

export interface PostResult {
  batches: number;
  records: number;
  concurrency: number;
  /** Wall-clock time of the first request. */
  startedAt: number;
  /** Wall-clock time of the last 200 answer. */
  lastAnswerAt: number;
  acceptMs: number;
  acceptRate: number;
  created: number;
}

/** Posts every body with `concurrency` requests in flight; any answer but 200 fails the run. */
export async function postBatches(
  ctx: PartContext,
  target: ApiTarget,
  bodies: string[],
  concurrency: number,
): Promise<PostResult> {
  const pool = new Pool(target.baseUrl, { connections: concurrency });
  ctx.defer("close the ingestion client", () => pool.close());
  let next = 0;
  let records = 0;
  let created = 0;
  let lastAnswerAt = 0;
  const startedAt = wallNow();
  const sender = async () => {
    for (;;) {
      ctx.signal.throwIfAborted();
      const i = next++;
      const body = bodies[i];
      if (body === undefined) return;
      const res = await pool.request({
        method: "POST",
        path: "/webhook/custom/all",
        headers: { "content-type": "application/json", "api-key": target.apiKey },
        body,
        signal: ctx.signal,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) {
        throw new Error(`POST /webhook/custom/all batch ${i}: ${res.statusCode} ${text.slice(0, 300)}`);
      }
      const answer = JSON.parse(text) as { received: number; created: number };
      records += answer.received;
      created += answer.created;
      lastAnswerAt = wallNow();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, sender));
  const acceptMs = lastAnswerAt - startedAt;
  return {
    batches: bodies.length,
    records,
    concurrency,
    startedAt,
    lastAnswerAt,
    acceptMs,
    acceptRate: perSecond(records, acceptMs),
    created,
  };
}

/** Requests in flight while posting: a client with a few connections, not one request at a time. */
export const INGEST_CONCURRENCY = 4;

async function main(): Promise<void> {
  cleanUpOnSignals();
  process.stdout.write(
    `bench:ingest — ${os.availableParallelism()} cores (os.availableParallelism), Node ${process.version}\n`,
  );
  const outcome = await runPart("ingest", 120_000, async (ctx) => {
    const target = await startApi(ctx, "serve");
    const bodies = reviewBatches(randomTag(3), 100, 100);
    return postBatches(ctx, target, bodies, INGEST_CONCURRENCY);
  });
  if (!outcome.ok) {
    process.stdout.write(`ingest FAILED: ${outcome.error}\n`);
    process.exitCode = 1;
  } else {
    const r = outcome.value;
    process.stdout.write(
      `POST /webhook/custom/all to \`escalation-shield serve\`: ${r.records} records in ${r.batches} batches ` +
        `(${r.concurrency} in flight), all answered 200 in ${(r.acceptMs / 1000).toFixed(2)} s\n` +
        `records accepted per second: ${fmtRate(r.acceptRate)} (${fmtRate(perSecond(r.batches, r.acceptMs))} requests)\n`,
    );
  }
  for (const e of outcome.cleanupErrors) process.stdout.write(`clean-up problem: ${e}\n`);
}

if (import.meta.main) await main();
