import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { attemptRows, deliveryRow, enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("every attempt ends within 5 s", { concurrency: true }, () => {
  let stack: Stack;
  const receivers: Receiver[] = [];
  const baseline = handleBaseline();
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await stack.close();
    await assertNoOpenHandles(baseline);
  });

  const cases = [
    {
      name: "a receiver that never answers",
      behaviour: () => {},
    },
    {
      name: "a receiver that sends headers and never finishes the body",
      behaviour: (_req: unknown, res: import("node:http").ServerResponse) => {
        res.writeHead(200, { "content-type": "text/plain", "content-length": "100000" });
        res.write("partial");
      },
    },
    {
      name: "a receiver that trickles its body one byte a second",
      behaviour: (_req: unknown, res: import("node:http").ServerResponse) => {
        res.writeHead(200, { "content-type": "text/plain" });
        const t = setInterval(() => {
          if (res.destroyed) clearInterval(t);
          else res.write("x");
        }, 1000);
        res.on("close", () => clearInterval(t));
      },
    },
  ];

  for (const c of cases) {
    test(`${c.name}: the attempt is cut between 5.0 and 6.5 s and retried`, async () => {
      const r = await startReceiver({ behaviour: c.behaviour });
      receivers.push(r);
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const [alert] = await enqueueAlerts(stack, wh.id);
      assert.ok(alert);
      const attempts = await waitFor(
        "two attempts",
        async () => {
          const a = await attemptRows(stack.rt.database.db, alert.id);
          return a.length >= 2 ? a : undefined;
        },
        30_000,
      );
      const first = attempts[0];
      assert.ok(first);
      assert.equal(first.errorKind, "timeout");
      assert.ok(
        first.durationMs >= 5000 && first.durationMs <= 6500,
        `first attempt took ${first.durationMs} ms`,
      );
      // The receiver saw the retry: same key, same bytes.
      assert.ok(r.requests.length >= 2);
      assert.equal(r.requests[0]?.body, r.requests[1]?.body);
      assert.equal(r.requests[0]?.headers["idempotency-key"], r.requests[1]?.headers["idempotency-key"]);
      const d = await deliveryRow(stack.rt.database.db, alert.id);
      assert.notEqual(d?.status, "delivered");
    });
  }
});
