import { Worker } from "bullmq";
import type { Analyzer } from "../src/analysis/analyzer.ts";
import { evaluateRecord } from "../src/automations/evaluate.ts";
import { evaluationOutbox } from "../src/automations/queue.ts";
import { queueDeliveries } from "../src/delivery/queue.ts";
import { type EvaluationJob, QUEUES } from "../src/jobs.ts";
import type { Runtime } from "../src/runtime.ts";
import { type RunningWorker, workerOptions } from "./options.ts";

/** Records evaluated at once per process; analysis is CPU work, so more would only queue on the event loop. */
const EVALUATOR_CONCURRENCY = 8;

/** Starts the automation evaluator: analyses each stored record and turns matches into deliveries. */
export function startEvaluatorWorker(rt: Runtime, analyzer: Analyzer): RunningWorker {
  const log = rt.log.child({ worker: "evaluator" });
  const { options, connection } = workerOptions(rt, EVALUATOR_CONCURRENCY);
  const deps = {
    db: rt.database.db,
    analyzer,
    publicUrl: rt.config.publicUrl,
    maxAttempts: rt.config.retrySchedule.length + 1,
  };
  const worker = new Worker<EvaluationJob>(
    QUEUES.evaluation,
    async (job) => {
      const outcome = await evaluateRecord(deps, job.data.r, job.data.v);
      // After the commit: if this process dies first, the delivery sweeper queues the pending rows.
      await queueDeliveries(rt.deliveryQueue, outcome.pending);
      log.debug(
        { record: job.data.r, version: job.data.v, fired: outcome.fired, skipped: outcome.skipped },
        "evaluated",
      );
      return outcome.skipped ?? `fired ${outcome.fired}`;
    },
    options,
  );
  // The whole error, cause included: that is how the log tells an outage (logged once by the monitor) from a fault.
  worker.on("failed", (job, err) => log.error({ job: job?.id, err }, "evaluation job error"));
  worker.on("error", (err) => log.error({ err }, "evaluator worker error"));
  return {
    outbox: evaluationOutbox(rt.database.db, rt.evaluationQueue),
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}
