import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import {
  automations,
  automationWebhooks,
  feedbackIntegrations,
  type RecordType,
  webhooks,
} from "../db/schema.ts";
import type { Level } from "../delivery/payloads.ts";
import { newId } from "../ids.ts";

export type MetadataOp = "eq" | "neq" | "in" | "exists" | "gt" | "gte" | "lt" | "lte";
export type MetadataScalar = string | number | boolean;

/**
 * One metadata condition. `value` is a non-empty list for `in`, a number for `gt`/`gte`/`lt`/`lte`, a scalar
 * for `eq`/`neq`, and absent for `exists`.
 */
export interface MetadataCondition {
  field: string;
  op: MetadataOp;
  value?: MetadataScalar | MetadataScalar[];
}

/**
 * Which records an automation looks at; an absent part matches everything. Stored in `automations.filter`
 * exactly as the admin API shows it (snake_case), so the evaluator reads the same shape.
 */
export interface AutomationFilter {
  integration_ids?: string[];
  types?: RecordType[];
  /** All conditions must hold; a list-valued field matches when any of its values does. */
  metadata?: MetadataCondition[];
}

/** When a matching record fires the automation. Stored in `automations.trigger` as the API shows it. */
export interface AutomationTrigger {
  min_escalation_level: Level;
  min_emotional_intensity_level?: Level;
  require_sentiment_degraded?: boolean;
}

export interface AutomationInput {
  name: string;
  active: boolean;
  filter: AutomationFilter;
  trigger: AutomationTrigger;
  webhookIds: string[];
}

export interface AutomationView extends AutomationInput {
  id: string;
  createdAt: Date;
  updatedAt: Date;
}

const columns = {
  id: automations.id,
  name: automations.name,
  active: automations.active,
  filter: automations.filter,
  trigger: automations.trigger,
  createdAt: automations.createdAt,
  updatedAt: automations.updatedAt,
};

type Row = Omit<AutomationView, "webhookIds" | "filter" | "trigger"> & { filter: unknown; trigger: unknown };

async function withWebhookIds(db: Executor, rows: Row[]): Promise<AutomationView[]> {
  if (rows.length === 0) return [];
  const links = await db
    .select({ automationId: automationWebhooks.automationId, webhookId: automationWebhooks.webhookId })
    .from(automationWebhooks)
    .where(
      inArray(
        automationWebhooks.automationId,
        rows.map((r) => r.id),
      ),
    )
    .orderBy(asc(automationWebhooks.webhookId));
  const byAutomation = new Map<string, string[]>();
  for (const l of links) {
    const list = byAutomation.get(l.automationId) ?? [];
    list.push(l.webhookId);
    byAutomation.set(l.automationId, list);
  }
  return rows.map((r) => ({
    ...r,
    filter: r.filter as AutomationFilter,
    trigger: r.trigger as AutomationTrigger,
    webhookIds: byAutomation.get(r.id) ?? [],
  }));
}

/**
 * Positions in `ids` that are not destinations of the organization. The ones that are get a share lock until
 * the caller's transaction ends, so none can be deleted between this check and the insert that links it.
 */
export async function unknownWebhookIds(db: Executor, orgId: string, ids: string[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const found = await db
    .select({ id: webhooks.id })
    .from(webhooks)
    .where(and(eq(webhooks.orgId, orgId), inArray(webhooks.id, ids)))
    .for("share");
  const known = new Set(found.map((r) => r.id));
  return ids.flatMap((id, i) => (known.has(id) ? [] : [i]));
}

/** Positions in `ids` that are not feedback integrations of the organization. */
export async function unknownIntegrationIds(db: Executor, orgId: string, ids: string[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const found = await db
    .select({ id: feedbackIntegrations.id })
    .from(feedbackIntegrations)
    .where(and(eq(feedbackIntegrations.orgId, orgId), inArray(feedbackIntegrations.id, ids)));
  const known = new Set(found.map((r) => r.id));
  return ids.flatMap((id, i) => (known.has(id) ? [] : [i]));
}

/** Creates an automation and its destination links; the caller has checked the ids (see {@link unknownWebhookIds}). */
export async function createAutomation(
  db: Executor,
  orgId: string,
  input: AutomationInput,
): Promise<AutomationView> {
  const id = newId("aut");
  const [row] = await db
    .insert(automations)
    .values({
      id,
      orgId,
      name: input.name,
      active: input.active,
      filter: input.filter,
      trigger: input.trigger,
    })
    .returning(columns);
  if (!row) throw new Error("insert returned no row");
  if (input.webhookIds.length > 0) {
    await db
      .insert(automationWebhooks)
      .values(input.webhookIds.map((webhookId) => ({ automationId: id, webhookId })));
  }
  const [view] = await withWebhookIds(db, [row]);
  return view as AutomationView;
}

/** An organization's automations, oldest first. */
export async function listAutomations(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<AutomationView>> {
  const page = await keysetPage(
    db,
    {
      table: automations,
      columns,
      createdAt: automations.createdAt,
      id: automations.id,
      where: eq(automations.orgId, orgId),
      newestFirst: false,
    },
    pageOf,
    perPage,
  );
  return { ...page, rows: await withWebhookIds(db, page.rows) };
}

/** One automation of the organization, or `undefined` (also for another organization's id). */
export async function getAutomation(
  db: Executor,
  orgId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<AutomationView | undefined> {
  const query = db
    .select(columns)
    .from(automations)
    .where(and(eq(automations.id, id), eq(automations.orgId, orgId)));
  const rows = options.forUpdate ? await query.for("update") : await query;
  const [view] = await withWebhookIds(db, rows);
  return view;
}

/** Replaces the given parts of an automation; `webhookIds` replaces the whole set of links. */
export async function updateAutomation(
  db: Executor,
  orgId: string,
  id: string,
  changes: Partial<AutomationInput>,
): Promise<AutomationView | undefined> {
  const [row] = await db
    .update(automations)
    .set({
      name: changes.name,
      active: changes.active,
      filter: changes.filter,
      trigger: changes.trigger,
      updatedAt: new Date(),
    })
    .where(and(eq(automations.id, id), eq(automations.orgId, orgId)))
    .returning(columns);
  if (!row) return undefined;
  if (changes.webhookIds) {
    await db.delete(automationWebhooks).where(eq(automationWebhooks.automationId, id));
    if (changes.webhookIds.length > 0) {
      await db
        .insert(automationWebhooks)
        .values(changes.webhookIds.map((webhookId) => ({ automationId: id, webhookId })));
    }
  }
  const [view] = await withWebhookIds(db, [row]);
  return view;
}

/** Deletes an automation (its links and evaluations cascade). Returns whether a row was deleted. */
export async function deleteAutomation(db: Executor, orgId: string, id: string): Promise<boolean> {
  const rows = await db
    .delete(automations)
    .where(and(eq(automations.id, id), eq(automations.orgId, orgId)))
    .returning({ id: automations.id });
  return rows.length > 0;
}

/**
 * When each of `ids` last fired (its conditions held for a record), from the newest fired verdict: one
 * backward step of `record_evaluations_fired_idx` per automation. Automations that never fired are absent.
 */
export async function lastFiredAt(db: Executor, ids: string[]): Promise<Map<string, Date>> {
  if (ids.length === 0) return new Map();
  const rows = await db.execute<{ id: string; at: string | null }>(sql`
    select a.id, (select e.evaluated_at from record_evaluations e
                  where e.automation_id = a.id and e.fired order by e.evaluated_at desc limit 1)::text as at
    from unnest(array[${sql.join(
      ids.map((i) => sql`${i}`),
      sql`, `,
    )}]::text[]) as a(id)`);
  return new Map(rows.flatMap((r) => (r.at ? [[r.id, new Date(r.at)] as const] : [])));
}
