import { newId } from "../ids.ts";

export type Level = "low" | "medium" | "high" | "extreme";
export type SentimentShift = "sentiment degraded" | "sentiment improved" | "no change";

/** The `escalation.alert` body (seed 001). Keys are in the documented order; the body is compact JSON. */
export interface AlertPayload {
  automation_id: string;
  org_id: string;
  escalated_at: string;
  levels: {
    escalation_level: Level;
    emotional_intensity_level: Level;
    sentiment_shift: SentimentShift | null;
  };
  record: {
    id: string;
    url: string;
    source_url: string | null;
    content_excerpt: string;
    created_at: string;
    source: string;
  };
  /** Present, and true, only on test events. */
  test?: true;
}

export const ALERT_EVENT = "escalation.alert";

/** `<automation_id>:<webhook_id>:<record_id>`: what receivers dedupe an alert by. */
export function alertIdempotencyKey(automationId: string, webhookId: string, recordId: string): string {
  return `${automationId}:${webhookId}:${recordId}`;
}

/** Serializes an alert with its keys in the documented order, whatever order the object was built in. */
export function alertBody(p: AlertPayload): string {
  const ordered: AlertPayload = {
    automation_id: p.automation_id,
    org_id: p.org_id,
    escalated_at: p.escalated_at,
    levels: {
      escalation_level: p.levels.escalation_level,
      emotional_intensity_level: p.levels.emotional_intensity_level,
      sentiment_shift: p.levels.sentiment_shift,
    },
    record: {
      id: p.record.id,
      url: p.record.url,
      source_url: p.record.source_url,
      content_excerpt: p.record.content_excerpt,
      created_at: p.record.created_at,
      source: p.record.source,
    },
    ...(p.test ? { test: true as const } : {}),
  };
  return JSON.stringify(ordered);
}

/** The seed-003 envelope every other event type travels in; its id is the event's Idempotency-Key. */
export interface EventEnvelope {
  id: string;
  event: string;
  created_at: string;
  data: Record<string, unknown>;
}

export function eventEnvelope(event: string, data: Record<string, unknown>, now = new Date()): EventEnvelope {
  return { id: newId("evt"), event, created_at: now.toISOString(), data };
}
