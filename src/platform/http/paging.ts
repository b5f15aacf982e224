import { z } from 'zod';
import { INT4_MAX, queryInt4 } from './integers.ts';

/** Identity style: `?limit&offset`. */
export const offsetPagingQuery = z.object({
  limit: queryInt4(1, 100).default(20),
  offset: queryInt4(0).default(0),
});
export type OffsetPaging = z.infer<typeof offsetPagingQuery>;

export const offsetPageMeta = z.object({ limit: z.number(), offset: z.number(), total: z.number() });

/**
 * `?limit&offset` plus `cursor`: the id of the last item of the previous page (its meta's
 * `next_cursor`). A cursor page costs the same at any depth and is not shifted by items added
 * meanwhile; `offset` is then ignored. A cursor naming no item of the list gives an empty page.
 */
export const cursorPagingQuery = offsetPagingQuery.extend({
  cursor: z.uuid().optional().describe('`next_cursor` of the previous page; `offset` is then ignored'),
});
export type CursorPaging = z.infer<typeof cursorPagingQuery>;

export const cursorPageMeta = offsetPageMeta.extend({
  next_cursor: z.uuid().nullable().describe('pass as `cursor` for the next page; null on the last page'),
});

/** The meta of one cursor-or-offset page of `ids` (in order): `next_cursor` is the last id when the page is full. */
export function cursorPageMetaFor(paging: CursorPaging, ids: string[], total: number): z.infer<typeof cursorPageMeta> {
  return {
    limit: paging.limit,
    offset: paging.cursor ? 0 : paging.offset,
    total,
    next_cursor: ids.length === paging.limit ? ids.at(-1)! : null,
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
  total: z.number(),
  total_pages: z.number(),
  has_next_page: z.boolean(),
  has_previous_page: z.boolean(),
});

export function pageMetaFor(paging: PagePaging, total: number): z.infer<typeof pageMeta> {
  const totalPages = Math.ceil(total / paging.limit);
  return {
    page: paging.page,
    limit: paging.limit,
    total,
    total_pages: totalPages,
    has_next_page: paging.page < totalPages,
    has_previous_page: paging.page > 1,
  };
}

export function pageOffset(paging: PagePaging): number {
  return (paging.page - 1) * paging.limit;
}
