import { asc, eq } from "drizzle-orm";
import type { Db } from "../../src/db/client.ts";
import { deliveries, deliveryAttempts } from "../../src/db/schema.ts";
import { enqueueDeliveries } from "../../src/delivery/enqueue.ts";
import { ALERT_EVENT, alertBody, alertIdempotencyKey } from "../../src/delivery/payloads.ts";
import { newId } from "../../src/ids.ts";
import type { Stack } from "./stack.ts";

/** A sample alert body as the evaluator would write it. */
export function sampleAlert(orgSlug: string, automationId: string, recordId: string): string {
  return alertBody({
    automation_id: automationId,
    org_id: orgSlug,
    escalated_at: "2026-06-27T12:00:00.000Z",
    levels: {
      escalation_level: "extreme",
      emotional_intensity_level: "high",
      sentiment_shift: "sentiment degraded",
    },
    record: {
      id: recordId,
      url: `http://localhost:3000/${orgSlug}/record/${recordId}`,
      source_url: "https://support.example.com/tickets/12345",
      content_excerpt: "I have asked three times. Cancel my account and refund me or I go to my lawyer.",
      created_at: "2026-06-27T11:58:00.000Z",
      source: "ZendeskSupport",
    },
  });
}

/** Enqueues `count` alerts to one destination through the product's enqueue function; returns their ids. */
export async function enqueueAlerts(
  stack: Stack,
  webhookId: string,
  count = 1,
): Promise<{ id: string; key: string; body: string }[]> {
  const automationId = newId("aut");
  const items = Array.from({ length: count }, () => {
    const recordId = newId("rec");
    return {
      orgId: stack.org.id,
      webhookId,
      eventType: ALERT_EVENT,
      automationId,
      recordId,
      idempotencyKey: alertIdempotencyKey(automationId, webhookId, recordId),
      payload: sampleAlert(stack.org.slug, automationId, recordId),
    };
  });
  await enqueueDeliveries(
    stack.rt.database.db,
    stack.rt.deliveryQueue,
    items,
    stack.config.retrySchedule.length + 1,
  );
  const byKey = new Map(items.map((i) => [i.idempotencyKey, i]));
  const rows = await stack.rt.database.db
    .select({ id: deliveries.id, key: deliveries.idempotencyKey })
    .from(deliveries)
    .where(eq(deliveries.webhookId, webhookId));
  return rows
    .filter((r) => byKey.has(r.key))
    .map((r) => ({ id: r.id, key: r.key, body: byKey.get(r.key)?.payload ?? "" }));
}

export async function deliveryRow(db: Db, id: string) {
  const [row] = await db.select().from(deliveries).where(eq(deliveries.id, id));
  return row;
}

export async function attemptRows(db: Db, deliveryId: string) {
  return db
    .select()
    .from(deliveryAttempts)
    .where(eq(deliveryAttempts.deliveryId, deliveryId))
    .orderBy(asc(deliveryAttempts.attemptNumber));
}
