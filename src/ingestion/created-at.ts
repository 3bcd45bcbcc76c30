import { invalid, kindOf, missing, quote, type RecordContext } from "./issues.ts";
import { isAbsent } from "./read.ts";

/** 2000-01-01T00:00:00Z: seed 000 rejects anything earlier as likely misconfigured. */
const EARLIEST_SECONDS = 946_684_800;
/** Senders' clocks run a little ahead of ours; a minute of skew is not "in the future". */
const CLOCK_SKEW_SECONDS = 60;
/** 13-digit values are milliseconds (seed 000); this is the smallest and the first too large. */
const MIN_MILLIS = 1_000_000_000_000;
const MAX_MILLIS = 10_000_000_000_000;

/**
 * Reads `createdAt` (Unix seconds, or 13-digit milliseconds which are floored to seconds) and checks it
 * lies between 2000-01-01 and `now` plus a minute. Returns the time, or undefined after reporting.
 */
export function readCreatedAt(ctx: RecordContext, value: unknown, path: string, now: Date): Date | undefined {
  if (isAbsent(value)) {
    missing(ctx, path, "createdAt is required (Unix epoch seconds)");
    return undefined;
  }
  const seconds = toSeconds(ctx, value, path);
  if (seconds === undefined) return undefined;
  if (seconds < EARLIEST_SECONDS) {
    invalid(ctx, path, `createdAt must not be before 2000-01-01T00:00:00Z (got ${value})`);
    return undefined;
  }
  const latest = Math.floor(now.getTime() / 1000) + CLOCK_SKEW_SECONDS;
  if (seconds > latest) {
    invalid(
      ctx,
      path,
      `createdAt must not be in the future (got ${value}, now is ${Math.floor(now.getTime() / 1000)})`,
    );
    return undefined;
  }
  return new Date(seconds * 1000);
}

function toSeconds(ctx: RecordContext, value: unknown, path: string): number | undefined {
  if (typeof value === "string") {
    invalid(
      ctx,
      path,
      `createdAt must be a Unix epoch integer in seconds, not a string (got ${quote(value)})`,
    );
    return undefined;
  }
  if (typeof value !== "number") {
    invalid(ctx, path, `createdAt must be a Unix epoch integer in seconds (got ${kindOf(value)})`);
    return undefined;
  }
  if (!Number.isSafeInteger(value)) {
    invalid(ctx, path, `createdAt must be a whole number of seconds (got ${value})`);
    return undefined;
  }
  if (value >= MAX_MILLIS) {
    invalid(ctx, path, `createdAt has more than 13 digits; send Unix seconds (got ${value})`);
    return undefined;
  }
  return value >= MIN_MILLIS ? Math.floor(value / 1000) : value;
}
