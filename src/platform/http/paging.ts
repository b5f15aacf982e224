import { z } from 'zod';
import type { CappedTotal } from '../db/pages.ts';
import { INT4_MAX, queryInt4 } from './integers.ts';

/** What a list read tells its meta: its capped total and whether more items follow the page (see `Page` in `db/pages.ts`). */
export type PageCount = CappedTotal & { hasMore: boolean };

/** Identity style: `?limit&offset`. */
export const offsetPagingQuery = z.object({
  limit: queryInt4(1, 100).default(20),
  offset: queryInt4(0).default(0),
});
export type OffsetPaging = z.infer<typeof offsetPagingQuery>;

/** How every list meta describes `total` and `total_capped` (the OpenAPI text). */
export const TOTAL_DESCRIPTION = 'matching items, counted up to 1 000 (see `total_capped`)';
export const TOTAL_CAPPED_DESCRIPTION = 'true when more than 1 000 items match: `total` is then 1 000';
/** The sentence every list route's description ends with. */
export const CAPPED_TOTAL_NOTE =
  '`total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.';

export const offsetPageMeta = z.object({
  limit: z.number(),
  offset: z.number(),
  total: z.number().describe(TOTAL_DESCRIPTION),
  total_capped: z.boolean().describe(TOTAL_CAPPED_DESCRIPTION),
  has_next_page: z.boolean().describe('whether items follow this page (page on with `offset` + `limit`), past the capped `total` too'),
});

/** The meta of one `?limit&offset` page: `{ limit, offset, total, total_capped, has_next_page }`. */
export function offsetPageMetaFor(paging: OffsetPaging, count: PageCount): z.infer<typeof offsetPageMeta> {
  return { limit: paging.limit, offset: paging.offset, total: count.total, total_capped: count.totalCapped, has_next_page: count.hasMore };
}

const cursorParam = z.uuid().optional();
const nextCursor = z.uuid().nullable().describe('pass as `cursor` for the next page; null on the last page');

/**
 * `?limit&offset` plus `cursor`: the id of the last item of the previous page (its meta's
 * `next_cursor`). A cursor page costs the same at any depth and is not shifted by items added
 * meanwhile; `offset` is then ignored. A cursor naming no item of the list gives an empty page.
 */
export const cursorPagingQuery = offsetPagingQuery.extend({
  cursor: cursorParam.describe('`next_cursor` of the previous page; `offset` is then ignored'),
});
export type CursorPaging = z.infer<typeof cursorPagingQuery>;

export const cursorPageMeta = offsetPageMeta.extend({ next_cursor: nextCursor });

/** The meta of one cursor-or-offset page of `ids` (in order): `next_cursor` is the last id when more items follow. */
export function cursorPageMetaFor(paging: CursorPaging, ids: string[], count: PageCount): z.infer<typeof cursorPageMeta> {
  return {
    ...offsetPageMetaFor({ limit: paging.limit, offset: paging.cursor ? 0 : paging.offset }, count),
    next_cursor: count.hasMore && ids.length > 0 ? ids.at(-1)! : null,
  };
}

/** Issuance style: `?page&limit` with page meta. */
export const pagePagingQuery = z.object({
  page: queryInt4(1, Math.floor(INT4_MAX / 100)).default(1),
  limit: queryInt4(1, 100).default(20),
});
export type PagePaging = z.infer<typeof pagePagingQuery>;

export const pageMeta = z.object({
  page: z.number(),
  limit: z.number(),
  total: z.number().describe(TOTAL_DESCRIPTION),
  total_capped: z.boolean().describe(TOTAL_CAPPED_DESCRIPTION),
  total_pages: z.number().describe('pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`)'),
  has_next_page: z.boolean().describe('whether items follow this page (true past `total_pages` too when `total_capped`)'),
  has_previous_page: z.boolean(),
});

/**
 * The meta of one `?page&limit` page. `total_pages` follows the capped total; `has_next_page`
 * follows `count.hasMore` (the page's read), so it stays right past the capped pages.
 */
export function pageMetaFor(paging: PagePaging, count: PageCount): z.infer<typeof pageMeta> {
  return {
    page: paging.page,
    limit: paging.limit,
    total: count.total,
    total_capped: count.totalCapped,
    total_pages: Math.ceil(count.total / paging.limit),
    has_next_page: count.hasMore,
    has_previous_page: paging.page > 1,
  };
}

export function pageOffset(paging: PagePaging): number {
  return (paging.page - 1) * paging.limit;
}

/** `?page&limit` plus `cursor` (see `cursorPagingQuery`): with a cursor, `page` is ignored. */
export const pageCursorPagingQuery = pagePagingQuery.extend({
  cursor: cursorParam.describe('`next_cursor` of the previous page; `page` is then ignored'),
});
export type PageCursorPaging = z.infer<typeof pageCursorPagingQuery>;

export const pageCursorMeta = pageMeta.extend({
  page: z.number().nullable().describe('null when paged by `cursor`'),
  next_cursor: nextCursor,
});

/** The meta of one page-or-cursor page of `ids` (in order): page meta, `page` null after a cursor, and `next_cursor`. */
export function pageCursorMetaFor(paging: PageCursorPaging, ids: string[], count: PageCount): z.infer<typeof pageCursorMeta> {
  const meta = pageMetaFor(paging, count);
  return {
    ...meta,
    ...(paging.cursor ? { page: null, has_previous_page: true } : {}),
    next_cursor: count.hasMore && ids.length > 0 ? ids.at(-1)! : null,
  };
}
