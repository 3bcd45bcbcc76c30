/**
 * One clock: a delivery worker whose clock is 30 s ahead or behind (started under libfaketime) shares the
 * in-flight cap with a worker whose clock is right, sends each retry within a few seconds of its due time,
 * and never loops on it. Real worker processes, Postgres, Redis and an HTTPS receiver.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { after, describe, test } from "node:test";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { caFile } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type ReceivedRequest, startReceiver } from "./helpers/receiver.ts";
import { startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

const CLI = resolve("bin/escalation-shield.js");

/** libfaketime, as Debian's `faketime` package installs it (.ci/run installs it when missing). */
const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/**
 * `escalation-shield worker --only delivery` with its clock shifted by `offset` (e.g. `+30s`). The library
 * is preloaded into the worker itself rather than through the `faketime` wrapper, which would stand between
 * the test and the worker and not pass SIGTERM on.
 */
function skewedWorker(
  offset: string,
  env: Record<string, string>,
): { child: ChildProcess; output: string[]; closed: Promise<unknown> } {
  const child = spawn(process.execPath, [CLI, "worker", "--only", "delivery"], {
    env: {
      PATH: process.env.PATH ?? "",
      NODE_EXTRA_CA_CERTS: caFile(),
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME: offset,
      // Without this, libfaketime caches its offset file lookups; the offset is fixed here anyway.
      FAKETIME_NO_CACHE: "1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  for (const s of [child.stdout, child.stderr]) s?.on("data", (c: Buffer) => output.push(c.toString("utf8")));
  return { child, output, closed: once(child, "close") };
}

describe("workers whose clocks are off", () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  for (const offset of ["+30s", "-30s"]) {
    test(`a worker ${offset.startsWith("+") ? "30 s ahead" : "30 s behind"} keeps the cap and sends retries on time`, async () => {
      const CAP = 2;
      const env = { DESTINATION_MAX_IN_FLIGHT: String(CAP), DELIVERY_RETRY_SCHEDULE: "2,2" };
      // The worker under faketime makes the first attempts (so it is the one to set their retry times);
      // then a worker whose clock is right joins, and the two share the cap for the retries.
      const stack = await startStack({ env, worker: false });
      let open = 0;
      let most = 0;
      const seen = new Map<string, ReceivedRequest[]>();
      const r = await startReceiver({
        behaviour: (q, res) => {
          const key = String(q.headers["idempotency-key"]);
          const mine = seen.get(key) ?? [];
          mine.push(q);
          seen.set(key, mine);
          open++;
          most = Math.max(most, open);
          setTimeout(() => {
            open--;
            // Each delivery's first attempt fails, so each has one retry.
            res.writeHead(mine.length === 1 ? 500 : 200).end();
          }, 200);
        },
      });
      const worker = skewedWorker(offset, { ...stack.env, LOG_LEVEL: "info" });
      try {
        await waitFor("the skewed worker running", () => worker.output.join("").includes("workers running"));
        const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
        const alerts = await enqueueAlerts(stack, wh.id, 12);
        await waitFor("every first attempt made", () => alerts.every((a) => seen.has(a.key)), 20_000);
        stack.startWorker();
        await waitFor(
          "every delivery retried once",
          () => alerts.every((a) => (seen.get(a.key)?.length ?? 0) >= 2),
          45_000,
          100,
        ).catch((err: Error) => {
          const got = alerts.map((a) => seen.get(a.key)?.length ?? 0).join(",");
          throw new Error(`${err.message}; requests per delivery ${got}; worker: ${worker.output.join("")}`);
        });
        assert.ok(most <= CAP, `${most} requests open at once (cap ${CAP})`);
        for (const a of alerts) {
          const [first, second] = seen.get(a.key) ?? [];
          const gap = (second?.at ?? 0) - (first?.at ?? 0);
          // Due 2 s (×0.8–1.2) after the failure; then it may wait its turn behind the cap of 2 × 200 ms.
          assert.ok(gap >= 1500, `retry of ${a.id} ${gap} ms after the failure: early`);
          assert.ok(gap <= 9000, `retry of ${a.id} ${gap} ms after the failure: late`);
        }
        await waitFor("nothing more in flight", () => open === 0);
        for (const a of alerts) assert.equal(seen.get(a.key)?.length, 2, `requests for ${a.id}`);
        assert.ok(worker.child.exitCode === null, `the skewed worker is running: ${worker.output.join("")}`);
      } finally {
        if (worker.child.exitCode === null) worker.child.kill("SIGTERM");
        await worker.closed;
        await r.close();
        await stack.close();
      }
    });
  }
});
