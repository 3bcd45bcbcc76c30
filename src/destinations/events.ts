import { ALERT_EVENT } from "../delivery/payloads.ts";

/**
 * Every event type a destination can subscribe to. Adding one here makes it valid in the admin API and
 * reaches every destination subscribed with `["*"]`.
 */
export const EVENT_TYPES = [
  ALERT_EVENT,
  "test.webhook",
  "destination.failing",
  "destination.disabled",
  "destination.recovered",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** The subscription that means "all current and future event types"; it stands alone in a list. */
export const ALL_EVENTS = "*";

/** Whether a destination with these subscriptions receives `type`. */
export function subscribesTo(events: readonly string[], type: string): boolean {
  return events.includes(ALL_EVENTS) || events.includes(type);
}

/**
 * A destination's address as operational events show it to every subscribed destination: the scheme and host
 * only, path and query replaced by `/…` (a Slack-style URL carries its token in the path; a query may carry a
 * key). `mailto:` addresses become `mailto:…`.
 */
export function eventUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "…";
  }
  if (u.protocol === "http:" || u.protocol === "https:") return `${u.origin}/…`;
  return `${u.protocol}…`;
}
