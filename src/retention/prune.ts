import { sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";

/** Rows one prune statement deletes at most: small enough that no statement holds locks for long. */
export const PRUNE_BATCH = 1000;

const interval = (ms: number) => sql`make_interval(secs => ${ms / 1000})`;

/**
 * Deletes up to `limit` delivered or failed deliveries that finished more than `retentionMs` ago, with their
 * attempts (by cascade). Pending and held deliveries are never deleted by age. Before a delivery of a stored
 * record goes, its idempotency key's hash is kept in `alert_keys`, so the alert is not created again.
 * Rows locked by someone else are skipped this time. Returns how many were deleted.
 */
export async function pruneDeliveries(
  db: Executor,
  retentionMs: number,
  limit = PRUNE_BATCH,
): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    with doomed as (
      select id, idempotency_key, record_id from deliveries
      where status in ('delivered', 'failed')
        and coalesce(delivered_at, last_attempt_at, created_at) < now() - ${interval(retentionMs)}
      limit ${limit}
      for update skip locked),
    kept as (
      insert into alert_keys (key_hash, record_id)
      select sha256(convert_to(d.idempotency_key, 'UTF8')), d.record_id from doomed d
      where d.record_id is not null and exists (select 1 from records r where r.id = d.record_id)
      on conflict do nothing),
    gone as (delete from deliveries where id = any(array(select id from doomed)) returning 1)
    select count(*)::int as n from gone`);
  return row?.n ?? 0;
}

/**
 * Deletes up to `limit` records stored more than `retentionMs` ago, with their analyses, evaluations and
 * alert keys (by cascade). Counted from when the product stored them, not from the feedback's own time, so
 * a backfill of old feedback is not pruned at once. Returns how many were deleted.
 */
export async function pruneRecords(db: Executor, retentionMs: number, limit = PRUNE_BATCH): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    with doomed as (
      select id from records where created_at < now() - ${interval(retentionMs)}
      order by created_at limit ${limit}
      for update skip locked),
    gone as (delete from records where id = any(array(select id from doomed)) returning 1)
    select count(*)::int as n from gone`);
  return row?.n ?? 0;
}

/** How many rows retention would delete now, counted up to `cap` each (for the first prune's log line). */
export async function pruneBacklog(
  db: Executor,
  deliveryRetentionMs: number,
  recordRetentionMs: number,
  cap = 10_000_000,
): Promise<{ deliveries: number; records: number }> {
  const count = async (query: ReturnType<typeof sql>) =>
    Number(
      (await db.execute<{ n: number }>(sql`select count(*)::int as n from (${query} limit ${cap}) x`))[0]
        ?.n ?? 0,
    );
  return {
    deliveries:
      deliveryRetentionMs === 0
        ? 0
        : await count(sql`select 1 from deliveries where status in ('delivered', 'failed')
            and coalesce(delivered_at, last_attempt_at, created_at) < now() - ${interval(deliveryRetentionMs)}`),
    records:
      recordRetentionMs === 0
        ? 0
        : await count(sql`select 1 from records where created_at < now() - ${interval(recordRetentionMs)}`),
  };
}

/**
 * Finishes deleting destinations an admin deleted (see deleteWebhook): their deliveries and attempts
 * `limit` at a time, then the destination itself. Returns how many deliveries it deleted; stops after
 * `maxStatements` statements, leaving the rest for the next run.
 */
export async function purgeDeletedWebhooks(
  db: Executor,
  limit = PRUNE_BATCH,
  maxStatements = 100,
): Promise<number> {
  const pending = await db.execute<{ webhook_id: string }>(
    sql`select webhook_id from webhook_deletions order by requested_at limit 10`,
  );
  let deleted = 0;
  let statements = 0;
  for (const { webhook_id: id } of pending) {
    for (;;) {
      if (statements++ >= maxStatements) return deleted;
      const [row] = await db.execute<{ n: number }>(sql`
        with gone as (delete from deliveries where id = any(array(
          select id from deliveries where webhook_id = ${id} limit ${limit})) returning 1)
        select count(*)::int as n from gone`);
      const n = row?.n ?? 0;
      deleted += n;
      if (n < limit) break;
    }
    // Its deliveries are gone: the rest (automation links, this request) goes with the row.
    await db.execute(sql`delete from webhooks where id = ${id}`);
  }
  return deleted;
}
