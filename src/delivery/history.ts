import { and, asc, desc, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { type DeliveryStatus, deliveries, deliveryAttempts, type HoldReason } from "../db/schema.ts";
import type { AttemptRecord } from "./outbox.ts";

/** One line of a destination's delivery history. */
export interface DeliverySummary {
  id: string;
  eventType: string;
  status: DeliveryStatus;
  attemptCount: number;
  /** The status code of the last attempt; null before the first or when it got no answer. */
  lastHttpStatus: number | null;
  /** Why the last attempt failed (`kind: message`, or the hold's reason); null after a success. */
  lastError: string | null;
  /** Why a held delivery waits when it is not its destination being disabled (`secret_unreadable`). */
  holdReason: HoldReason | null;
  idempotencyKey: string;
  createdAt: Date;
  deliveredAt: Date | null;
  nextAttemptAt: Date | null;
}

/** An attempt as the history shows it. */
export type DeliveryAttemptView = Omit<AttemptRecord, "deliveryId">;

export interface DeliveryDetail extends DeliverySummary {
  /** The exact request body every attempt sends. */
  payload: string;
  attempts: DeliveryAttemptView[];
}

export interface HistoryFilter {
  /** Inclusive lower bound on `created_at`. */
  from?: Date;
  /** Exclusive upper bound on `created_at`. */
  to?: Date;
  status?: DeliveryStatus;
}

const summaryColumns = {
  id: deliveries.id,
  eventType: deliveries.eventType,
  status: deliveries.status,
  attemptCount: deliveries.attemptCount,
  lastHttpStatus: deliveries.lastHttpStatus,
  lastError: deliveries.lastError,
  holdReason: deliveries.holdReason,
  idempotencyKey: deliveries.idempotencyKey,
  createdAt: deliveries.createdAt,
  deliveredAt: deliveries.deliveredAt,
  nextAttemptAt: deliveries.nextAttemptAt,
};

/** The next attempt time only means something while a delivery waits for one. */
function summary<T extends { status: DeliveryStatus; nextAttemptAt: Date | null }>(row: T): T {
  return { ...row, nextAttemptAt: row.status === "pending" ? row.nextAttemptAt : null };
}

/** Totals are counted exactly up to this many rows; above it they are the planner's estimate. */
export const EXACT_TOTAL_UP_TO = 10_000;

/** Where a page starts: after this delivery, in the history's order (newest first). */
export interface HistoryCursor {
  /** `created_at` as Postgres prints it (exact to the microsecond). */
  createdAt: string;
  id: string;
}

/** How a page is chosen: a cursor from the previous page, or a page number (1-based). */
export type PageOf = { cursor: HistoryCursor } | { page: number };

export interface HistoryPage {
  rows: DeliverySummary[];
  /** Where the next page starts; undefined on the last page. */
  next: HistoryCursor | undefined;
  total: number;
  /** True when `total` is an estimate (more than {@link EXACT_TOTAL_UP_TO} match). */
  totalEstimated: boolean;
}

/**
 * A page of one destination's deliveries, newest first, scoped to the organization as well as the
 * destination. With a cursor the page is found on the index (`webhook_id, created_at`) at any depth; a page
 * number still works (by OFFSET, so deep numbers cost more). The total is exact up to
 * {@link EXACT_TOTAL_UP_TO} and an estimate above, so no request counts a whole large history.
 */
export async function listDeliveries(
  db: Executor,
  orgId: string,
  webhookId: string,
  filter: HistoryFilter,
  pageOf: PageOf,
  perPage: number,
): Promise<HistoryPage> {
  const where = and(
    eq(deliveries.orgId, orgId),
    eq(deliveries.webhookId, webhookId),
    filter.from ? gte(deliveries.createdAt, filter.from) : undefined,
    filter.to ? lt(deliveries.createdAt, filter.to) : undefined,
    filter.status ? eq(deliveries.status, filter.status) : undefined,
  );
  const after =
    "cursor" in pageOf
      ? sql`(${deliveries.createdAt}, ${deliveries.id}) < (${pageOf.cursor.createdAt}::timestamptz, ${pageOf.cursor.id})`
      : undefined;
  const [found, total] = await Promise.all([
    db
      .select({ ...summaryColumns, createdAtText: sql<string>`${deliveries.createdAt}::text` })
      .from(deliveries)
      .where(and(where, after))
      .orderBy(desc(deliveries.createdAt), desc(deliveries.id))
      .limit(perPage + 1)
      .offset("page" in pageOf ? (pageOf.page - 1) * perPage : 0),
    boundedTotal(db, where),
  ]);
  const rows = found.slice(0, perPage);
  const last = rows.at(-1);
  return {
    rows: rows.map(({ createdAtText: _, ...row }) => summary(row)),
    next: found.length > perPage && last ? { createdAt: last.createdAtText, id: last.id } : undefined,
    ...total,
  };
}

/** Counts matching deliveries up to {@link EXACT_TOTAL_UP_TO}; past that, asks the planner for its estimate. */
async function boundedTotal(
  db: Executor,
  where: SQL | undefined,
): Promise<{ total: number; totalEstimated: boolean }> {
  const capped = db
    .select({ one: sql`1` })
    .from(deliveries)
    .where(where)
    .limit(EXACT_TOTAL_UP_TO + 1);
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from (${capped}) x`);
  const n = row?.n ?? 0;
  if (n <= EXACT_TOTAL_UP_TO) return { total: n, totalEstimated: false };
  const plan = await db.execute<{ "QUERY PLAN": [{ Plan: { "Plan Rows": number } }] }>(
    sql`explain (format json) ${db.select({ one: sql`1` }).from(deliveries).where(where)}`,
  );
  const estimate = Math.round(plan[0]?.["QUERY PLAN"][0]?.Plan["Plan Rows"] ?? 0);
  return { total: Math.max(estimate, n), totalEstimated: true };
}

/** One delivery of the destination with its payload and every attempt in order, or `undefined`. */
export async function getDelivery(
  db: Executor,
  orgId: string,
  webhookId: string,
  id: string,
): Promise<DeliveryDetail | undefined> {
  const [row] = await db
    .select({ ...summaryColumns, payload: deliveries.payload })
    .from(deliveries)
    .where(and(eq(deliveries.id, id), eq(deliveries.orgId, orgId), eq(deliveries.webhookId, webhookId)));
  if (!row) return undefined;
  const attempts = await db
    .select({
      attemptNumber: deliveryAttempts.attemptNumber,
      startedAt: deliveryAttempts.startedAt,
      durationMs: deliveryAttempts.durationMs,
      httpStatus: deliveryAttempts.httpStatus,
      errorKind: deliveryAttempts.errorKind,
      errorMessage: deliveryAttempts.errorMessage,
      responseExcerpt: deliveryAttempts.responseExcerpt,
    })
    .from(deliveryAttempts)
    .where(eq(deliveryAttempts.deliveryId, id))
    .orderBy(asc(deliveryAttempts.attemptNumber), asc(deliveryAttempts.id));
  return { ...summary(row), attempts };
}

/** A delivery's current status, scoped to its destination; `undefined` when there is none. */
export async function deliveryStatus(
  db: Executor,
  webhookId: string,
  id: string,
): Promise<DeliveryStatus | undefined> {
  const [row] = await db
    .select({ status: deliveries.status })
    .from(deliveries)
    .where(and(eq(deliveries.id, id), eq(deliveries.webhookId, webhookId)));
  return row?.status;
}

/** The id of a destination's delivery with this idempotency key, or `undefined`. */
export async function deliveryIdByKey(
  db: Executor,
  webhookId: string,
  idempotencyKey: string,
): Promise<string | undefined> {
  const [row] = await db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(and(eq(deliveries.webhookId, webhookId), eq(deliveries.idempotencyKey, idempotencyKey)));
  return row?.id;
}
