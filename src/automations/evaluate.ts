import { and, eq, inArray, sql } from "drizzle-orm";
import type { Analysis, Analyzer } from "../analysis/analyzer.ts";
import type { Db, Executor } from "../db/client.ts";
import {
  automations,
  automationWebhooks,
  feedbackIntegrations,
  organizations,
  recordEvaluations,
  records,
  webhooks,
} from "../db/schema.ts";
import { insertDeliveries, type NewDelivery, type QueuedRef } from "../delivery/outbox.ts";
import { ALERT_EVENT, alertBody, alertIdempotencyKey, type Level } from "../delivery/payloads.ts";
import { subscribesTo } from "../destinations/events.ts";
import type { NormalizedMetadata, RecordContent } from "../ingestion/types.ts";
import { excerpt, filterVerdict, triggerVerdict } from "./match.ts";
import type { AutomationFilter, AutomationTrigger } from "./store.ts";

export interface EvaluationDeps {
  db: Db;
  analyzer: Analyzer;
  publicUrl: string;
  /** Attempts each alert gets: the retry schedule's length + 1. */
  maxAttempts: number;
}

export interface EvaluationOutcome {
  /** Deliveries created as pending, to be queued once the transaction has committed. */
  pending: QueuedRef[];
  fired: number;
  skipped: "superseded" | "missing" | undefined;
}

interface LoadedRecord {
  id: string;
  orgId: string;
  orgSlug: string;
  integrationId: string;
  source: string;
  type: (typeof records.$inferSelect)["type"];
  occurredAt: Date;
  sourceUrl: string | null;
  content: RecordContent;
  metadata: NormalizedMetadata;
  version: number;
  analysis: Analysis | null;
  analyzedVersion: number | null;
}

async function loadRecord(db: Executor, id: string): Promise<LoadedRecord | undefined> {
  const [row] = await db
    .select({
      id: records.id,
      orgId: records.orgId,
      orgSlug: organizations.slug,
      integrationId: records.integrationId,
      source: feedbackIntegrations.displayName,
      type: records.type,
      occurredAt: records.occurredAt,
      sourceUrl: records.sourceUrl,
      content: records.content,
      metadata: records.metadata,
      version: records.version,
      analysis: records.analysis,
      analyzedVersion: records.analyzedVersion,
    })
    .from(records)
    .innerJoin(organizations, eq(organizations.id, records.orgId))
    .innerJoin(feedbackIntegrations, eq(feedbackIntegrations.id, records.integrationId))
    .where(eq(records.id, id))
    // Serializes evaluations of one record, so a replaced record's two jobs cannot interleave.
    .for("update", { of: records });
  return row as LoadedRecord | undefined;
}

/**
 * Analyses a record (once per version) and runs every automation of its organization against it. Each
 * automation that matches creates one alert per subscribed destination, ever: the delivery's idempotency
 * key `<automation>:<webhook>:<record>` is unique, so a re-run after a crash, a replaced record or an
 * automation that fired before creates nothing new. Everything is written in one transaction; the caller
 * queues `pending` after it commits.
 */
export async function evaluateRecord(
  deps: EvaluationDeps,
  recordId: string,
  version: number,
  now = new Date(),
): Promise<EvaluationOutcome> {
  // Analysis can be slow (a hosted model one day): run it before taking the row lock.
  const snapshot = await loadRecordUnlocked(deps.db, recordId);
  if (!snapshot) return { pending: [], fired: 0, skipped: "missing" };
  if (snapshot.version !== version) return { pending: [], fired: 0, skipped: "superseded" };
  const analysis =
    snapshot.analyzedVersion === snapshot.version && snapshot.analysis
      ? snapshot.analysis
      : await deps.analyzer.analyze({ type: snapshot.type, content: snapshot.content });

  return deps.db.transaction(async (tx) => {
    const record = await loadRecord(tx, recordId);
    if (!record) return { pending: [], fired: 0, skipped: "missing" as const };
    if (record.version !== version) return { pending: [], fired: 0, skipped: "superseded" as const };

    const autos = await tx
      .select({
        id: automations.id,
        active: automations.active,
        filter: automations.filter,
        trigger: automations.trigger,
      })
      .from(automations)
      .where(eq(automations.orgId, record.orgId));
    const links = autos.length
      ? await tx
          .select({
            automationId: automationWebhooks.automationId,
            webhookId: webhooks.id,
            events: webhooks.events,
          })
          .from(automationWebhooks)
          .innerJoin(webhooks, eq(webhooks.id, automationWebhooks.webhookId))
          .where(
            inArray(
              automationWebhooks.automationId,
              autos.map((a) => a.id),
            ),
          )
      : [];

    const items: NewDelivery[] = [];
    const verdicts: { automationId: string; fired: boolean; reason: string }[] = [];
    for (const a of autos) {
      const reason = !a.active
        ? "automation is inactive"
        : (filterVerdict(a.filter as AutomationFilter, record) ??
          triggerVerdict(a.trigger as AutomationTrigger, analysis));
      const targets = links.filter((l) => l.automationId === a.id && subscribesTo(l.events, ALERT_EVENT));
      if (reason === undefined && targets.length === 0) {
        verdicts.push({
          automationId: a.id,
          fired: false,
          reason: "no destination subscribes to escalation.alert",
        });
        continue;
      }
      verdicts.push({ automationId: a.id, fired: reason === undefined, reason: reason ?? "fired" });
      if (reason !== undefined) continue;
      for (const t of targets) {
        items.push({
          orgId: record.orgId,
          webhookId: t.webhookId,
          eventType: ALERT_EVENT,
          automationId: a.id,
          recordId: record.id,
          idempotencyKey: alertIdempotencyKey(a.id, t.webhookId, record.id),
          payload: alertBody(alertPayload(deps.publicUrl, record, a.id, analysis, now)),
        });
      }
    }

    const { pending, created } = await insertDeliveries(tx, items, deps.maxAttempts);
    if (verdicts.length > 0) {
      await tx
        .insert(recordEvaluations)
        .values(
          verdicts.map((v) => ({ recordId: record.id, recordVersion: version, ...v, evaluatedAt: now })),
        )
        .onConflictDoUpdate({
          target: [recordEvaluations.recordId, recordEvaluations.automationId],
          set: {
            recordVersion: sql`excluded.record_version`,
            fired: sql`excluded.fired`,
            reason: sql`excluded.reason`,
            evaluatedAt: sql`excluded.evaluated_at`,
          },
        });
    }
    await tx
      .update(records)
      .set({ analysis, analyzedVersion: version })
      .where(and(eq(records.id, record.id), eq(records.version, version)));
    return { pending, fired: created, skipped: undefined };
  });
}

async function loadRecordUnlocked(db: Executor, id: string) {
  const [row] = await db
    .select({
      type: records.type,
      content: records.content,
      version: records.version,
      analysis: records.analysis,
      analyzedVersion: records.analyzedVersion,
    })
    .from(records)
    .where(eq(records.id, id));
  return row as
    | {
        type: LoadedRecord["type"];
        content: RecordContent;
        version: number;
        analysis: Analysis | null;
        analyzedVersion: number | null;
      }
    | undefined;
}

function alertPayload(
  publicUrl: string,
  record: LoadedRecord,
  automationId: string,
  analysis: Analysis,
  now: Date,
) {
  return {
    automation_id: automationId,
    org_id: record.orgSlug,
    escalated_at: now.toISOString(),
    levels: {
      // A trigger's minimum is at least `low`, so an alert never carries `none`.
      escalation_level: analysis.escalation_level as Level,
      emotional_intensity_level: analysis.emotional_intensity_level,
      sentiment_shift: analysis.sentiment_shift,
    },
    record: {
      id: record.id,
      url: `${publicUrl}/${encodeURIComponent(record.orgSlug)}/record/${record.id}`,
      source_url: record.sourceUrl,
      content_excerpt: excerpt(analysis.driver?.text ?? ""),
      created_at: record.occurredAt.toISOString(),
      source: record.source,
    },
  };
}
