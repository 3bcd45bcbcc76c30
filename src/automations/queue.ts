import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Db } from "../db/client.ts";
import { listUnevaluated, type StoredRef } from "../ingestion/store.ts";
import { type EvaluationJob, evaluationJobId, QUEUES } from "../jobs.ts";
import type { OutboxRef, OutboxSource } from "../queue/sweeper.ts";

export type EvaluationQueue = Queue<EvaluationJob>;

const EVALUATION_JOB_NAME = "evaluate";

/** As for deliveries: Postgres says what needs evaluating, so finished jobs are dropped. */
export function openEvaluationQueue(connection: Redis, prefix: string): EvaluationQueue {
  return new Queue<EvaluationJob>(QUEUES.evaluation, {
    connection,
    prefix,
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 20,
      backoff: { type: "custom" },
    },
  });
}

/** Queues the evaluation of stored or replaced records; call after the records' transaction commits. */
export async function queueEvaluations(queue: EvaluationQueue, refs: StoredRef[]): Promise<void> {
  if (refs.length === 0) return;
  await queue.addBulk(
    refs.map((r) => ({
      name: EVALUATION_JOB_NAME,
      data: { r: r.id, v: r.version },
      opts: { jobId: evaluationJobId(r.id, r.version) },
    })),
  );
}

/** Records not yet evaluated at their current version, as the sweeper sees them. */
export function evaluationOutbox(db: Db, queue: EvaluationQueue): OutboxSource {
  return {
    name: "evaluations",
    queue,
    async list(after, limit, overdueMs): Promise<OutboxRef[]> {
      const rows = await listUnevaluated(db, after, limit, overdueMs);
      return rows.map((r) => ({
        id: r.id,
        jobId: evaluationJobId(r.id, r.version),
        name: EVALUATION_JOB_NAME,
        data: { r: r.id, v: r.version } satisfies EvaluationJob,
        // An unevaluated record is due at once.
        delayMs: 0,
        cursor: r.id,
      }));
    },
  };
}
