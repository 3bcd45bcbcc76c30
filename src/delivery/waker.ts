import { Job, type Queue } from "bullmq";
import type { Logger } from "../log.ts";

/**
 * Wakes delivery jobs that sleep in BullMQ's delayed set waiting for their destination (see
 * DestinationGuard): promoting a job makes it run now instead of at the end of its fallback timer.
 */
export interface JobWaker {
  /** Starts waking the jobs; does not wait for it. */
  wake(jobIds: string[]): void;
}

/**
 * BullMQ's answer when the job is no longer delayed: it woke by its own timer, was woken by another worker,
 * or is gone. Nothing is left to do for it then.
 */
const NOT_DELAYED = /not in the delayed state|Missing key|does not exist/i;

/** A waker that promotes jobs of `queue`, logging (at warn) any failure other than the job having moved on. */
export function queueWaker(queue: Queue, log: Logger): JobWaker {
  const promote = async (id: string) => {
    try {
      const job = await Job.fromId(queue, id);
      await job?.promote();
    } catch (err) {
      if (err instanceof Error && NOT_DELAYED.test(err.message)) return;
      log.warn(
        { job: id, err: err instanceof Error ? err.message : String(err) },
        "could not wake a waiting job",
      );
    }
  };
  return {
    wake(jobIds) {
      for (const id of jobIds) void promote(id);
    },
  };
}
