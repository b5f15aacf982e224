import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';

/**
 * The accreditation review queue sorts by `submitted_at`, which is null on a record never
 * submitted (the baseline `not_required` one every user gets). Cursor paging must still walk every
 * row of a queue that holds such records: found, a cursor naming one (or any cursor, for the rows
 * without a submission) compared `(null, id) > (...)`, which is never true, so the walk ended
 * early on an empty page that had been announced by `next_cursor`.
 */
let t: TestApp;
let admin: Record<string, string>;
const SUBMITTED = 3;
const NEVER = 4;

beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
  await t.db.execute(sql`
    with made as (
      insert into users (org_id, role) select ${t.org.id}::uuid, 'user' from generate_series(1, ${SUBMITTED + NEVER}) returning id
    ), numbered as (select id, row_number() over (order by id) as k from made)
    insert into accreditations (org_id, user_id, status, review_status, submitted_at)
    select ${t.org.id}::uuid, id, 'pending', 'not_required', case when k <= ${SUBMITTED} then now() - make_interval(secs => k::int) end
    from numbered`);
});
afterAll(() => t.close());

type Body = { data: { items: { id: string }[]; meta: { next_cursor: string | null; total: number } } };

describe('accreditation queue cursor', () => {
  it('walks every record by cursor, those never submitted included', async () => {
    const all = await t.get<Body>('/admin/accreditations?review_status=not_required&limit=100', admin);
    const expected = all.body.data.items.map((item) => item.id);
    expect(expected.length).toBeGreaterThanOrEqual(SUBMITTED + NEVER);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const response: { status: number; text: string; body: Body } = await t.get<Body>(
        `/admin/accreditations?review_status=not_required&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        admin,
      );
      expect(response.status, response.text).toBe(200);
      seen.push(...response.body.data.items.map((item) => item.id));
      expect(response.body.data.meta.total).toBe(expected.length);
      cursor = response.body.data.meta.next_cursor;
      if (!cursor) break;
      expect(response.body.data.items.length).toBe(2);
    }
    expect(seen).toEqual(expected);
  });

  it('a cursor naming no record of the org still gives an empty page', async () => {
    const other = await t.createOrg({ name: 'Other', adminEmails: ['other-admin@example.com'] });
    const otherAdmin = await t.signIn('other-admin@example.com', other);
    const mine = await t.get<Body>('/admin/accreditations?review_status=not_required&limit=100', admin);
    const dated = mine.body.data.items[0]!.id;
    const undated = mine.body.data.items.at(-1)!.id;
    for (const cursor of [dated, undated, '00000000-0000-4000-8000-000000000000']) {
      const page = await t.get<Body>(`/admin/accreditations?review_status=not_required&cursor=${cursor}`, otherAdmin.auth);
      expect(page.status, page.text).toBe(200);
      expect(page.body.data.items).toEqual([]);
    }
    const unknown = await t.get<Body>(
      '/admin/accreditations?review_status=not_required&cursor=00000000-0000-4000-8000-000000000000',
      admin,
    );
    expect(unknown.body.data.items).toEqual([]);
  });
});
