import { and, asc, eq } from "drizzle-orm";
import type { Analysis } from "../analysis/analyzer.ts";
import type { Executor } from "../db/client.ts";
import { automations, feedbackIntegrations, recordEvaluations, records } from "../db/schema.ts";

/** What `GET /api/records/:id` shows: the record, its analysis, and each automation's verdict on it. */
export interface RecordExplanation {
  record: typeof records.$inferSelect & { source: string };
  analysis: Analysis | null;
  automations: {
    id: string;
    name: string;
    active: boolean;
    fired: boolean;
    /** `fired`, the first condition that failed, or why it has not been judged yet. */
    reason: string;
    /** The record version the verdict is about; null when not evaluated yet. */
    recordVersion: number | null;
  }[];
}

/** Explains a record of the organization; `undefined` for an unknown id or another organization's. */
export async function explainRecord(
  db: Executor,
  orgId: string,
  id: string,
): Promise<RecordExplanation | undefined> {
  const [row] = await db
    .select({ record: records, source: feedbackIntegrations.displayName })
    .from(records)
    .innerJoin(feedbackIntegrations, eq(feedbackIntegrations.id, records.integrationId))
    .where(and(eq(records.id, id), eq(records.orgId, orgId)));
  if (!row) return undefined;
  const verdicts = await db
    .select({
      id: automations.id,
      name: automations.name,
      active: automations.active,
      fired: recordEvaluations.fired,
      reason: recordEvaluations.reason,
      recordVersion: recordEvaluations.recordVersion,
    })
    .from(automations)
    .leftJoin(
      recordEvaluations,
      and(eq(recordEvaluations.automationId, automations.id), eq(recordEvaluations.recordId, id)),
    )
    .where(eq(automations.orgId, orgId))
    .orderBy(asc(automations.createdAt));
  const analysed = row.record.analyzedVersion === row.record.version;
  return {
    record: { ...row.record, source: row.source },
    analysis: (row.record.analysis as Analysis | null) ?? null,
    automations: verdicts.map((v) => ({
      id: v.id,
      name: v.name,
      active: v.active,
      fired: v.fired ?? false,
      reason:
        v.reason ??
        (analysed
          ? "created after this record was evaluated"
          : "not evaluated yet: the evaluator has this record queued"),
      recordVersion: v.recordVersion,
    })),
  };
}
