import { and, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { organizations, records } from "../db/schema.ts";

/** Rows one erasing statement deletes at most. */
export const ERASE_BATCH = 1000;

/** Repeats `step` (one bounded DELETE returning how many rows it took) until a batch comes back short. */
async function inBatches(step: () => Promise<number>, batch: number): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await step();
    total += n;
    if (n < batch) return total;
  }
}

async function deleted(db: Executor, statement: ReturnType<typeof sql>): Promise<number> {
  const [row] = await db.execute<{ n: number }>(
    sql`with gone as (${statement} returning 1) select count(*)::int as n from gone`,
  );
  return row?.n ?? 0;
}

/**
 * Deletes a record of `orgId` on request: the record with its analysis, evaluations and alert keys (one
 * statement, for the caller's transaction); its deliveries follow with {@link eraseRecordDeliveries}. The
 * record goes first, so an evaluation running meanwhile finds nothing to alert about. Returns false when
 * the organization has no such record.
 */
export async function deleteRecordRow(db: Executor, orgId: string, id: string): Promise<boolean> {
  const gone = await db
    .delete(records)
    .where(and(eq(records.id, id), eq(records.orgId, orgId)))
    .returning({ id: records.id });
  return gone.length > 0;
}

/** Deletes the deliveries (and their attempts) made from a deleted record, `batch` at a time. */
export async function eraseRecordDeliveries(
  db: Executor,
  orgId: string,
  id: string,
  batch = ERASE_BATCH,
): Promise<void> {
  await inBatches(
    () =>
      deleted(
        db,
        sql`delete from deliveries where id = any(array(
          select id from deliveries where record_id = ${id} and org_id = ${orgId} limit ${batch}))`,
      ),
    batch,
  );
}

/**
 * Deletes an organization and everything of it, whatever its size: its deliveries (with their attempts)
 * destination by destination and its records (with analyses, evaluations and alert keys) a batch at a time,
 * then the organization itself, which takes its keys, destinations, automations and integrations with it.
 * Returns what it deleted, or undefined when no organization has that slug.
 */
export async function eraseOrganization(
  db: Executor,
  slug: string,
  batch = ERASE_BATCH,
): Promise<{ deliveries: number; records: number } | undefined> {
  const [org] = await db
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.slug, slug));
  if (!org) return undefined;
  const deliveries = await inBatches(
    () =>
      deleted(
        db,
        sql`delete from deliveries where id = any(array(
          select id from deliveries where webhook_id in (select id from webhooks where org_id = ${org.id})
          limit ${batch}))`,
      ),
    batch,
  );
  const recordCount = await inBatches(
    () =>
      deleted(
        db,
        sql`delete from records where id = any(array(select id from records where org_id = ${org.id} limit ${batch}))`,
      ),
    batch,
  );
  await db.delete(organizations).where(eq(organizations.id, org.id));
  return { deliveries, records: recordCount };
}
