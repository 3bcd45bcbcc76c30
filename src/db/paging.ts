import { and, asc, type Column, desc, type SQL, sql } from "drizzle-orm";
import type { PgTable, SelectedFields } from "drizzle-orm/pg-core";
import type { SelectResultFields } from "drizzle-orm/query-builders/select.types";
import type { Executor } from "./client.ts";

/** Totals are counted exactly up to this many rows; above it they are the planner's estimate. */
export const EXACT_TOTAL_UP_TO = 10_000;

/** Where a page ends, in a list's order: the last row's `created_at` as Postgres prints it (exact to the µs) and id. */
export interface Position {
  createdAt: string;
  id: string;
}

/** How a page is chosen: after a position from the previous page, or by page number (1-based). */
export type PageOf = { cursor: Position } | { page: number };

export interface Page<T> {
  rows: T[];
  /** Where the next page starts; undefined on the last page. */
  next: Position | undefined;
  total: number;
  /** True when `total` is an estimate (more than {@link EXACT_TOTAL_UP_TO} match). */
  totalEstimated: boolean;
}

/** What a list reads: a table, ordered by `(created_at, id)`, which an index of the table must lead with (after `where`'s equalities). */
export interface ListSource<F extends SelectedFields> {
  table: PgTable;
  columns: F;
  createdAt: Column;
  id: Column;
  where: SQL | undefined;
  /**
   * The same rows as `where` in a form the index answers alone, for the total (default `where`): leaving out a
   * condition another one implies saves a heap visit per counted row.
   */
  countWhere?: SQL | undefined;
  /** Newest first (histories) rather than oldest first (configuration lists). */
  newestFirst: boolean;
}

/**
 * One page of a list. With a cursor the page starts on the index at any depth and stays stable while rows
 * are added; a page number still works (by OFFSET, so deep numbers cost more). The total is exact up to
 * {@link EXACT_TOTAL_UP_TO} and the planner's estimate above, so no request counts a whole large table.
 */
export async function keysetPage<F extends SelectedFields>(
  db: Executor,
  source: ListSource<F>,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<SelectResultFields<F>>> {
  const { createdAt, id, newestFirst } = source;
  const after =
    "cursor" in pageOf
      ? newestFirst
        ? sql`(${createdAt}, ${id}) < (${pageOf.cursor.createdAt}::timestamptz, ${pageOf.cursor.id})`
        : sql`(${createdAt}, ${id}) > (${pageOf.cursor.createdAt}::timestamptz, ${pageOf.cursor.id})`
      : undefined;
  const order = newestFirst ? [desc(createdAt), desc(id)] : [asc(createdAt), asc(id)];
  const [found, total] = await Promise.all([
    db
      .select({
        ...source.columns,
        pageCreatedAt: sql<string>`${createdAt}::text`,
        pageId: sql<string>`${id}`,
      })
      .from(source.table)
      .where(and(source.where, after))
      .orderBy(...order)
      .limit(perPage + 1)
      .offset("page" in pageOf ? (pageOf.page - 1) * perPage : 0),
    boundedTotal(db, source.table, "countWhere" in source ? source.countWhere : source.where),
  ]);
  const rows = found.slice(0, perPage);
  const last = rows.at(-1);
  return {
    rows: rows.map(({ pageCreatedAt: _t, pageId: _i, ...row }) => row as SelectResultFields<F>),
    next: found.length > perPage && last ? { createdAt: last.pageCreatedAt, id: last.pageId } : undefined,
    ...total,
  };
}

/** Counts matching rows up to {@link EXACT_TOTAL_UP_TO}; past that, asks the planner for its estimate. */
export async function boundedTotal(
  db: Executor,
  table: PgTable,
  where: SQL | undefined,
): Promise<{ total: number; totalEstimated: boolean }> {
  const capped = db
    .select({ one: sql`1` })
    .from(table)
    .where(where)
    .limit(EXACT_TOTAL_UP_TO + 1);
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from (${capped}) x`);
  const n = row?.n ?? 0;
  if (n <= EXACT_TOTAL_UP_TO) return { total: n, totalEstimated: false };
  const plan = await db.execute<{ "QUERY PLAN": [{ Plan: { "Plan Rows": number } }] }>(
    sql`explain (format json) ${db.select({ one: sql`1` }).from(table).where(where)}`,
  );
  const estimate = Math.round(plan[0]?.["QUERY PLAN"][0]?.Plan["Plan Rows"] ?? 0);
  return { total: Math.max(estimate, n), totalEstimated: true };
}
