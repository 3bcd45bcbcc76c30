/** Longest wait a receiver's `Retry-After` can ask for, in seconds. */
export const MAX_RETRY_AFTER_S = 3600;
/** Shortest wait, so a `Retry-After: 0` cannot turn retries into a hot loop. */
export const MIN_RETRY_AFTER_S = 1;
/** Each wait is scaled by a random factor in [1 - JITTER, 1 + JITTER] so retries of one outage spread out. */
export const JITTER = 0.2;

/**
 * Milliseconds to wait after failed attempt number `attempt` (1-based). `schedule[i]` is the wait after
 * attempt i+1, in seconds. A `Retry-After` from a 429 or 503 replaces the scheduled wait, bounded to
 * [{@link MIN_RETRY_AFTER_S}, {@link MAX_RETRY_AFTER_S}].
 */
export function retryDelayMs(
  schedule: readonly number[],
  attempt: number,
  retryAfterS?: number,
  random: () => number = Math.random,
): number {
  if (retryAfterS !== undefined) {
    return Math.round(Math.min(MAX_RETRY_AFTER_S, Math.max(MIN_RETRY_AFTER_S, retryAfterS)) * 1000);
  }
  const base = schedule[Math.min(attempt, schedule.length) - 1] ?? 0;
  const factor = 1 - JITTER + 2 * JITTER * random();
  return Math.round(base * 1000 * factor);
}

/** Parses `Retry-After` as delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}
