import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { count, eq } from "drizzle-orm";
import { Redis } from "ioredis";
import { deliveries, deliveryAttempts, webhooks } from "../src/db/schema.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { deliveryJobId } from "../src/jobs.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type CliProcess, startCli } from "./helpers/processes.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { startPrivateRedis } from "./helpers/redis.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

interface Row {
  id: string;
  key: string;
  status: string;
  attemptCount: number;
}

async function rowsOf(stack: Stack, webhookId: string): Promise<Row[]> {
  return stack.rt.database.db
    .select({
      id: deliveries.id,
      key: deliveries.idempotencyKey,
      status: deliveries.status,
      attemptCount: deliveries.attemptCount,
    })
    .from(deliveries)
    .where(eq(deliveries.webhookId, webhookId));
}

/** Rows of `delivery_attempts` per delivery of one destination (deliveries without any are absent). */
async function attemptRowCounts(stack: Stack, webhookId: string): Promise<Map<string, number>> {
  const rows = await stack.rt.database.db
    .select({ id: deliveryAttempts.deliveryId, n: count() })
    .from(deliveryAttempts)
    .innerJoin(deliveries, eq(deliveries.id, deliveryAttempts.deliveryId))
    .where(eq(deliveries.webhookId, webhookId))
    .groupBy(deliveryAttempts.deliveryId);
  return new Map(rows.map((r) => [r.id, r.n]));
}

async function allDelivered(stack: Stack, webhookId: string, n: number): Promise<boolean> {
  const rows = await rowsOf(stack, webhookId);
  return rows.length === n && rows.every((r) => r.status === "delivered");
}

/** How many requests carried each Idempotency-Key. */
function keysSeen(r: Receiver): Map<string, number> {
  const seen = new Map<string, number>();
  for (const q of r.requests) {
    const key = String(q.headers["idempotency-key"]);
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return seen;
}

/**
 * Counts the requests open at a receiver at once: from arrival until answered or until the sender closes
 * the connection (a timeout, a killed process). `enter` returns the function to call when answering.
 */
function gauge() {
  const state = { open: 0, max: 0 };
  return {
    state,
    enter(res: ServerResponse): () => void {
      state.open++;
      state.max = Math.max(state.max, state.open);
      let left = false;
      const leave = () => {
        if (left) return;
        left = true;
        state.open--;
      };
      res.on("close", leave);
      return leave;
    },
  };
}

/** BullMQ states of the given deliveries' jobs (generation 0), e.g. `{ delayed: 8, active: 2 }`. */
async function jobStates(stack: Stack, ids: string[]): Promise<Record<string, number>> {
  const states: Record<string, number> = {};
  for (const id of ids) {
    const job = await stack.rt.deliveryQueue.getJob(deliveryJobId(id, 0));
    const state = job ? await job.getState() : "missing";
    states[state] = (states[state] ?? 0) + 1;
  }
  return states;
}

/** Asserts that every delivery spent exactly as many attempts as the receiver saw requests for it. */
async function assertAttemptsMatchRequests(stack: Stack, webhookId: string, r: Receiver): Promise<void> {
  const seen = keysSeen(r);
  const attemptRows = await attemptRowCounts(stack, webhookId);
  for (const row of await rowsOf(stack, webhookId)) {
    const sent = seen.get(row.key) ?? 0;
    assert.equal(row.attemptCount, sent, `attempt_count of ${row.id} against requests received`);
    assert.equal(attemptRows.get(row.id) ?? 0, sent, `delivery_attempts rows of ${row.id}`);
  }
}

describe("endpoints are isolated from each other", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("a hung destination holds at most its cap; a healthy one queued behind it gets every alert", async () => {
    const CAP = 4;
    const stack = await startStack({
      env: { DELIVERY_CONCURRENCY: "20", DESTINATION_MAX_IN_FLIGHT: String(CAP) },
    });
    const hungGauge = gauge();
    // Accepts, reads the request, never answers: each attempt holds its slot until the 5 s cut.
    const hung = await startReceiver({ behaviour: (_q, res) => void hungGauge.enter(res) });
    const healthy = await startReceiver();
    try {
      const hungHook = await stack.webhook({ url: hung.url, events: ["escalation.alert"] });
      const okHook = await stack.webhook({ url: healthy.url, events: ["escalation.alert"] });
      await enqueueAlerts(stack, hungHook.id, 200);
      const alerts = await enqueueAlerts(stack, okHook.id, 100);
      assert.equal(alerts.length, 100);
      await waitFor(
        "the 100 healthy alerts delivered",
        () => allDelivered(stack, okHook.id, 100),
        120_000,
        250,
      );
      const hungRequests = hung.requests.length;
      // The healthy alerts did not wait for the hung backlog to drain: most of it never went out yet.
      assert.ok(hungRequests < 200, `the hung destination got ${hungRequests} requests first`);
      assert.ok(
        hungGauge.state.max <= CAP,
        `${hungGauge.state.max} requests were open at once at the hung destination (cap ${CAP})`,
      );
      assert.equal(hungGauge.state.max, CAP, "the hung destination was saturated");
      // Each healthy alert went out once and succeeded on its first attempt.
      const seen = keysSeen(healthy);
      for (const a of alerts) assert.equal(seen.get(a.key), 1, `requests for ${a.key}`);
      for (const row of await rowsOf(stack, okHook.id)) assert.equal(row.attemptCount, 1);
      // The hung destination's waiting work spent no attempts: only those that went out are counted.
      const hungRows = await rowsOf(stack, hungHook.id);
      const spent = hungRows.reduce((n, row) => n + row.attemptCount, 0);
      assert.ok(spent <= hung.requests.length, `${spent} attempts recorded, ${hung.requests.length} sent`);
    } finally {
      await hung.close();
      await healthy.close();
      await stack.close();
    }
  });

  test("the breaker opens after the threshold, stays shut for the cool-down, lets one probe through, and closes on success", async () => {
    const THRESHOLD = 3;
    const COOLDOWN = 3000;
    const stack = await startStack({
      env: {
        BREAKER_FAILURE_THRESHOLD: String(THRESHOLD),
        BREAKER_COOLDOWN_MS: String(COOLDOWN),
        // Enough attempts that no delivery runs out while the breaker is being exercised.
        DELIVERY_RETRY_SCHEDULE: "1,1,1,1,1,1,1,1,1",
      },
    });
    const first: ServerResponse[] = [];
    let opened = false;
    let probe: ServerResponse | undefined;
    let answer = 503;
    const r = await startReceiver({
      behaviour: (_q, res, n) => {
        if (n < THRESHOLD) {
          // The first failures are answered together, so none of their retries can come due before the
          // breaker has counted all of them.
          first.push(res);
          if (first.length === THRESHOLD) for (const f of first) f.writeHead(503).end();
          return;
        }
        if (opened && probe === undefined) {
          probe = res; // held until the test answers it
          return;
        }
        res.writeHead(answer).end();
      },
    });
    const guard = new DestinationGuard(stack.rt.redis, stack.config.queuePrefix);
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const failed = await enqueueAlerts(stack, wh.id, THRESHOLD);
      await waitFor("the breaker open", async () => (await guard.state(wh.id)) === "open", 30_000);
      opened = true;
      assert.equal(r.requests.length, THRESHOLD);
      const lastFailureAt = Math.max(...r.requests.map((q) => q.at));

      // Work that arrives meanwhile waits behind the open breaker.
      const backlog = await enqueueAlerts(stack, wh.id, 20);
      await waitFor("the probe", () => probe !== undefined, 60_000);
      assert.equal(r.requests.length, THRESHOLD + 1, "the probe is the first request after the failures");
      const quiet = r.requests.filter((q) => q.at > lastFailureAt && q.at < lastFailureAt + COOLDOWN);
      assert.deepEqual(quiet, [], "no request during the cool-down");

      // While the probe is out nothing else goes, though 22 more deliveries are due and the cap (16) has room.
      const probeKey = String(r.requests[THRESHOLD]?.headers["idempotency-key"]);
      const others = [...failed, ...backlog].filter((a) => a.key !== probeKey).map((a) => a.id);
      await waitFor(
        "everything but the probe held back",
        async () => (await jobStates(stack, others)).delayed === others.length,
        30_000,
      );
      await sleep(1500);
      assert.equal(r.requests.length, THRESHOLD + 1, "exactly one probe while half-open");
      // Held-back work has spent no attempt: only the first failures are recorded.
      const attemptRows = await attemptRowCounts(stack, wh.id);
      for (const row of await rowsOf(stack, wh.id)) {
        if (row.key === probeKey) continue;
        const spent = failed.some((f) => f.id === row.id) ? 1 : 0;
        assert.equal(row.status, "pending");
        assert.equal(row.attemptCount, spent, `attempt_count of ${row.id} while held back`);
        assert.equal(
          attemptRows.get(row.id) ?? 0,
          spent,
          `delivery_attempts rows of ${row.id} while held back`,
        );
      }

      // The probe fails: the breaker opens again, for twice as long. On a loaded machine the test may hold the
      // probe past the 5 s limit, and then the timeout is the failure: the breaker reopens by then either way.
      const probeArrivedAt = r.requests[THRESHOLD]?.at ?? Date.now();
      const probeAnsweredAt = Math.min(Date.now(), probeArrivedAt + 5000);
      probe?.writeHead(503).end();
      answer = 200;
      const all = THRESHOLD + backlog.length;
      await waitFor("every delivery delivered", () => allDelivered(stack, wh.id, all), 120_000, 250);
      const reopened = r.requests.filter(
        (q) => q.at > probeAnsweredAt && q.at < probeAnsweredAt + 2 * COOLDOWN,
      );
      assert.deepEqual(reopened, [], "no request during the doubled cool-down");
      assert.equal(await guard.state(wh.id), "closed");
      await assertAttemptsMatchRequests(stack, wh.id, r);
      const seen = keysSeen(r);
      for (const a of [...failed, ...backlog]) assert.ok((seen.get(a.key) ?? 0) >= 1, `${a.key} reached`);
    } finally {
      probe?.destroy();
      await r.close();
      await stack.close();
    }
  });

  test("deliveries waiting behind the cap spend no attempt until they go out", async () => {
    const CAP = 2;
    const stack = await startStack({ env: { DESTINATION_MAX_IN_FLIGHT: String(CAP) } });
    const g = gauge();
    const held: { res: ServerResponse; leave: () => void }[] = [];
    let holding = true;
    const r = await startReceiver({
      behaviour: (_q, res) => {
        const leave = g.enter(res);
        if (holding) return void held.push({ res, leave });
        leave();
        res.writeHead(200).end();
      },
    });
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const alerts = await enqueueAlerts(stack, wh.id, 10);
      await waitFor("the cap's worth of requests open", () => held.length === CAP, 30_000);
      const ids = alerts.map((a) => a.id);
      // The others were taken by the worker and turned away: delayed, not waiting.
      await waitFor(
        "the rest held back",
        async () => {
          const s = await jobStates(stack, ids);
          return s.active === CAP && s.delayed === ids.length - CAP;
        },
        30_000,
      );
      await sleep(1500);
      assert.equal(r.requests.length, CAP, "nothing beyond the cap went out");
      const attemptRows = await attemptRowCounts(stack, wh.id);
      const rows = await rowsOf(stack, wh.id);
      for (const row of rows) {
        assert.equal(row.status, "pending");
        assert.equal(attemptRows.get(row.id) ?? 0, 0, `delivery_attempts rows of ${row.id}`);
      }
      // A claim counts its attempt: the two in flight show 1, the ones held back spent nothing.
      const spent = rows.map((row) => row.attemptCount).sort();
      assert.deepEqual(spent, [...Array(ids.length - CAP).fill(0), ...Array(CAP).fill(1)]);

      holding = false;
      for (const h of held) {
        h.leave();
        h.res.writeHead(200).end();
      }
      await waitFor("all delivered", () => allDelivered(stack, wh.id, alerts.length), 60_000, 250);
      assert.ok(g.state.max <= CAP, `${g.state.max} requests open at once (cap ${CAP})`);
      assert.equal(r.requests.length, alerts.length, "one request per delivery");
      await assertAttemptsMatchRequests(stack, wh.id, r);
      for (const row of await rowsOf(stack, wh.id)) assert.equal(row.attemptCount, 1);
    } finally {
      await r.close();
      await stack.close();
    }
  });

  test("a destination's own max_in_flight replaces the default from its first attempt on", async () => {
    // The worker starts with the backlog already queued: its first jobs all arrive at once.
    const stack = await startStack({ worker: false, env: { DESTINATION_MAX_IN_FLIGHT: "16" } });
    const g = gauge();
    const r = await startReceiver({
      behaviour: (_q, res) => {
        const leave = g.enter(res);
        setTimeout(() => {
          leave();
          res.writeHead(200).end();
        }, 500);
      },
    });
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      await stack.rt.database.db.update(webhooks).set({ maxInFlight: 2 }).where(eq(webhooks.id, wh.id));
      await enqueueAlerts(stack, wh.id, 12);
      stack.startWorker();
      await waitFor("all delivered", () => allDelivered(stack, wh.id, 12), 60_000, 250);
      assert.ok(g.state.max <= 2, `${g.state.max} requests open at once (the destination's cap is 2)`);
      await assertAttemptsMatchRequests(stack, wh.id, r);
    } finally {
      await r.close();
      await stack.close();
    }
  });

  test("the cap holds across two worker processes; a worker killed holding slots does not pin its destination", async () => {
    const CAP = 3;
    // Two attempts per process: the processes together could hold 4, so only the shared cap keeps it to 3,
    // and both processes necessarily take part.
    const stack = await startStack({
      worker: false,
      env: { DESTINATION_MAX_IN_FLIGHT: String(CAP), DELIVERY_CONCURRENCY: "2" },
    });
    // Debug logs name every attempt a process made.
    const env = { ...stack.env, LOG_LEVEL: "debug" };
    const slowGauge = gauge();
    const slow = await startReceiver({
      behaviour: (_q, res) => {
        const leave = slowGauge.enter(res);
        setTimeout(() => {
          leave();
          res.writeHead(200).end();
        }, 1000);
      },
    });
    const stuckGauge = gauge();
    const stuckKeys: string[] = [];
    // The first CAP requests are never answered (cut at 5 s, or their worker is killed); later ones succeed.
    const stuck = await startReceiver({
      behaviour: (q, res, n) => {
        const leave = stuckGauge.enter(res);
        if (n < CAP) return void stuckKeys.push(String(q.headers["idempotency-key"]));
        leave();
        res.writeHead(200).end();
      },
    });
    const procs: CliProcess[] = [];
    /** Attempts a process finished, per delivery. */
    const attempted = (p: CliProcess): Map<string, number> => {
      const ids = new Map<string, number>();
      for (const line of p.output) {
        if (!line.includes('"delivery attempt"')) continue;
        const entry = JSON.parse(line) as { delivery?: string };
        if (entry.delivery) ids.set(entry.delivery, (ids.get(entry.delivery) ?? 0) + 1);
      }
      return ids;
    };
    const running = (p: CliProcess) => p.output.some((l) => l.includes('"workers running"'));
    try {
      const slowHook = await stack.webhook({ url: slow.url, events: ["escalation.alert"] });
      const stuckHook = await stack.webhook({ url: stuck.url, events: ["escalation.alert"] });
      const w1 = startCli(["worker", "--only", "delivery"], env);
      procs.push(w1);
      const w2 = startCli(["worker", "--only", "delivery"], env);
      procs.push(w2);
      await waitFor("both workers running", () => running(w1) && running(w2), 60_000);

      const batch = await enqueueAlerts(stack, slowHook.id, 30);
      await waitFor("30 alerts delivered", () => allDelivered(stack, slowHook.id, 30), 120_000, 250);
      assert.ok(slowGauge.state.max <= CAP, `${slowGauge.state.max} requests open at once (cap ${CAP})`);
      const ids = new Set(batch.map((a) => a.id));
      const ofBatch = (p: CliProcess) => [...attempted(p).keys()].filter((id) => ids.has(id)).length;
      const [fromW1, fromW2] = [ofBatch(w1), ofBatch(w2)];
      assert.ok(fromW1 > 0 && fromW2 > 0, `both processes delivered (${fromW1} and ${fromW2})`);
      assert.equal(fromW1 + fromW2, 30, "each alert was attempted once, by one process");
      await assertAttemptsMatchRequests(stack, slowHook.id, slow);

      // Every slot of the second destination gets stuck; a process holds at most 2, so w1 holds at least one.
      const second = await enqueueAlerts(stack, stuckHook.id, 6);
      await waitFor("the cap's worth of requests open", () => stuckKeys.length === CAP, 60_000);
      const inflight = `${stack.config.queuePrefix}:dest:${stuckHook.id}:inflight`;
      assert.equal(await stack.rt.redis.zcard(inflight), CAP, "every slot is held");
      assert.equal(await w1.stop("SIGKILL"), null);

      // w1's slots are never given back; they lapse with their lease, and w2 delivers everything.
      await waitFor(
        "every alert delivered after the kill",
        () => allDelivered(stack, stuckHook.id, 6),
        150_000,
        250,
      );
      assert.equal(await w2.stop("SIGTERM"), 0);
      assert.ok(stuckGauge.state.max <= CAP, `${stuckGauge.state.max} requests open at once (cap ${CAP})`);
      const seen = keysSeen(stuck);
      for (const a of second) assert.ok((seen.get(a.key) ?? 0) >= 1, `${a.key} reached the receiver`);
      // What was stuck went out again with the same key: once cut or killed, once delivered.
      for (const key of stuckKeys) assert.equal(seen.get(key), 2, `requests for ${key}`);
      // w2 finished two attempts of each delivery it had stuck (cut, then delivered), one of those w1 had.
      const afterKill = attempted(w2);
      const killed = second.filter((a) => stuckKeys.includes(a.key) && afterKill.get(a.id) === 1);
      assert.ok(killed.length >= 1, "the killed worker held at least one slot");
    } finally {
      for (const p of procs) await p.stop("SIGKILL");
      await slow.close();
      await stuck.close();
      await stack.close();
    }
  });

  test("FLUSHALL while work is held back by an open breaker and a full cap: every delivery is delivered", async () => {
    const redis = await startPrivateRedis();
    const CAP = 2;
    const stack = await startStack({
      env: {
        REDIS_URL: redis.url,
        DESTINATION_MAX_IN_FLIGHT: String(CAP),
        BREAKER_FAILURE_THRESHOLD: "2",
        // Without the flush the breaker would hold its destination for ten minutes.
        BREAKER_COOLDOWN_MS: "600000",
        DELIVERY_RETRY_SCHEDULE: "1,1,1,1,1",
      },
    });
    let brokenAnswer = 503;
    const broken = await startReceiver({ behaviour: (_q, res) => res.writeHead(brokenAnswer).end() });
    const held: ServerResponse[] = [];
    let holding = true;
    const full = await startReceiver({
      behaviour: (_q, res) => {
        if (holding) return void held.push(res);
        res.writeHead(200).end();
      },
    });
    const admin = new Redis(redis.url);
    const guard = new DestinationGuard(stack.rt.redis, stack.config.queuePrefix);
    try {
      const brokenHook = await stack.webhook({ url: broken.url, events: ["escalation.alert"] });
      const fullHook = await stack.webhook({ url: full.url, events: ["escalation.alert"] });
      const failing = await enqueueAlerts(stack, brokenHook.id, 2);
      await waitFor("the breaker open", async () => (await guard.state(brokenHook.id)) === "open", 30_000);
      const behindBreaker = await enqueueAlerts(stack, brokenHook.id, 10);
      const behindCap = await enqueueAlerts(stack, fullHook.id, 10);
      await waitFor("the cap's worth of requests open", () => held.length === CAP, 30_000);
      const waiting = [
        ...behindBreaker,
        ...behindCap.filter((a) => !full.requests.some((q) => q.headers["idempotency-key"] === a.key)),
      ];
      assert.equal(waiting.length, 10 + 10 - CAP);
      await waitFor(
        "the rest held back in Redis",
        async () =>
          (
            await jobStates(
              stack,
              waiting.map((a) => a.id),
            )
          ).delayed === waiting.length,
        30_000,
      );
      const requestsBefore = broken.requests.length;
      const behindIds = new Set(waiting.map((a) => a.id));
      for (const row of [...(await rowsOf(stack, brokenHook.id)), ...(await rowsOf(stack, fullHook.id))]) {
        if (behindIds.has(row.id)) assert.equal(row.attemptCount, 0, `attempt_count of ${row.id} held back`);
      }

      assert.equal(await admin.flushall(), "OK");
      brokenAnswer = 200;
      holding = false;
      for (const res of held) res.writeHead(200).end();

      await waitFor(
        "every delivery delivered",
        async () =>
          (await allDelivered(stack, brokenHook.id, 12)) && (await allDelivered(stack, fullHook.id, 10)),
        90_000,
        250,
      );
      const brokenSeen = keysSeen(broken);
      for (const a of [...failing, ...behindBreaker]) assert.ok((brokenSeen.get(a.key) ?? 0) >= 1);
      const fullSeen = keysSeen(full);
      for (const a of behindCap) assert.equal(fullSeen.get(a.key), 1, `requests for ${a.key}`);
      // What waited behind the breaker went out only after the flush, once each.
      for (const a of behindBreaker) assert.equal(brokenSeen.get(a.key), 1, `requests for ${a.key}`);
      assert.ok(broken.requests.length > requestsBefore);
      await assertAttemptsMatchRequests(stack, brokenHook.id, broken);
      await assertAttemptsMatchRequests(stack, fullHook.id, full);
    } finally {
      admin.disconnect();
      await broken.close();
      await full.close();
      await stack.close();
      await redis.stop();
    }
  });
});
