import { and, eq, sql, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { queryRows, type Executor } from './database.ts';

/**
 * The most matches a list counts. An exact count reads every match, so its cost grows with the org
 * (a filter matching most of 1 M rows: about 100 ms, for a page that costs 1 ms); counting stops
 * here instead: past it a list answers `total: TOTAL_CAP` and `total_capped: true`.
 */
export const TOTAL_CAP = 1000;

/**
 * What a list says about its size: `total` is the number of matches, counted up to `TOTAL_CAP`;
 * `totalCapped` is true when more than `TOTAL_CAP` match (`total` is then `TOTAL_CAP`).
 */
export type CappedTotal = { total: number; totalCapped: boolean };

/** One page of a list: at most `limit` rows, whether more follow them (`hasMore`), and the capped total. */
export type Page<T> = CappedTotal & { rows: T[]; hasMore: boolean };

/** Where a count reads: a table, or a join written as SQL (`sql\`${a} join ${b} on ...\``) when `where` names columns of both. */
export type CountSource = PgTable | SQL;

/** `matches` (any non-negative count) as a `CappedTotal`. */
export const cappedTotal = (matches: number): CappedTotal => ({ total: Math.min(matches, TOTAL_CAP), totalCapped: matches > TOTAL_CAP });

/**
 * Counts the rows of `from` matching `where` (every row when undefined), reading at most
 * `TOTAL_CAP + 1` of them: the cost is bounded whatever the number of matches.
 */
export async function countCapped(tx: Executor, from: CountSource, where: SQL | undefined): Promise<CappedTotal> {
  const [row] = await queryRows<{ matches: number }>(
    tx,
    sql`select count(*)::int as matches from (select 1 from ${from} ${where ? sql`where ${where}` : sql``} limit ${TOTAL_CAP + 1}) as matches`,
  );
  return cappedTotal(Number(row?.matches ?? 0));
}

/**
 * A list's page from `rows`, which the caller read with `limit + 1` (the extra row, dropped here,
 * says that more follow: `hasMore`), and its capped total. `paging.after` set: a keyset page
 * (cursor), whose `offset` is not used. The total is counted by `countCapped(tx, count.from,
 * count.where)` (`where` without the keyset condition), except when the page itself says it: an
 * offset page with no more after it, and with rows or at offset 0, ends the matches at
 * `offset + rows`.
 */
export async function pageWithTotal<T>(
  tx: Executor,
  rows: T[],
  paging: { limit: number; offset: number; after?: string },
  count: { from: CountSource; where: SQL | undefined },
): Promise<Page<T>> {
  const hasMore = rows.length > paging.limit;
  const page = hasMore ? rows.slice(0, paging.limit) : rows;
  const endsHere = !paging.after && !hasMore && (page.length > 0 || paging.offset === 0);
  const total = endsHere ? cappedTotal(paging.offset + page.length) : await countCapped(tx, count.from, count.where);
  return { rows: page, hasMore, ...total };
}

/**
 * The keyset condition of a cursor page: the rows after the row whose id is `after`, in the list's
 * order `(sort, id)` (`direction` as the list sorts; `id` the table's primary key). `scope` limits
 * which row may be the cursor (the caller's org): a cursor naming no such row matches nothing, so
 * its page is empty. Undefined without `after` (a first or offset page).
 *
 * `nullable`: `sort` may be null, and the list orders by PostgreSQL's default, nulls last when
 * ascending and first when descending. A row comparison with a null is never true, so without
 * this the rows whose sort is null would be on no cursor page, and a cursor naming one would give
 * an empty page: the walk would end early.
 */
export function keysetAfter(
  order: { sort: PgColumn; id: PgColumn; direction: 'asc' | 'desc'; nullable?: boolean },
  after: string | undefined,
  scope?: SQL,
): SQL | undefined {
  if (!after) return undefined;
  const { sort, id } = order;
  const comparison = order.direction === 'desc' ? sql`<` : sql`>`;
  const cursorRow = and(eq(id, after), scope);
  if (!order.nullable)
    return sql`(${sort}, ${id}) ${comparison} (select ${sql.identifier(sort.name)}, ${sql.identifier(id.name)} from ${id.table} where ${cursorRow})`;
  // The cursor's values, each null when no row is the cursor (then its id is null, and nothing matches).
  const cursorSort = sql`(select ${sql.identifier(sort.name)} from ${id.table} where ${cursorRow})`;
  const cursorId = sql`(select ${sql.identifier(id.name)} from ${id.table} where ${cursorRow})`;
  const pastNulls =
    order.direction === 'asc'
      ? // Nulls last: after a dated cursor every null; after a null cursor the nulls of a greater id.
        sql`(${sort} is null and (${cursorSort} is not null or ${id} > ${cursorId}))`
      : // Nulls first: after a null cursor the nulls of a smaller id, and every dated row.
        sql`(${cursorId} is not null and ${cursorSort} is null and (${sort} is not null or ${id} < ${cursorId}))`;
  return sql`((${sort}, ${id}) ${comparison} (${cursorSort}, ${cursorId}) or ${pastNulls})`;
}
