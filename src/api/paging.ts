import { type TSchema, Type } from "typebox";
import { EXACT_TOTAL_UP_TO, type Page, type PageOf } from "../db/paging.ts";
import type { IdPrefix } from "../ids.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { invalidField } from "./errors.ts";
import { Nullable } from "./schemas.ts";

/**
 * How every list pages: `page`/`per_page`, or `cursor`/`per_page` at any depth. The query fields go into a
 * list's querystring schema, {@link Paged} describes its answer, {@link pageOfQuery} and {@link pagedAnswer}
 * sit on either side of the store's {@link keysetPage}.
 */

/** A timestamp as Postgres prints a `timestamptz`, which is what a cursor holds. */
const PG_TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$/;

const NOT_OURS = "is not a cursor this API made (pass next_cursor back as it is)";

/** The paging fields of a list's querystring; `perPage` is the default `per_page` (at most 100). */
export function pagingQuery(perPage: number) {
  return {
    page: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description: "1-based page number (default 1); not with `cursor`.",
      }),
    ),
    per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: perPage })),
    cursor: Type.Optional(
      Type.String({
        maxLength: 512,
        description: "`next_cursor` of the previous page: pages at any depth, stable while new items arrive.",
      }),
    ),
  };
}

export interface PagingParams {
  page?: number;
  per_page?: number;
  cursor?: string;
}

/** The answer of a list of `item`s. */
export function Paged<T extends TSchema>(item: T) {
  return Type.Object({
    data: Type.Array(item),
    page: Type.Integer({ description: "The page number asked for (1 with a cursor)." }),
    per_page: Type.Integer(),
    next_cursor: Nullable(Type.String(), {
      description: "Pass as `cursor` for the next page; null on the last page.",
    }),
    total: Type.Integer({
      description: `Items matching, over all pages: exact up to ${EXACT_TOTAL_UP_TO}, an estimate above (then \`total_estimated\` is true).`,
    }),
    total_estimated: Type.Optional(Type.Boolean()),
  });
}

/** Which page a query asks for; a cursor of another list (ids of another `prefix`) or a malformed one is a 400 naming `query.cursor`. */
export function pageOfQuery(q: PagingParams, prefix: IdPrefix): PageOf {
  if (q.cursor === undefined) return { page: q.page ?? 1 };
  if (q.page !== undefined) throw invalidField("query.cursor", "cannot be combined with query.page");
  const c = decodeCursor(q.cursor, ["t", "i"] as const);
  if (!(PG_TIMESTAMP.test(c.t) && new RegExp(`^${prefix}_[a-z0-9]{1,40}$`).test(c.i))) {
    throw invalidField("query.cursor", NOT_OURS);
  }
  return { cursor: { createdAt: c.t, id: c.i } };
}

/** The answer to a list request: the page's rows as `present` shows them, and where the next page starts. */
export function pagedAnswer<R, V>(page: Page<R>, q: PagingParams, perPage: number, present: (row: R) => V) {
  return {
    data: page.rows.map(present),
    page: q.cursor === undefined ? (q.page ?? 1) : 1,
    per_page: perPage,
    next_cursor: page.next ? encodeCursor({ t: page.next.createdAt, i: page.next.id }) : null,
    total: page.total,
    ...(page.totalEstimated ? { total_estimated: true } : {}),
  };
}

/** `per_page` when a configuration list is asked without one: the whole list of a typical organization. */
export const LIST_PER_PAGE = 100;

/** The querystring of a configuration list (destinations, automations, integrations, keys). */
export const ListQuery = Type.Object(pagingQuery(LIST_PER_PAGE), { additionalProperties: false });

/** Reads a configuration list's page with `list(pageOf, perPage)` and answers with it as `present` shows each row. */
export async function answerList<R, V>(
  q: PagingParams,
  prefix: IdPrefix,
  list: (pageOf: PageOf, perPage: number) => Promise<Page<R>>,
  present: (row: R) => V,
) {
  const perPage = q.per_page ?? LIST_PER_PAGE;
  return pagedAnswer(await list(pageOfQuery(q, prefix), perPage), q, perPage, present);
}
