import { describe, expect, it } from 'vitest';
import { toSnake } from '../../src/platform/http/case.ts';
import { offsetPagingQuery, pageMetaFor, pageOffset, pagePagingQuery } from '../../src/platform/http/paging.ts';

describe('paging', () => {
  it('computes issuance page meta at the edges', () => {
    expect(pageMetaFor({ page: 1, limit: 20 }, { total: 0, totalCapped: false, hasMore: false })).toEqual({
      page: 1,
      limit: 20,
      total: 0,
      total_capped: false,
      total_pages: 0,
      has_next_page: false,
      has_previous_page: false,
    });
    expect(pageMetaFor({ page: 2, limit: 20 }, { total: 41, totalCapped: false, hasMore: true })).toMatchObject({
      total_pages: 3,
      has_next_page: true,
      has_previous_page: true,
    });
    expect(pageMetaFor({ page: 3, limit: 20 }, { total: 41, totalCapped: false, hasMore: false })).toMatchObject({ has_next_page: false });
    // Capped: the pages follow the capped total, the next page follows the read.
    expect(pageMetaFor({ page: 60, limit: 20 }, { total: 1000, totalCapped: true, hasMore: true })).toMatchObject({
      total_capped: true,
      total_pages: 50,
      has_next_page: true,
    });
    expect(pageOffset({ page: 3, limit: 20 })).toBe(40);
  });

  it('parses query strings with defaults and bounds', () => {
    expect(pagePagingQuery.parse({})).toEqual({ page: 1, limit: 20 });
    expect(pagePagingQuery.safeParse({ limit: '101' }).success).toBe(false);
    expect(pagePagingQuery.safeParse({ page: '0' }).success).toBe(false);
    expect(offsetPagingQuery.parse({ limit: '5', offset: '10' })).toEqual({ limit: 5, offset: 10 });
    expect(offsetPagingQuery.safeParse({ offset: '-1' }).success).toBe(false);
  });
});

describe('toSnake', () => {
  it('snake_cases keys deeply and leaves values and dates alone', () => {
    const date = new Date(0);
    expect(toSnake({ userId: 'a', createdAt: date, nested: [{ firstName: 'Ann', ssnLast4: null }] })).toEqual({
      user_id: 'a',
      created_at: date,
      nested: [{ first_name: 'Ann', ssn_last4: null }],
    });
  });

  it('leaves keys that are not camelCase identifiers alone', () => {
    expect(toSnake({ uploadHeaders: { 'Content-Type': 'application/pdf', 'x-amz-acl': 'private' } })).toEqual({
      upload_headers: { 'Content-Type': 'application/pdf', 'x-amz-acl': 'private' },
    });
  });
});
