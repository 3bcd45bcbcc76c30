/**
 * How a latency is measured across processes: the enqueuer writes its wall-clock time (in µs) into the
 * record id, which the product carries in the `Idempotency-Key` header (`<automation>:<webhook>:<record>`);
 * the receiver reads it back from that header on arrival. The header is the marker because the product
 * sends no per-delivery header of the bench's choosing, and reading it avoids parsing every body.
 */

/**
 * Wall-clock milliseconds with sub-millisecond precision. `timeOrigin` is taken from the system clock when
 * the process starts, so values from two processes on one machine can be subtracted.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A record id carrying `stampMs`; `tag` keeps runs and parts apart, `seq` keeps ids unique. */
export function markedRecordId(tag: string, seq: number, stampMs: number): string {
  return `rec_${tag}${seq.toString(36)}_${Math.round(stampMs * 1000)}`;
}

const STAMP = /_(\d{15,17})$/;

/** The enqueue time written by {@link markedRecordId}, in ms, or undefined for an unmarked key. */
export function stampOf(idempotencyKey: string): number | undefined {
  const m = STAMP.exec(idempotencyKey);
  return m?.[1] === undefined ? undefined : Number(m[1]) / 1000;
}
