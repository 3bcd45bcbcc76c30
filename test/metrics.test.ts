import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { createLogger } from "../src/log.ts";
import { openRuntime } from "../src/runtime.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { startApiStack } from "./helpers/api.ts";
import { testConfig, testEnv } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startCli } from "./helpers/processes.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

// prom-client writes NaN as `Nan`; Prometheus reads either (its float parser ignores case).
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.]+(e[+-]?[0-9]+)?|N[aA]N|Nan|[+-]Inf)$/;

/** Fails unless every line is a comment (`# HELP`/`# TYPE`) or a `name{labels} value` sample. */
function assertPrometheusText(text: string): void {
  const lines = text.split("\n").filter((l) => l !== "");
  assert.ok(lines.length > 0, "empty scrape");
  for (const line of lines) {
    if (line.startsWith("#")) assert.match(line, /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /, line);
    else assert.match(line, SAMPLE, `not a Prometheus sample: ${line}`);
  }
}

/** The value of the sample with exactly this name and these labels (in the registry's order), if present. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const body = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  const head = body === "" ? `${name} ` : `${name}{${body}} `;
  const line = text.split("\n").find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, "close");
  return port;
}

describe("Prometheus metrics", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("GET /metrics: attempts, held-back jobs, queues, held deliveries and unwell destinations", async () => {
    const s = await startApiStack({
      // A long retry keeps a retried delivery delayed while the test looks; one failure opens the breaker.
      env: { DELIVERY_RETRY_SCHEDULE: "60,60", BREAKER_FAILURE_THRESHOLD: "1", BREAKER_COOLDOWN_MS: "30000" },
    });
    const flaky = await startReceiver({
      behaviour: (_req, res, n) => res.writeHead(n === 0 ? 200 : 500).end(),
    });
    const broken = await startReceiver({ behaviour: (_req, res) => res.writeHead(503).end() });
    try {
      const scrape = async () => {
        const res = await s.api.get("/metrics", { token: null });
        assert.equal(res.status, 200, res.text);
        return res;
      };

      // Before any traffic: the exposition is valid and the queue gauges are there.
      const first = await scrape();
      assert.match(String(first.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
      assertPrometheusText(first.text);
      for (const queue of ["delivery", "evaluation"]) {
        for (const state of ["waiting", "delayed", "active", "prioritized"]) {
          assert.equal(
            sample(first.text, "escalation_shield_queue_jobs", { queue, state }),
            0,
            `${queue} ${state}`,
          );
        }
        assert.equal(sample(first.text, "escalation_shield_queue_lag_seconds", { queue }), 0);
      }
      assert.equal(sample(first.text, "escalation_shield_deliveries_held"), 0);
      assert.ok(sample(first.text, "process_cpu_user_seconds_total") !== undefined, "default metrics");

      // 200 then 500: one delivered (2xx), one to retry (5xx).
      const wh = await s.stack.webhook({ url: flaky.url, events: ["escalation.alert"] });
      await enqueueAlerts(s.stack, wh.id, 2);
      await waitFor("both attempts", () => flaky.requests.length >= 2);
      // The broken destination's first failure opens its breaker; its next job is held back.
      const bad = await s.stack.webhook({ url: broken.url, events: ["escalation.alert"] });
      await enqueueAlerts(s.stack, bad.id, 1);
      await waitFor("the broken destination's breaker to open", async () => {
        const { text } = await scrape();
        return sample(text, "escalation_shield_destination_breaker_open", { webhook_id: bad.id }) === 1;
      });
      await enqueueAlerts(s.stack, bad.id, 1);
      // A disabled destination: its delivery is held, not queued.
      const off = await s.stack.webhook({ url: flaky.url, events: ["escalation.alert"], enabled: false });
      await enqueueAlerts(s.stack, off.id, 1);

      let last = "";
      const text = await waitFor("counters and gauges to move", async () => {
        const { text } = await scrape();
        last = text;
        const ready =
          sample(text, "escalation_shield_delivery_attempts_total", { outcome: "delivered", kind: "2xx" }) ===
            1 &&
          sample(text, "escalation_shield_delivery_attempts_total", { outcome: "retry", kind: "5xx" }) ===
            2 &&
          (sample(text, "escalation_shield_deliveries_held_back_total", { reason: "open" }) ?? 0) >= 1 &&
          sample(text, "escalation_shield_destination_failing", { webhook_id: bad.id }) === 1 &&
          // The retry waits 60 s in delayed: one for the flaky destination's 500, one for the broken one's 503.
          (sample(text, "escalation_shield_queue_jobs", { queue: "delivery", state: "delayed" }) ?? 0) >= 2;
        return ready && text;
      }).catch((err: Error) => {
        const ours = last.split("\n").filter((l) => l.startsWith("escalation_shield_"));
        throw new Error(`${err.message}; last scrape:\n${ours.join("\n")}`);
      });
      assertPrometheusText(text);
      assert.equal(sample(text, "escalation_shield_delivery_attempt_duration_seconds_count"), 3);
      assert.equal(sample(text, "escalation_shield_deliveries_held"), 1);
      assert.equal(sample(text, "escalation_shield_destination_disabled", { webhook_id: off.id }), 1);
      assert.equal(sample(text, "escalation_shield_destination_disabled", { webhook_id: wh.id }), undefined);
      assert.equal(
        sample(text, "escalation_shield_metrics_scrape_errors_total", { source: "postgres" }),
        undefined,
      );
      const [held] = await s.stack.rt.database.db
        .select({ status: deliveries.status })
        .from(deliveries)
        .where(eq(deliveries.webhookId, off.id));
      assert.equal(held?.status, "held");

      // It is documented, without a key.
      const doc = await s.api.get("/docs/json", { token: null });
      const op = doc.json.paths["/metrics"]?.get;
      assert.ok(op, "GET /metrics is in the OpenAPI document");
      assert.match(op.description, /authentication/i);
      assert.ok(Object.keys(op.responses["200"].content).some((t: string) => t.startsWith("text/plain")));
    } finally {
      await flaky.close();
      await broken.close();
      await s.close();
    }
  });

  test("a scrape with Postgres and Redis unreachable still answers, and counts the failures", async () => {
    const config = testConfig(
      testEnv("postgres://postgres@127.0.0.1:1/none", { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
    );
    const rt = openRuntime(config, createLogger("silent"));
    // Without a listener BullMQ prints every refused connection to stderr; here they are expected.
    for (const q of [rt.deliveryQueue, rt.evaluationQueue]) q.on("error", () => {});
    try {
      const text = await rt.metrics.registry.metrics();
      assertPrometheusText(text);
      assert.ok(
        (sample(text, "escalation_shield_metrics_scrape_errors_total", { source: "postgres" }) ?? 0) >= 2,
      );
      assert.ok(
        (sample(text, "escalation_shield_metrics_scrape_errors_total", { source: "redis" }) ?? 0) >= 2,
      );
      // Skipped, not reported as zero.
      assert.equal(sample(text, "escalation_shield_deliveries_held"), undefined);
      assert.ok(!text.includes("escalation_shield_queue_jobs{"));
      // The counters fed by the delivery path are still there.
      assert.match(text, /# TYPE escalation_shield_delivery_attempts_total counter/);
    } finally {
      await rt.close();
    }
  });

  test("queue_lag_seconds is the age of the oldest waiting job, not the newest", async () => {
    const stack = await startStack({ worker: false });
    try {
      const wh = await stack.webhook({ url: "https://127.0.0.1:9/hook", events: ["escalation.alert"] });
      await enqueueAlerts(stack, wh.id, 1);
      await sleep(1200);
      await enqueueAlerts(stack, wh.id, 1);
      const text = await stack.rt.metrics.registry.metrics();
      assert.equal(sample(text, "escalation_shield_queue_jobs", { queue: "delivery", state: "waiting" }), 2);
      const lag = sample(text, "escalation_shield_queue_lag_seconds", { queue: "delivery" }) ?? 0;
      assert.ok(lag >= 1.1 && lag < 10, `lag ${lag}`);
    } finally {
      await stack.close();
    }
  });

  test("`worker` with METRICS_PORT serves /metrics and exits 0 on SIGTERM", async () => {
    const stack = await startStack({ worker: false });
    const r = await startReceiver();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/metrics`;
    try {
      const wh = await stack.webhook({ url: r.url, events: ["escalation.alert"] });
      const worker = startCli(["worker", "--only", "delivery"], { ...stack.env, METRICS_PORT: String(port) });
      let code: number | null;
      try {
        await enqueueAlerts(stack, wh.id, 1);
        await waitFor("the delivery", () => r.requests.length >= 1, 30_000);
        const text = await waitFor(
          "the worker's counter",
          async () => {
            const res = await fetch(url);
            const body = await res.text();
            return (
              res.status === 200 &&
              sample(body, "escalation_shield_delivery_attempts_total", {
                outcome: "delivered",
                kind: "2xx",
              }) === 1 &&
              body
            );
          },
          30_000,
          200,
        );
        assertPrometheusText(text);
        assert.match(text, /^escalation_shield_queue_jobs\{queue="delivery",state="waiting"\} /m);
        assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
      } finally {
        code = await worker.stop("SIGTERM");
      }
      assert.equal(code, 0, worker.output.join("\n"));
      await assert.rejects(fetch(url), "the metrics port is closed after exit");
    } finally {
      await r.close();
      await stack.close();
    }
  });
});
