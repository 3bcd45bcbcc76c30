/**
 * Every BullMQ queue the product uses and the data its jobs carry. Job data stays tiny on purpose:
 * Postgres holds the payloads, so Redis memory per pending job stays small and a flushed Redis
 * can be rebuilt from the database.
 */
export const QUEUES = {
  delivery: "delivery",
  evaluation: "evaluation",
} as const;

/** One delivery attempt chain. The job id is `<deliveryId>.<generation>`. */
export interface DeliveryJob {
  /** Delivery id (`del_…`). */
  d: string;
  /** Delivery generation; a job whose generation is behind the row's does nothing. */
  g: number;
  /** Destination id (`whe_…`), so the in-flight cap is checked before any database work. */
  w: string;
}

/** Evaluate one stored record against the organization's automations. Job id `<recordId>.<version>`. */
export interface EvaluationJob {
  /** Record id (`rec_…`). */
  r: string;
  /** Record version; bumped when a mutable record is replaced. */
  v: number;
}

export function deliveryJobId(deliveryId: string, generation: number): string {
  return `${deliveryId}.${generation}`;
}

export function evaluationJobId(recordId: string, version: number): string {
  return `${recordId}.${version}`;
}
