import { and, asc, eq, gte, isNull, lte, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { deliveries, webhooks } from "../db/schema.ts";
import {
  inBatch,
  type NewDelivery,
  type QueuedRef,
  queuedRefColumns,
  type WalkCursor,
  walkAfter,
  walkCursor,
} from "../delivery/outbox.ts";
import { eventEnvelope } from "../delivery/payloads.ts";
import { eventUrl, subscribesTo } from "./events.ts";
import { notDeleted } from "./store.ts";

export type HealthEvent = "destination.failing" | "destination.disabled" | "destination.recovered";

/** What a destination's health looks like before an attempt's outcome is applied. */
export interface HealthBefore {
  webhookId: string;
  orgId: string;
  url: string;
  failingSince: Date | null;
}

/**
 * Whether an outcome can change a destination's health at all. Most attempts cannot (a success of a
 * healthy destination, a failure of one already failing but not yet for long), and those skip the database.
 */
export function mayChangeHealth(
  before: HealthBefore,
  ok: boolean,
  disableAfterMs: number,
  now = Date.now(),
): boolean {
  if (ok) return before.failingSince !== null;
  return before.failingSince === null || now - before.failingSince.getTime() >= disableAfterMs;
}

/**
 * Endpoint health. A destination is "failing" from its first failed attempt after a success; once it has
 * been failing for `disableAfterMs` (default 5 days, like the well-known services) it is disabled with a
 * stored reason, and what is queued for it is held until an admin enables it again. Writes happen only at
 * the transitions, so a healthy destination costs nothing per attempt.
 * Returns the operational event the transition raises, if any.
 */
export async function applyOutcome(
  db: Executor,
  before: HealthBefore,
  ok: boolean,
  lastError: string | null,
  disableAfterMs: number,
  now = new Date(),
): Promise<{ event: HealthEvent; reason: string | null } | undefined> {
  if (ok) {
    if (before.failingSince === null) return undefined;
    const rows = await db
      .update(webhooks)
      .set({ failingSince: null })
      .where(and(eq(webhooks.id, before.webhookId), sql`${webhooks.failingSince} is not null`))
      .returning({ id: webhooks.id });
    return rows.length > 0 ? { event: "destination.recovered", reason: null } : undefined;
  }
  if (before.failingSince === null) {
    const rows = await db
      .update(webhooks)
      .set({ failingSince: now })
      .where(and(eq(webhooks.id, before.webhookId), isNull(webhooks.failingSince)))
      .returning({ id: webhooks.id });
    return rows.length > 0 ? { event: "destination.failing", reason: lastError } : undefined;
  }
  if (now.getTime() - before.failingSince.getTime() < disableAfterMs) return undefined;
  const reason = `disabled automatically: every attempt has failed since ${before.failingSince.toISOString()}${
    lastError ? ` (last: ${lastError})` : ""
  }`;
  const rows = await db
    .update(webhooks)
    .set({ enabled: false, disabledReason: reason, updatedAt: now })
    .where(and(eq(webhooks.id, before.webhookId), eq(webhooks.enabled, true)))
    .returning({ id: webhooks.id });
  if (rows.length === 0) return undefined;
  // Its backlog is held after the commit, a batch at a time (holdAllPending): nothing is claimed for a
  // disabled destination meanwhile.
  return { event: "destination.disabled", reason };
}

/**
 * The deliveries of an operational event: one envelope per other destination of the organization that
 * subscribes to it. The destination the event is about is left out: it is the one that is not answering.
 * Their Idempotency-Key is the event id.
 */
export async function healthEventDeliveries(
  db: Executor,
  before: HealthBefore,
  event: HealthEvent,
  reason: string | null,
  now = new Date(),
): Promise<NewDelivery[]> {
  const targets = await db
    .select({ id: webhooks.id, events: webhooks.events })
    .from(webhooks)
    .where(and(eq(webhooks.orgId, before.orgId), notDeleted));
  return targets
    .filter((t) => t.id !== before.webhookId && subscribesTo(t.events, event))
    .map((t) => {
      const envelope = eventEnvelope(
        event,
        {
          webhook_id: before.webhookId,
          url: eventUrl(before.url),
          failing_since:
            event === "destination.recovered" ? null : (before.failingSince ?? now).toISOString(),
          reason,
        },
        now,
      );
      return {
        orgId: before.orgId,
        webhookId: t.id,
        eventType: event,
        idempotencyKey: envelope.id,
        payload: JSON.stringify(envelope),
      };
    });
}

/**
 * Queues again every failed delivery of a destination created in [since, until], each with a fresh set of
 * `attempts` attempts, up to `limit` (default 1,000) per call: callers repeat it until it returns fewer.
 * Scoped to the organization. Returns the refs to queue after commit (held ones too; queueing them is
 * harmless, a job of a held delivery does nothing).
 */
export async function recoverFailed(
  db: Executor,
  orgId: string,
  webhookId: string,
  since: Date,
  until: Date,
  attempts: number,
  limit = 1000,
  after?: WalkCursor,
): Promise<(QueuedRef & { cursor: WalkCursor })[]> {
  const batch = db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(
      and(
        eq(deliveries.webhookId, webhookId),
        eq(deliveries.orgId, orgId),
        eq(deliveries.status, "failed"),
        gte(deliveries.createdAt, since),
        lte(deliveries.createdAt, until),
        walkAfter(after),
      ),
    )
    .orderBy(asc(deliveries.createdAt), asc(deliveries.id))
    .limit(limit)
    .for("update", { skipLocked: true });
  return db
    .update(deliveries)
    .set({
      status: sql`case when (select enabled from webhooks where id = ${webhookId}) then 'pending' else 'held' end`,
      nextAttemptAt: sql`now()`,
      generation: sql`${deliveries.generation} + 1`,
      maxAttempts: sql`${deliveries.attemptCount} + ${attempts}`,
      // The schedule starts over: the next wait is its first, not the one after attempt N.
      scheduleStart: sql`${deliveries.attemptCount}`,
    })
    .where(inBatch(batch))
    .returning({ ...queuedRefColumns, cursor: walkCursor })
    .then((rows) => rows.sort((a, b) => (a.cursor < b.cursor ? -1 : 1)));
}
