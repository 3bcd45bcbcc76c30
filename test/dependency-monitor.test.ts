/**
 * The dependency monitor tells an outage from a slow answer: Postgres behind a TCP proxy of the test's own
 * that stalls for one probe's worth of time is not reported down (a loaded machine does that), one that stays
 * silent for two probes in a row is, and one that refuses connections is at once. Real Postgres, a real proxy.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { createLogger } from "../src/log.ts";
import { DependencyMonitor, PROBE_TIMEOUT_MS } from "../src/runtime.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startProxy } from "./helpers/proxy.ts";
import { memorySink } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("dependency monitor", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("one slow probe is not an outage; two in a row are; a refused connection is at once", async () => {
    const proxy = await startProxy("127.0.0.1:5432");
    const sql = postgres(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, {
      max: 1,
      connect_timeout: 30,
      onnotice: () => {},
    });
    const { logs, sink } = memorySink();
    const monitor = new DependencyMonitor(createLogger("info", sink), {
      postgres: () => sql`select 1`,
      redis: async () => "PONG",
    });
    const states = () =>
      logs.map((l) => JSON.parse(l) as { state?: string }).flatMap((l) => (l.state ? [l.state] : []));
    try {
      monitor.start();
      await monitor.check();
      assert.deepEqual(states(), []);

      // Silent for a little longer than one probe's limit, then answering again.
      proxy.stall();
      const slow = monitor.check();
      await sleep(PROBE_TIMEOUT_MS + 300);
      proxy.resume();
      await slow;
      await monitor.check();
      assert.equal(monitor.isUp("postgres"), true);
      assert.deepEqual(states(), [], "a slow answer is not logged as an outage");

      // Silent for two probes in a row: down, and up again once it answers.
      proxy.stall();
      await monitor.check();
      await monitor.check();
      assert.equal(monitor.isUp("postgres"), false);
      assert.deepEqual(states(), ["down"]);
      proxy.resume();
      await waitFor("up again", () => monitor.isUp("postgres"), 15_000);
      assert.deepEqual(states(), ["down", "up"]);

      // Refused: down at the first probe.
      proxy.cut();
      await proxy.refuse();
      await monitor.check();
      assert.equal(monitor.isUp("postgres"), false);
      assert.deepEqual(states(), ["down", "up", "down"]);
      await proxy.accept();
      await waitFor("up after the refusal", () => monitor.isUp("postgres"), 15_000);
    } finally {
      monitor.stop();
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });
});
