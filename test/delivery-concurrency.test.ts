import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eq } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type Receiver, startReceiver } from "./helpers/receiver.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

describe("one worker process keeps hundreds of deliveries in flight", () => {
  let stack: Stack;
  const slow: Receiver[] = [];
  let fast: Receiver;
  let open = 0;
  let maxOpen = 0;
  const baseline = handleBaseline();
  before(async () => {
    // The per-destination cap (default 16) is what isolates destinations; here it is raised to show the
    // process itself holds hundreds of attempts.
    stack = await startStack({ env: { DELIVERY_CONCURRENCY: "300", DESTINATION_MAX_IN_FLIGHT: "60" } });
    // Five slow destinations: the outbound client caps sockets per origin (64), not per process.
    for (let i = 0; i < 5; i++) {
      slow.push(
        await startReceiver({
          behaviour: (_req, res) => {
            open++;
            maxOpen = Math.max(maxOpen, open);
            // Long enough for the whole backlog to be claimed and open before the first answers, short
            // enough to stay well inside the 5 s limit on a machine that other test files load.
            setTimeout(() => {
              open--;
              res.writeHead(200).end();
            }, 3000);
          },
        }),
      );
    }
    fast = await startReceiver();
  });
  after(async () => {
    for (const r of slow) await r.close();
    await fast.close();
    await stack.close();
    await assertNoOpenHandles(baseline);
  });

  test("a slow receiver holds many attempts open at once and does not stall other work", async () => {
    const slowHooks = await Promise.all(
      slow.map((r) => stack.webhook({ url: r.url, events: ["escalation.alert"] })),
    );
    const fastHook = await stack.webhook({ url: fast.url, events: ["escalation.alert"] });
    for (const h of slowHooks) await enqueueAlerts(stack, h.id, 50);
    await waitFor("slow requests open", () => open >= 100, 30_000);
    // While the slow receiver holds its requests, a delivery to another destination still goes out.
    await enqueueAlerts(stack, fastHook.id, 1);
    await waitFor("fast delivery", () => fast.requests.length === 1, 10_000);
    assert.ok(open > 0, "the fast delivery went out while slow attempts were still open");
    await waitFor(
      "all slow deliveries",
      async () => {
        const rows = await stack.rt.database.db
          .select({ status: deliveries.status })
          .from(deliveries)
          .where(eq(deliveries.orgId, stack.org.id));
        return rows.length === 251 && rows.every((r) => r.status === "delivered");
      },
      60_000,
      250,
    );
    assert.ok(maxOpen >= 200, `at most ${maxOpen} attempts were open at once`);
  });
});
