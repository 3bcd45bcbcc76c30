import type { Analyzer } from "../src/analysis/analyzer.ts";
import { Sweeper } from "../src/queue/sweeper.ts";
import { Pruner } from "../src/retention/pruner.ts";
import type { Runtime } from "../src/runtime.ts";
import { startDeliveryWorker } from "./delivery.ts";
import { startEvaluatorWorker } from "./evaluator.ts";
import type { RunningWorker } from "./options.ts";

export type WorkerName = "delivery" | "evaluator";

/**
 * Starts the named workers (default all), one outbox sweeper for the queues they drain, and the retention
 * pruner. Closing stops the pruner and the sweeper first, then each worker, which lets jobs in flight finish.
 */
export function startWorkers(
  rt: Runtime,
  options: { only?: WorkerName; analyzer?: Analyzer } = {},
): { close(): Promise<void> } {
  const { only, analyzer } = options;
  const workers: RunningWorker[] = [];
  if (only === undefined || only === "evaluator") {
    if (!analyzer) throw new Error("the evaluator needs an analyzer");
    workers.push(startEvaluatorWorker(rt, analyzer));
  }
  if (only === undefined || only === "delivery") workers.push(startDeliveryWorker(rt));
  const sweeper = new Sweeper(
    rt.redis,
    workers.map((w) => w.outbox),
    rt.log.child({ component: "sweeper" }),
    rt.config.sweepIntervalMs,
  );
  sweeper.start();
  const pruner = new Pruner(rt.database.db, rt.log.child({ component: "pruner" }), {
    databaseUrl: rt.config.databaseUrl,
    deliveryRetentionMs: rt.config.deliveryRetentionMs,
    recordRetentionMs: rt.config.recordRetentionMs,
    auditRetentionMs: rt.config.auditRetentionMs,
    intervalMs: rt.config.pruneIntervalMs,
  });
  pruner.start();
  return {
    async close() {
      await pruner.stop();
      await sweeper.stop();
      for (const w of workers) await w.close();
    },
  };
}
