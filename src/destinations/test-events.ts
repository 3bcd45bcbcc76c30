import type { NewDelivery } from "../delivery/outbox.ts";
import { ALERT_EVENT, alertBody, alertIdempotencyKey, eventEnvelope } from "../delivery/payloads.ts";
import { newId } from "../ids.ts";
import { type EventType, eventUrl } from "./events.ts";

export interface TestEventTarget {
  orgId: string;
  orgSlug: string;
  webhookId: string;
  webhookUrl: string;
  /** Base of `record.url` links (config.publicUrl, no trailing slash). */
  publicUrl: string;
}

/** Sample `data` of each envelope event, shaped like the real event so receivers can exercise their parsing. */
function sampleData(event: Exclude<EventType, typeof ALERT_EVENT>, t: TestEventTarget, now: Date) {
  const destination = { webhook_id: t.webhookId, url: eventUrl(t.webhookUrl) };
  const earlier = new Date(now.getTime() - 3_600_000).toISOString();
  switch (event) {
    case "test.webhook":
      return { ...destination, message: "This is a test event from Escalation Shield." };
    // The same fields as the real events (destinations/health.ts healthEventDeliveries).
    case "destination.failing":
      return { ...destination, failing_since: earlier, reason: "HTTP 503" };
    case "destination.disabled":
      return {
        ...destination,
        failing_since: earlier,
        reason: `disabled automatically: every attempt has failed since ${earlier} (last: HTTP 503)`,
      };
    case "destination.recovered":
      return { ...destination, failing_since: null, reason: null };
  }
}

/**
 * A test delivery of `event` to one destination, marked `"test": true`: a sample alert (fresh `aut_`/`rec_`
 * ids, so a receiver that dedupes never drops a test) or the event's envelope with sample data.
 */
export function testDelivery(event: EventType, t: TestEventTarget, now = new Date()): NewDelivery {
  if (event === ALERT_EVENT) {
    const automationId = newId("aut");
    const recordId = newId("rec");
    const payload = alertBody({
      automation_id: automationId,
      org_id: t.orgSlug,
      escalated_at: now.toISOString(),
      levels: {
        escalation_level: "high",
        emotional_intensity_level: "high",
        sentiment_shift: "sentiment degraded",
      },
      record: {
        id: recordId,
        url: `${t.publicUrl}/${t.orgSlug}/record/${recordId}`,
        source_url: null,
        content_excerpt: "This is a test alert from Escalation Shield. I have waited two weeks for a refund.",
        created_at: new Date(now.getTime() - 120_000).toISOString(),
        source: "EscalationShieldTest",
      },
      test: true,
    });
    return {
      orgId: t.orgId,
      webhookId: t.webhookId,
      eventType: ALERT_EVENT,
      idempotencyKey: alertIdempotencyKey(automationId, t.webhookId, recordId),
      payload,
    };
  }
  const envelope = eventEnvelope(event, { ...sampleData(event, t, now), test: true }, now);
  return {
    orgId: t.orgId,
    webhookId: t.webhookId,
    eventType: event,
    idempotencyKey: envelope.id,
    payload: JSON.stringify(envelope),
  };
}
