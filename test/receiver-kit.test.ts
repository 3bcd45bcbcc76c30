import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import postgres from "postgres";
import { webhooks } from "../src/db/schema.ts";
import { retryNow } from "../src/delivery/outbox.ts";
import { queueDeliveries } from "../src/delivery/queue.ts";
import { createPostgresDeduper, createRedisDeduper, type SqlLike } from "../src/receiver/index.ts";
import { signatureHeaders } from "../src/signing/headers.ts";
import { attemptRows, deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startPrivateRedis } from "./helpers/redis.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

interface ExampleReceiver {
  child: ChildProcess;
  /** Every JSON line it printed, parsed. */
  lines: { msg: string; [k: string]: unknown }[];
  url: string;
  stop(): Promise<void>;
}

/** `node examples/receiver.ts` as a real child process, the way `npm run example:receiver` starts it. */
async function startExampleReceiver(env: Record<string, string>): Promise<ExampleReceiver> {
  const child = spawn(process.execPath, [resolve("examples/receiver.ts")], {
    env: { PATH: process.env.PATH ?? "", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: ExampleReceiver["lines"] = [];
  let stderr = "";
  let buf = "";
  child.stdout?.on("data", (c: Buffer) => {
    buf += c.toString("utf8");
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const exited = once(child, "exit");
  const listening = await waitFor(`example receiver listening (stderr: ${stderr})`, () =>
    lines.find((l) => l.msg === "listening"),
  );
  return {
    child,
    lines,
    url: String(listening.url),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const [code] = await exited;
      assert.equal(code, 0, `example receiver exited with ${code}: ${stderr}`);
    },
  };
}

describe("receiver kit: the example receiver", () => {
  let stack: Stack;
  let redis: { url: string; stop(): Promise<void> };
  const baseline = handleBaseline();
  before(async () => {
    stack = await startStack();
    redis = await startPrivateRedis();
  });
  /** Children still running, stopped after the test whatever its outcome. */
  const running = new Set<ExampleReceiver>();
  after(async () => {
    for (const r of running) await r.stop();
    await stack.close();
    await redis.stop();
    await assertNoOpenHandles(baseline);
  });

  test("a delivery is processed once; its retry, after a restart of the receiver, is a duplicate", async () => {
    const db = stack.rt.database.db;
    // The receiver needs the secret before it starts and the destination its URL: create, start, then point.
    const wh = await stack.webhook({ url: "http://127.0.0.1:9/placeholder", events: ["*"] });
    const env = { WEBHOOK_SECRET: wh.secret, REDIS_URL: redis.url };
    let receiver = await startExampleReceiver(env);
    running.add(receiver);
    await db.update(webhooks).set({ url: receiver.url }).where(eq(webhooks.id, wh.id));

    const [alert] = await enqueueAlerts(stack, wh.id);
    assert.ok(alert);
    await waitFor("delivered", async () => (await deliveryRow(db, alert.id))?.status === "delivered");
    const processed = await waitFor("processed", () => receiver.lines.find((l) => l.msg === "processed"));
    assert.equal(processed.dedupe_key, alert.id, "deduped on the signed webhook-id, the delivery id");
    assert.equal(processed.event, "escalation.alert");
    assert.equal((await attemptRows(db, alert.id))[0]?.httpStatus, 202);

    // The state lives in Redis, not in the process: a new process still knows the key.
    await receiver.stop();
    running.delete(receiver);
    receiver = await startExampleReceiver(env);
    running.add(receiver);
    await db.update(webhooks).set({ url: receiver.url }).where(eq(webhooks.id, wh.id));
    const ref = await retryNow(db, wh.id, alert.id);
    assert.ok(ref);
    await queueDeliveries(stack.rt.deliveryQueue, [ref]);
    const duplicate = await waitFor("duplicate", () => receiver.lines.find((l) => l.msg === "duplicate"));
    assert.equal(duplicate.dedupe_key, alert.id);
    const attempts = await waitFor("second attempt", async () => {
      const a = await attemptRows(db, alert.id);
      return a.length === 2 ? a : undefined;
    });
    assert.deepEqual(
      attempts.map((a) => a.httpStatus),
      [202, 202],
    );
    assert.equal(receiver.lines.filter((l) => l.msg === "processed").length, 0);

    // A request signed with another secret is refused with the kit's reason, and not processed.
    const res = await fetch(receiver.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": "forged",
        "webhook-id": "del_forged",
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
        "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      },
      body: "{}",
    });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: "no_matching_signature" });
    // The line and the answer travel separately (stdout pipe, socket): wait for the line.
    await waitFor("rejected line", () =>
      receiver.lines.some((l) => l.msg === "rejected" && l.reason === "no_matching_signature"),
    );
  });

  test("a captured request replayed with other Idempotency-Keys is processed once, in both signature schemes", async () => {
    const secret = "whs_replay-test-secret";
    const receiver = await startExampleReceiver({ WEBHOOK_SECRET: secret, REDIS_URL: redis.url });
    running.add(receiver);
    try {
      for (const scheme of ["standard", "timestamped-hex"] as const) {
        const body = JSON.stringify({ id: `evt_replay_${scheme}`, event: "test.webhook", data: {} });
        const signed = signatureHeaders(
          { scheme, secret, previousSecret: null, ed25519SecretKey: null },
          `del_replay_${scheme}`,
          Math.floor(Date.now() / 1000),
          body,
        );
        for (let i = 0; i < 4; i++) {
          const res = await fetch(receiver.url, {
            method: "POST",
            headers: { "content-type": "application/json", ...signed, "idempotency-key": `replay-${i}` },
            body,
          });
          assert.equal(res.status, 202, `${scheme} replay ${i}`);
        }
        await waitFor(
          `${scheme}: every replay handled`,
          () =>
            receiver.lines.filter((l) => l.msg === "processed" || l.msg === "duplicate").length ===
            (scheme === "standard" ? 4 : 8),
        );
      }
      const processed = receiver.lines.filter((l) => l.msg === "processed");
      assert.equal(processed.length, 2, "one of the four, per scheme");
      assert.equal(processed[0]?.dedupe_key, "del_replay_standard");
      assert.match(String(processed[1]?.dedupe_key), /^sha256:[0-9a-f]{64}$/);
    } finally {
      await receiver.stop();
      running.delete(receiver);
    }
  });
});

describe("receiver kit: dedupers survive a restart", () => {
  let redis: { url: string; stop(): Promise<void> };
  let stack: Stack;
  const baseline = handleBaseline();
  before(async () => {
    redis = await startPrivateRedis();
    stack = await startStack({ worker: false });
  });
  after(async () => {
    await stack.close();
    await redis.stop();
    await assertNoOpenHandles(baseline);
  });

  test("Redis: SET NX EX; a new client and deduper see the key as a duplicate; one first among racers", async () => {
    const first = new Redis(redis.url);
    try {
      const d = createRedisDeduper(first, { prefix: "t:", ttlSeconds: 60 });
      assert.equal(await d.check("aut_1:whe_1:rec_1"), "first");
      assert.equal(await d.check("aut_1:whe_1:rec_1"), "duplicate");
      assert.equal(await first.ttl("t:aut_1:whe_1:rec_1"), 60);
      const racers = await Promise.all(Array.from({ length: 10 }, () => d.check("race")));
      assert.equal(racers.filter((r) => r === "first").length, 1);
      assert.ok((await createRedisDeduper(first).check("default-ttl")) === "first");
      assert.ok((await first.ttl("webhook:seen:default-ttl")) > 7 * 86_400 - 5);
    } finally {
      first.disconnect();
    }
    const second = new Redis(redis.url);
    try {
      const d = createRedisDeduper(second, { prefix: "t:", ttlSeconds: 60 });
      assert.equal(await d.check("aut_1:whe_1:rec_1"), "duplicate");
      assert.equal(await d.check("aut_2:whe_1:rec_1"), "first");
    } finally {
      second.disconnect();
    }
  });

  test("Postgres (postgres.js and a node-postgres-shaped client): table created if missing, duplicate after restart", async () => {
    const url = stack.env.DATABASE_URL as string;
    const a = postgres(url, { max: 2, onnotice: () => {} });
    try {
      const d = createPostgresDeduper(a, { table: "receiver_seen" });
      assert.equal(await d.check("k1"), "first");
      assert.equal(await d.check("k1"), "duplicate");
      const racers = await Promise.all(Array.from({ length: 10 }, () => d.check("race")));
      assert.equal(racers.filter((r) => r === "first").length, 1);
    } finally {
      await a.end();
    }
    const b = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // The `query(text, params) → { rows }` shape of node-postgres.
      const pgShaped: SqlLike = {
        query: async (text: string, params?: unknown[]) => ({
          rows: [...(await b.unsafe(text, (params ?? []) as string[]))],
        }),
      };
      const d = createPostgresDeduper(pgShaped, { table: "receiver_seen" });
      assert.equal(await d.check("k1"), "duplicate");
      assert.equal(await d.check("k2"), "first");
      const [row] = await b`select count(*)::int as n from receiver_seen`;
      assert.equal(row?.n, 3);
      assert.throws(() => createPostgresDeduper(b, { table: "x; drop table y" }), TypeError);
    } finally {
      await b.end();
    }
  });
});
