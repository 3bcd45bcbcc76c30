import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { DestinationGuard } from "../src/delivery/isolation.ts";
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
    const refused = await two.acquire("whe_cap", "d4", null, t);
    // Full only just now: the refused job comes back after the shortest wait.
    assert.deepEqual(refused, { admitted: false, retryAt: t + 100, reason: "cap" });
    // Full for 4 s: waiting jobs sleep longer, so a hung destination's backlog does not spin.
    const later = await two.acquire("whe_cap", "d4", null, t + 4000);
    assert.deepEqual(later, { admitted: false, retryAt: t + 4000 + 2000, reason: "cap" });
    // Another destination is not affected.
    assert.equal((await two.acquire("whe_other", "d5", null, t)).admitted, true);
    await one.release("whe_cap", "d2", true, t + 10);
    assert.equal((await two.acquire("whe_cap", "d4", null, t + 20)).admitted, true);
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
    assert.equal(await one.release(w, "f0", false, t + 1), "closed");
    assert.equal(await one.release(w, "f1", false, t + 2), "closed");
    assert.equal(await two.release(w, "f2", false, t + 3), "open");
    assert.equal(await one.state(w, t + 4), "open");
    assert.deepEqual(await two.acquire(w, "x", null, t + 5), {
      admitted: false,
      retryAt: t + 3 + 30_000,
      reason: "open",
    });

    // Cool-down over: exactly one probe goes through.
    const after = t + 3 + 30_000 + 1;
    assert.equal(await one.state(w, after), "half-open");
    assert.deepEqual(await one.acquire(w, "probe1", null, after), { admitted: true, probe: true });
    assert.equal((await two.acquire(w, "other", null, after + 1)).admitted, false);
    // The probe fails: open again, for twice as long.
    assert.equal(await one.release(w, "probe1", false, after + 100), "open");
    const refused = await two.acquire(w, "y", null, after + 200);
    assert.equal(refused.admitted, false);
    assert.equal(refused.admitted === false && refused.retryAt, after + 100 + 60_000);

    // The next probe succeeds: closed, and everyone is admitted again.
    const later = after + 100 + 60_000 + 1;
    assert.deepEqual(await two.acquire(w, "probe2", null, later), { admitted: true, probe: true });
    assert.equal(await two.release(w, "probe2", true, later + 5), "closed");
    assert.equal(await one.state(w, later + 6), "closed");
    assert.deepEqual(await one.acquire(w, "z", null, later + 7), { admitted: true, probe: false });
  });

  test("a success resets the run of failures", async () => {
    const t = 5_000_000;
    const w = "whe_flaky";
    for (const [i, ok] of [false, false, true, false, false].entries()) {
      await one.acquire(w, `r${i}`, null, t + i);
      assert.equal(await one.release(w, `r${i}`, ok, t + i), "closed");
    }
  });
});
