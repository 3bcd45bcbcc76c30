import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { CAP_WAIT_MS, DestinationGuard } from "../src/delivery/isolation.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { deletePrefix } from "./helpers/redis.ts";

const REDIS = "redis://127.0.0.1:6379";

describe("per-destination cap and circuit breaker, shared through Redis", () => {
  const baseline = handleBaseline();
  const prefix = `es_t_${randomBytes(4).toString("hex")}`;
  const a = new Redis(REDIS);
  const b = new Redis(REDIS);
  // Two connections stand for two worker processes.
  const one = new DestinationGuard(a, prefix, {
    maxInFlight: 3,
    leaseMs: 15_000,
    failureThreshold: 3,
    cooldownMs: 30_000,
  });
  const two = new DestinationGuard(b, prefix, {
    maxInFlight: 3,
    leaseMs: 15_000,
    failureThreshold: 3,
    cooldownMs: 30_000,
  });
  after(async () => {
    await deletePrefix(REDIS, prefix);
    a.disconnect();
    b.disconnect();
    await assertNoOpenHandles(baseline);
  });

  test("the cap holds across processes and a freed slot admits the next attempt", async () => {
    const t = 1_000_000;
    assert.equal((await one.acquire("whe_cap", "d1", null, t)).admitted, true);
    assert.equal((await two.acquire("whe_cap", "d2", null, t)).admitted, true);
    assert.equal((await one.acquire("whe_cap", "d3", null, t)).admitted, true);
    // A refused job sleeps long (it is woken when a slot frees), so a full destination's backlog does not spin.
    const refused = await two.acquire("whe_cap", "d4", null, t, "job-d4");
    assert.deepEqual(refused, {
      admitted: false,
      retryAt: t + CAP_WAIT_MS,
      waitMs: CAP_WAIT_MS,
      reason: "cap",
    });
    const also = await two.acquire("whe_cap", "d6", null, t + 1, "job-d6");
    assert.equal(also.admitted, false);
    // Another destination is not affected.
    assert.equal((await two.acquire("whe_other", "d5", null, t)).admitted, true);
    // A freed slot wakes the job that has waited longest, and only as many as there are free slots.
    assert.deepEqual(await one.release("whe_cap", "d2", true, t + 10), {
      breaker: "closed",
      wake: ["job-d4"],
    });
    assert.equal((await two.acquire("whe_cap", "d4", null, t + 20, "job-d4")).admitted, true);
    // Admitted, it is no longer waiting: the next freed slot wakes the other one.
    assert.deepEqual(await one.release("whe_cap", "d1", true, t + 30), {
      breaker: "closed",
      wake: ["job-d6"],
    });
  });

  test("a per-destination override replaces the default cap", async () => {
    const t = 2_000_000;
    for (let i = 0; i < 5; i++) assert.equal((await one.acquire("whe_big", `d${i}`, 5, t)).admitted, true);
    assert.equal((await one.acquire("whe_big", "d5", 5, t)).admitted, false);
  });

  test("slots of a worker that died run out with their lease", async () => {
    const t = 3_000_000;
    for (const d of ["k1", "k2", "k3"])
      assert.equal((await one.acquire("whe_dead", d, null, t)).admitted, true);
    // The holder never releases (SIGKILL). Before the lease ends the destination is full…
    assert.equal((await two.acquire("whe_dead", "k4", null, t + 14_000)).admitted, false);
    // …after it, the slots are free again.
    assert.equal((await two.acquire("whe_dead", "k4", null, t + 15_001)).admitted, true);
  });

  test("the breaker opens after failures in a row, probes once after the cool-down, closes on success", async () => {
    const t = 4_000_000;
    const w = "whe_breaker";
    for (let i = 0; i < 3; i++) {
      assert.equal((await one.acquire(w, `f${i}`, null, t)).admitted, true);
    }
    assert.equal((await one.release(w, "f0", false, t + 1)).breaker, "closed");
    assert.equal((await one.release(w, "f1", false, t + 2)).breaker, "closed");
    assert.equal((await two.release(w, "f2", false, t + 3)).breaker, "open");
    assert.equal(await one.state(w, t + 4), "open");
    assert.deepEqual(await two.acquire(w, "x", null, t + 5, "job-x"), {
      admitted: false,
      retryAt: t + 3 + 30_000,
      waitMs: 30_000 - 2,
      reason: "open",
    });

    // Cool-down over: exactly one probe goes through.
    const after = t + 3 + 30_000 + 1;
    assert.equal(await one.state(w, after), "half-open");
    assert.deepEqual(await one.acquire(w, "probe1", null, after), { admitted: true, probe: true });
    assert.equal((await two.acquire(w, "other", null, after + 1)).admitted, false);
    // The probe fails: open again, for twice as long.
    assert.deepEqual(await one.release(w, "probe1", false, after + 100), { breaker: "open", wake: [] });
    const refused = await two.acquire(w, "y", null, after + 200);
    assert.equal(refused.admitted, false);
    assert.equal(refused.admitted === false && refused.retryAt, after + 100 + 60_000);

    // The next probe succeeds: closed, and everyone is admitted again.
    const later = after + 100 + 60_000 + 1;
    assert.deepEqual(await two.acquire(w, "probe2", null, later), { admitted: true, probe: true });
    // The probe's success closes the breaker and wakes the jobs that waited for it.
    assert.deepEqual(await two.release(w, "probe2", true, later + 5), { breaker: "closed", wake: ["job-x"] });
    assert.equal(await one.state(w, later + 6), "closed");
    assert.deepEqual(await one.acquire(w, "z", null, later + 7), { admitted: true, probe: false });
  });

  test("without a test clock, every guard uses Redis's clock, whatever its own says", async () => {
    const w = "whe_clock";
    for (let i = 0; i < 3; i++) {
      assert.equal((await one.acquire(w, `c${i}`, null)).admitted, true);
      await one.release(w, `c${i}`, false);
    }
    const [s] = await a.time();
    const refused = await two.acquire(w, "late", null);
    assert.equal(refused.admitted, false);
    if (refused.admitted) return;
    // The breaker's window is stamped in Redis time: it opens now and lasts the cool-down.
    assert.ok(Math.abs(refused.retryAt - (Number(s) * 1000 + 30_000)) < 2000, `retryAt ${refused.retryAt}`);
    assert.ok(refused.waitMs > 28_000 && refused.waitMs <= 30_000, `waitMs ${refused.waitMs}`);
    assert.equal(await two.state(w), "open");
  });

  test("a success resets the run of failures", async () => {
    const t = 5_000_000;
    const w = "whe_flaky";
    for (const [i, ok] of [false, false, true, false, false].entries()) {
      await one.acquire(w, `r${i}`, null, t + i);
      assert.equal((await one.release(w, `r${i}`, ok, t + i)).breaker, "closed");
    }
  });
});
