import type { NewDelivery } from "../src/delivery/outbox.ts";
import { ALERT_EVENT, alertBody, alertIdempotencyKey } from "../src/delivery/payloads.ts";
import { markedRecordId } from "./marker.ts";

const EXCERPTS = [
  "Third time I'm writing about the double charge on order 4471. Refund me by Friday or I file a chargeback.",
  "Your update wiped every invoice we had. I want to cancel and my lawyer will be in touch.",
  "Locked out of my account for four days and nobody answers. This is unacceptable.",
  "The refund you promised two weeks ago never arrived. I am reporting you to consumer protection.",
  "Delivery is ten days late, support keeps closing my ticket. Switching to a competitor today.",
];

/** A real alert body, as the evaluator writes it, for a record of this bench. */
export function benchAlertBody(orgSlug: string, automationId: string, recordId: string, seq: number): string {
  const now = new Date().toISOString();
  return alertBody({
    automation_id: automationId,
    org_id: orgSlug,
    escalated_at: now,
    levels: { escalation_level: "extreme", emotional_intensity_level: "high", sentiment_shift: null },
    record: {
      id: recordId,
      url: `http://localhost:3000/${orgSlug}/record/${recordId}`,
      source_url: `https://support.example.com/tickets/${10_000 + seq}`,
      content_excerpt: EXCERPTS[seq % EXCERPTS.length] as string,
      created_at: now,
      source: "ZendeskSupport",
    },
  });
}

export interface AlertTarget {
  orgId: string;
  orgSlug: string;
  automationId: string;
  webhookIds: string[];
}

/**
 * Alerts `from`..`from + count - 1`, spread round-robin over the destinations (so each of 10 gets exactly
 * 10 %), every record id stamped with `stampMs` for the receiver.
 */
export function alertDeliveries(
  target: AlertTarget,
  tag: string,
  from: number,
  count: number,
  stampMs: number,
): NewDelivery[] {
  const items: NewDelivery[] = [];
  for (let seq = from; seq < from + count; seq++) {
    const webhookId = target.webhookIds[seq % target.webhookIds.length] as string;
    const recordId = markedRecordId(tag, seq, stampMs);
    items.push({
      orgId: target.orgId,
      webhookId,
      eventType: ALERT_EVENT,
      automationId: target.automationId,
      recordId,
      idempotencyKey: alertIdempotencyKey(target.automationId, webhookId, recordId),
      payload: benchAlertBody(target.orgSlug, target.automationId, recordId, seq),
    });
  }
  return items;
}
