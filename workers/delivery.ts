import { UnrecoverableError, Worker } from "bullmq";
import { CLAIM_LEASE_MS, runDeliveryJob } from "../src/delivery/attempt.ts";
import { ClaimBatcher } from "../src/delivery/claims.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { deliveryOutbox } from "../src/delivery/queue.ts";
import { AttemptWriter } from "../src/delivery/writer.ts";
import { DecryptError } from "../src/errors.ts";
import { type DeliveryJob, QUEUES } from "../src/jobs.ts";
import type { Runtime } from "../src/runtime.ts";
import { OpenedSecrets } from "../src/secrets/cache.ts";
import { type RunningWorker, workerOptions } from "./options.ts";

/** Starts the delivery worker: one attempt per job, up to `DELIVERY_CONCURRENCY` in flight. */
export function startDeliveryWorker(rt: Runtime): RunningWorker {
  const log = rt.log.child({ worker: "delivery" });
  const { options, connection } = workerOptions(rt, rt.config.deliveryConcurrency);
  const writer = new AttemptWriter(rt.database.db, {
    onError: (err, lost) =>
      log.error(
        { err: (err as Error).message, outcomes: lost },
        "attempt outcomes not written; their deliveries are attempted again when their lease lapses",
      ),
  });
  const deps = {
    db: rt.database.db,
    claims: new ClaimBatcher(rt.database.db, CLAIM_LEASE_MS),
    secrets: new OpenedSecrets(rt.box),
    http: rt.http,
    log,
    guard: new DestinationGuard(rt.redis, rt.config.queuePrefix, {
      maxInFlight: rt.config.destinationMaxInFlight,
      failureThreshold: rt.config.breakerFailureThreshold,
      cooldownMs: rt.config.breakerCooldownMs,
    }),
    writer,
    deliveryQueue: rt.deliveryQueue,
    retrySchedule: rt.config.retrySchedule,
    disableAfterMs: rt.config.disableAfterMs,
    metrics: rt.metrics.delivery,
  };
  const worker = new Worker<DeliveryJob>(
    QUEUES.delivery,
    async (job, token) => {
      try {
        return await runDeliveryJob(deps, job, token);
      } catch (err) {
        // A secret that does not open will not open on a quick retry either; the sweeper picks the delivery
        // up again after its claim lapses, which is when a corrected SECRETS_KEY takes effect.
        if (err instanceof DecryptError) throw new UnrecoverableError(err.message);
        throw err;
      }
    },
    options,
  );
  worker.on("failed", (job, err) => log.error({ job: job?.id, err: err.message }, "delivery job error"));
  worker.on("error", (err) => log.error({ err: err.message }, "delivery worker error"));
  return {
    outbox: deliveryOutbox(rt.database.db, rt.deliveryQueue),
    async close() {
      await worker.close();
      await writer.close();
      connection.disconnect();
    },
  };
}
