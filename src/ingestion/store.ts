import { createHash } from "node:crypto";
import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import { feedbackIntegrations, records } from "../db/schema.ts";
import { newId, newToken } from "../ids.ts";
import { hashToken } from "../orgs.ts";
import type { NormalizedRecord } from "./types.ts";

/**
 * A record's id: derived from its integration and the sender's exact `id`, so a resend maps to the same
 * record and the same sender id from two integrations makes two records.
 */
export function recordId(integrationId: string, externalId: string): string {
  const digest = createHash("sha256").update(integrationId).update("\u0000").update(externalId).digest();
  return `rec_${digest.subarray(0, 16).toString("hex")}`;
}

export interface FeedbackIntegration {
  id: string;
  orgId: string;
  displayName: string;
  description: string | null;
  dataMutability: boolean;
  createdAt: Date;
  updatedAt: Date;
}

const integrationColumns = {
  id: feedbackIntegrations.id,
  orgId: feedbackIntegrations.orgId,
  displayName: feedbackIntegrations.displayName,
  description: feedbackIntegrations.description,
  dataMutability: feedbackIntegrations.dataMutability,
  createdAt: feedbackIntegrations.createdAt,
  updatedAt: feedbackIntegrations.updatedAt,
};

/** Creates a feedback integration; its ingestion key is returned once and only its hash is kept. */
export async function createIntegration(
  db: Executor,
  orgId: string,
  input: { displayName: string; description?: string | null; dataMutability?: boolean },
): Promise<{ integration: FeedbackIntegration; apiKey: string }> {
  const apiKey = newToken("esf_");
  const [integration] = await db
    .insert(feedbackIntegrations)
    .values({
      id: newId("fbi"),
      orgId,
      displayName: input.displayName,
      description: input.description ?? null,
      dataMutability: input.dataMutability ?? false,
      keyHash: hashToken(apiKey),
    })
    .returning(integrationColumns);
  if (!integration) throw new Error("insert returned no row");
  return { integration, apiKey };
}

export async function listIntegrations(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<FeedbackIntegration>> {
  return keysetPage(
    db,
    {
      table: feedbackIntegrations,
      columns: integrationColumns,
      createdAt: feedbackIntegrations.createdAt,
      id: feedbackIntegrations.id,
      where: eq(feedbackIntegrations.orgId, orgId),
      newestFirst: true,
    },
    pageOf,
    perPage,
  );
}

/** One integration of the organization; `forUpdate` locks its row until the caller's transaction ends. */
export async function getIntegration(
  db: Executor,
  orgId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<FeedbackIntegration | undefined> {
  const query = db
    .select(integrationColumns)
    .from(feedbackIntegrations)
    .where(and(eq(feedbackIntegrations.id, id), eq(feedbackIntegrations.orgId, orgId)));
  const [row] = options.forUpdate ? await query.for("update") : await query;
  return row;
}

export async function updateIntegration(
  db: Executor,
  orgId: string,
  id: string,
  patch: { displayName?: string; description?: string | null; dataMutability?: boolean },
): Promise<FeedbackIntegration | undefined> {
  const [row] = await db
    .update(feedbackIntegrations)
    .set({ ...patch, updatedAt: new Date() })
    .where(and(eq(feedbackIntegrations.id, id), eq(feedbackIntegrations.orgId, orgId)))
    .returning(integrationColumns);
  return row;
}

/** Deletes an integration and, by cascade, its records. Returns whether it existed. */
export async function deleteIntegration(db: Executor, orgId: string, id: string): Promise<boolean> {
  const rows = await db
    .delete(feedbackIntegrations)
    .where(and(eq(feedbackIntegrations.id, id), eq(feedbackIntegrations.orgId, orgId)))
    .returning({ id: feedbackIntegrations.id });
  return rows.length > 0;
}

/** Replaces the ingestion key; the old one stops working at once. Returns the new key once. */
export async function rotateIntegrationKey(
  db: Executor,
  orgId: string,
  id: string,
): Promise<string | undefined> {
  const apiKey = newToken("esf_");
  const rows = await db
    .update(feedbackIntegrations)
    .set({ keyHash: hashToken(apiKey), updatedAt: new Date() })
    .where(and(eq(feedbackIntegrations.id, id), eq(feedbackIntegrations.orgId, orgId)))
    .returning({ id: feedbackIntegrations.id });
  return rows.length > 0 ? apiKey : undefined;
}

/** The integration an ingestion key belongs to, with its organization's slug. */
export async function findIntegrationByKeyHash(
  db: Executor,
  keyHash: string,
): Promise<(FeedbackIntegration & { keyHash: string }) | undefined> {
  const [row] = await db
    .select({ ...integrationColumns, keyHash: feedbackIntegrations.keyHash })
    .from(feedbackIntegrations)
    .where(eq(feedbackIntegrations.keyHash, keyHash));
  return row;
}

/** A record that was stored or replaced and now needs evaluating at `version`. */
export interface StoredRef {
  id: string;
  version: number;
}

export interface StoreResult {
  stored: StoredRef[];
  /** Records whose id this integration sent before, skipped because mutability is off. */
  skipped: number;
  created: number;
  replaced: number;
}

/**
 * Stores a validated batch for one integration, in the caller's transaction. With mutability off a record
 * whose sender id exists (exact, case-sensitive) is skipped; with it on the record is replaced whole and its
 * version bumped. Within one batch the first copy of an id wins when immutable, the last when mutable.
 */
export async function storeRecords(
  db: Executor,
  integration: Pick<FeedbackIntegration, "id" | "orgId" | "dataMutability">,
  batch: NormalizedRecord[],
): Promise<StoreResult> {
  const byId = new Map<string, NormalizedRecord>();
  for (const r of batch) {
    if (integration.dataMutability || !byId.has(r.externalId)) byId.set(r.externalId, r);
  }
  const inBatchDuplicates = batch.length - byId.size;
  if (byId.size === 0) return { stored: [], skipped: inBatchDuplicates, created: 0, replaced: 0 };
  const rows = [...byId.values()].map((r) => ({
    id: recordId(integration.id, r.externalId),
    orgId: integration.orgId,
    integrationId: integration.id,
    externalId: r.externalId,
    fileId: r.fileId,
    type: r.type,
    occurredAt: r.occurredAt,
    sourceUrl: r.sourceUrl,
    content: r.content,
    metadata: r.metadata,
  }));
  const insert = db.insert(records).values(rows);
  const returning = {
    id: records.id,
    version: records.version,
    inserted: sql<boolean>`(xmax = 0)`,
  };
  const written = integration.dataMutability
    ? await insert
        .onConflictDoUpdate({
          target: [records.integrationId, records.externalId],
          set: {
            fileId: sql`excluded.file_id`,
            type: sql`excluded.type`,
            occurredAt: sql`excluded.occurred_at`,
            sourceUrl: sql`excluded.source_url`,
            content: sql`excluded.content`,
            metadata: sql`excluded.metadata`,
            version: sql`${records.version} + 1`,
            updatedAt: sql`now()`,
          },
        })
        .returning(returning)
    : await insert
        .onConflictDoNothing({ target: [records.integrationId, records.externalId] })
        .returning(returning);
  const created = written.filter((w) => w.inserted).length;
  return {
    stored: written.map((w) => ({ id: w.id, version: w.version })),
    skipped: inBatchDuplicates + (rows.length - written.length),
    created,
    replaced: written.length - created,
  };
}

/** Records whose current version has not been evaluated, in id order after `afterId`. */
export async function listUnevaluated(
  db: Executor,
  afterId: string,
  limit: number,
  overdueMs?: number,
): Promise<StoredRef[]> {
  return db
    .select({ id: records.id, version: records.version })
    .from(records)
    .where(
      and(
        sql`${records.analyzedVersion} is distinct from ${records.version}`,
        gt(records.id, afterId),
        overdueMs === undefined
          ? undefined
          : sql`${records.updatedAt} < now() - make_interval(secs => ${overdueMs / 1000})`,
      ),
    )
    .orderBy(asc(records.id))
    .limit(limit);
}
