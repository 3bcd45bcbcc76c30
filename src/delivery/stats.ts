import { sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";

/** Windows the overview shows, and their length in seconds. */
export const STAT_WINDOWS = { "1h": 3600, "24h": 86_400 } as const;
export type StatWindow = keyof typeof STAT_WINDOWS;

export interface DeliveryStats {
  /**
   * One point per minute, oldest first, every minute of the window present (zeros included): the
   * deliveries created in that minute, by how they stand now.
   */
  series: Array<{ at: Date; delivered: number; failed: number; waiting: number }>;
  /** The organization's pending and held deliveries now, counted up to `countCap` each. */
  pending: number;
  held: number;
}

/**
 * One organization's deliveries of the last `window`, per minute of creation and by outcome (delivered,
 * failed, or still waiting: pending or held), and its pending and held counts. Every part walks the
 * `(webhook_id, status, created_at)` index of the organization's destinations, so the cost follows the
 * organization's own traffic, never the installation's.
 */
export async function deliveryStats(
  db: Executor,
  orgId: string,
  window: StatWindow,
  countCap = 100_000,
): Promise<DeliveryStats> {
  const since = sql`date_trunc('minute', now()) - make_interval(secs => ${STAT_WINDOWS[window] - 60})`;
  const mine = sql`webhook_id in (select id from webhooks where org_id = ${orgId})`;
  const rows = await db.execute<{ at: string; delivered: number; failed: number; waiting: number }>(sql`
    with minutes as (select generate_series(${since}, date_trunc('minute', now()), interval '1 minute') as at),
    made as (
      select date_trunc('minute', created_at) as at, status from deliveries
      where ${mine} and status in ('delivered', 'failed', 'pending', 'held') and created_at >= ${since})
    select m.at::text as at,
      count(*) filter (where d.status = 'delivered')::int as delivered,
      count(*) filter (where d.status = 'failed')::int as failed,
      count(*) filter (where d.status in ('pending', 'held'))::int as waiting
    from minutes m left join made d on d.at = m.at
    group by m.at order by m.at`);
  const counted = (status: string) =>
    sql`(select count(*)::int from (select 1 from deliveries where ${mine} and status = ${status} limit ${countCap}) x)`;
  const [counts] = await db.execute<{ pending: number; held: number }>(
    sql`select ${counted("pending")} as pending, ${counted("held")} as held`,
  );
  return {
    series: rows.map((r) => ({
      at: new Date(r.at),
      delivered: r.delivered,
      failed: r.failed,
      waiting: r.waiting,
    })),
    pending: counts?.pending ?? 0,
    held: counts?.held ?? 0,
  };
}
