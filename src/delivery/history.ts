import { and, asc, eq, gte, isNull, lt, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { boundedTotal, keysetPage, type Page, type PageOf } from "../db/paging.ts";
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
  /** The digest delivery that carried this alert in a storm; null otherwise. */
  digestId: string | null;
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
  digestId: deliveries.digestId,
  createdAt: deliveries.createdAt,
  deliveredAt: deliveries.deliveredAt,
  nextAttemptAt: deliveries.nextAttemptAt,
};

/** The next attempt time only means something while a delivery waits for one. */
function summary<T extends { status: DeliveryStatus; nextAttemptAt: Date | null }>(row: T): T {
  return { ...row, nextAttemptAt: row.status === "pending" ? row.nextAttemptAt : null };
}

/**
 * A page of one destination's deliveries, newest first, scoped to the organization as well as the
 * destination, found on the index (`webhook_id, created_at, id`); see {@link keysetPage}.
 */
export async function listDeliveries(
  db: Executor,
  orgId: string,
  webhookId: string,
  filter: HistoryFilter,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<DeliverySummary>> {
  const ofDestination = and(
    eq(deliveries.webhookId, webhookId),
    filter.from ? gte(deliveries.createdAt, filter.from) : undefined,
    filter.to ? lt(deliveries.createdAt, filter.to) : undefined,
    filter.status ? eq(deliveries.status, filter.status) : undefined,
  );
  const page = await keysetPage(
    db,
    {
      table: deliveries,
      columns: summaryColumns,
      createdAt: deliveries.createdAt,
      id: deliveries.id,
      where: and(eq(deliveries.orgId, orgId), ofDestination),
      // Every delivery of a destination is of the destination's organization.
      countWhere: ofDestination,
      newestFirst: true,
    },
    pageOf,
    perPage,
  );
  return { ...page, rows: page.rows.map(summary) };
}

/** How many deliveries a disabled destination holds; counts above 10,000 are estimates. */
export interface HeldCounts {
  total: number;
  /**
   * Those created longer ago than DELIVERY_RETENTION: had they finished they would be pruned, but held
   * deliveries are kept until they go out (or the destination is deleted).
   */
  pastRetention: number;
  estimated: boolean;
}

/** The deliveries a destination holds because it is disabled (`retentionMs` 0: none counts as past retention). */
export async function heldCounts(db: Executor, webhookId: string, retentionMs: number): Promise<HeldCounts> {
  const held = and(
    eq(deliveries.webhookId, webhookId),
    eq(deliveries.status, "held"),
    isNull(deliveries.holdReason),
  );
  const [all, old] = await Promise.all([
    boundedTotal(db, deliveries, held),
    retentionMs > 0
      ? boundedTotal(
          db,
          deliveries,
          and(held, sql`${deliveries.createdAt} < now() - make_interval(secs => ${retentionMs / 1000})`),
        )
      : { total: 0, totalEstimated: false },
  ]);
  return {
    total: all.total,
    pastRetention: old.total,
    estimated: all.totalEstimated || old.totalEstimated,
  };
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
