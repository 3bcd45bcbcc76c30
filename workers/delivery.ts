import { Worker } from "bullmq";
import { createMailer } from "../src/channels/mailer.ts";
import { CLAIM_LEASE_MS, runDeliveryJob } from "../src/delivery/attempt.ts";
import { ClaimBatcher } from "../src/delivery/claims.ts";
import { DestinationGuard } from "../src/delivery/isolation.ts";
import { deliveryOutbox } from "../src/delivery/queue.ts";
import { SecretProblems } from "../src/delivery/secret-problems.ts";
import { queueWaker } from "../src/delivery/waker.ts";
import { AttemptWriter } from "../src/delivery/writer.ts";
import { type DeliveryJob, QUEUES } from "../src/jobs.ts";
import type { Runtime } from "../src/runtime.ts";
import { OpenedSecrets } from "../src/secrets/cache.ts";
import { type RunningWorker, workerOptions } from "./options.ts";

/** Starts the delivery worker: one attempt per job, up to `DELIVERY_CONCURRENCY` in flight. */
export function startDeliveryWorker(rt: Runtime): RunningWorker {
  const log = rt.log.child({ worker: "delivery" });
  const { options, connection } = workerOptions(rt, rt.config.deliveryConcurrency);
  const writer = new AttemptWriter(rt.database.db, {
    onUnavailable: (err, outcomes) =>
      log.warn(
        { err: err instanceof Error ? err.message : String(err), outcomes },
        "attempt outcomes wait for Postgres; they are kept and written when it answers",
      ),
    onAvailable: () => log.info("attempt outcomes are written again"),
    onDropped: (err, delivery) => {
      rt.metrics.delivery.outcomeDropped();
      log.error(
        { err: err instanceof Error ? err.message : String(err), delivery },
        "attempt outcome could not be stored; the delivery is attempted again when its lease lapses",
      );
    },
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
    waker: queueWaker(rt.deliveryQueue, log),
    secretProblems: new SecretProblems(log),
    mailer: rt.config.smtp ? createMailer(rt.config.smtp) : undefined,
  };
  // SMTP_URL is checked once at start: a wrong host or password shows in the log now, not at the first alert.
  deps.mailer?.transport.verify().then(
    () => log.info("SMTP server reachable; email destinations can send"),
    (err: unknown) =>
      log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        "SMTP server check failed; email deliveries retry until it answers",
      ),
  );
  const worker = new Worker<DeliveryJob>(
    QUEUES.delivery,
    (job, token) => runDeliveryJob(deps, job, token),
    options,
  );
  worker.on("failed", (job, err) => log.error({ job: job?.id, err }, "delivery job error"));
  worker.on("error", (err) => log.error({ err }, "delivery worker error"));
  return {
    outbox: deliveryOutbox(rt.database.db, rt.deliveryQueue, rt.box.keyIds(), deps.guard),
    async close() {
      // With Redis away, BullMQ's close would wait for it to finish jobs it can never mark done; attempts
      // in flight then keep their Postgres lease and are attempted again once it lapses.
      await worker.close(!rt.dependencies.isUp("redis"));
      await writer.close();
      deps.mailer?.close();
      connection.disconnect();
    },
  };
}
