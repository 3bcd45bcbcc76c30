/** Longest a receiver's `Retry-After` can lengthen a wait to, in seconds. */
export const MAX_RETRY_AFTER_S = 3600;
/** Each wait is scaled by a random factor in [1 - JITTER, 1 + JITTER] so retries of one outage spread out. */
export const JITTER = 0.2;

/**
 * Milliseconds to wait after failed attempt number `attempt` of the current schedule (1-based: the first
 * attempt after the schedule began, see `schedule_start`). `schedule[i]` is the wait after attempt i+1, in
 * seconds; past its end the last wait repeats. A `Retry-After` from a 429 or 503 may lengthen the wait, up
 * to twice the scheduled one and at most {@link MAX_RETRY_AFTER_S}, and never shortens it: a receiver can
 * neither make a delivery give up sooner than its schedule would nor multiply its attempts.
 */
export function retryDelayMs(
  schedule: readonly number[],
  attempt: number,
  retryAfterS?: number,
  random: () => number = Math.random,
): number {
  const base = schedule[Math.min(Math.max(attempt, 1), schedule.length) - 1] ?? 0;
  const factor = 1 - JITTER + 2 * JITTER * random();
  const scheduled = Math.round(base * 1000 * factor);
  if (retryAfterS === undefined) return scheduled;
  const asked = Math.min(retryAfterS * 1000, 2 * scheduled, MAX_RETRY_AFTER_S * 1000);
  return Math.max(scheduled, Math.round(asked));
}

/** Parses `Retry-After` as delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}
