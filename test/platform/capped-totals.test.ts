import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/platform/db/database.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';

/**
 * Lists count their matches up to 1 000 (`total_capped` past that) and say whether more follow
 * from the page's own read, so paging stays right past the capped total. Rows are seeded
 * set-based, straight into the tables: no API would make a thousand of them quickly.
 */
let t: TestApp;
let admin: Record<string, string>;
let userId: string;
let offeringId: string;

type Meta = Record<string, unknown>;
type ListBody = { data: { items: { id: string; verification_id?: string }[]; meta: Meta } };

const COMPLETED = 1250;
const PENDING = 7;
const KYC_APPROVED = 1005;
const AUDIT_ENTRIES = 1005;

beforeAll(async () => {
  t = await startTestApp();
  const session = await t.signIn('admin@example.com');
  admin = session.auth;
  userId = session.userId;
  const seeded = await seedOffering(t, admin);
  offeringId = seeded.offeringId;
  // Three subscriptions share each creation time, so paging leans on the id tie-break too.
  const subscription = (status: string, count: number) =>
    t.db.execute(sql`insert into subscriptions (org_id, offering_id, security_class_id, user_id, units, price_per_unit_cents,
        amount_cents, currency, payment_method, accreditation_status, suitability_confirmed, risk_acknowledgment_signed, status, created_at)
      select ${t.org.id}::uuid, ${offeringId}::uuid, ${seeded.securityId}::uuid, gen_random_uuid(), 1, 1000, 1000, 'USD', 'card',
        'accredited', true, true, ${status}, now() - make_interval(secs => k / 3)
      from generate_series(1, ${count}) as k`);
  await subscription('completed', COMPLETED);
  await subscription('pending_review', PENDING);
  await t.db
    .execute(sql`insert into kyc_verifications (org_id, user_id, status, identity_check, document_check, provider, expires_at, created_at)
    select ${t.org.id}::uuid, ${userId}::uuid, 'approved', 'passed', 'passed', 'sandbox', now() + interval '1 day', now() - make_interval(secs => k / 3)
    from generate_series(1, ${KYC_APPROVED}) as k`);
  await t.db.execute(sql`insert into audit_entries (id, chain_id, seq, org_id, actor_kind, actor_id, action, subject_type, subject_id,
      related, details, occurred_at, prev_hash, hash)
    select gen_random_uuid(), 'test:capped-totals', k, ${t.org.id}::uuid, 'system', 'test', 'test.capped', 'test', k::text,
      '{}'::text[], '{}'::jsonb, now() - make_interval(secs => k), 'x', 'x'
    from generate_series(1, ${AUDIT_ENTRIES}) as k`);
});
afterAll(() => t.close());

const get = async (path: string) => {
  const response = await t.get<ListBody>(path, admin);
  expect(response.status, response.text).toBe(200);
  return response.body.data;
};

describe('capped totals happy', () => {
  it('the admin subscription queue (page style) caps the total at 1 000 and pages on past it', async () => {
    const first = await get('/admin/subscriptions?status=completed');
    expect(first.items).toHaveLength(20);
    expect(first.meta).toEqual({
      page: 1,
      limit: 20,
      total: 1000,
      total_capped: true,
      total_pages: 50,
      has_next_page: true,
      has_previous_page: false,
      next_cursor: first.items[19]!.id,
    });
    // The last page the capped total knows of, and one past it: more follow both.
    for (const page of [50, 60]) {
      const deep = await get(`/admin/subscriptions?status=completed&page=${page}`);
      expect(deep.items).toHaveLength(20);
      expect(deep.meta).toMatchObject({
        page,
        total: 1000,
        total_capped: true,
        total_pages: 50,
        has_next_page: true,
        has_previous_page: true,
      });
    }
    // The real last page (1 241..1 250), then past the end.
    const last = await get('/admin/subscriptions?status=completed&page=63');
    expect(last.items).toHaveLength(10);
    expect(last.meta).toMatchObject({ total: 1000, total_capped: true, has_next_page: false, next_cursor: null });
    const past = await get('/admin/subscriptions?status=completed&page=64');
    expect(past.items).toEqual([]);
    expect(past.meta).toMatchObject({ total: 1000, total_capped: true, has_next_page: false, next_cursor: null });
  });

  it('the admin subscription queue walks by cursor: every subscription once, newest first', async () => {
    const expected = await queryRows<{ id: string }>(
      t.db,
      sql`select id from subscriptions where org_id = ${t.org.id} and status = 'completed' order by created_at desc, id desc`,
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await get(`/admin/subscriptions?status=completed&limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.items.map((item) => item.id));
      expect(page.meta).toMatchObject({ total: 1000, total_capped: true, limit: 100, page: cursor ? null : 1 });
      expect(page.meta.has_next_page).toBe(page.meta.next_cursor !== null);
      cursor = page.meta.next_cursor as string | null;
      pages++;
    } while (cursor);
    expect(pages).toBe(Math.ceil(COMPLETED / 100));
    expect(new Set(seen).size).toBe(COMPLETED);
    expect(seen).toEqual(expected.map((row) => row.id));
  });

  it('counts exactly under the cap, whether the page or the count says it', async () => {
    const all = await get('/admin/subscriptions');
    expect(all.items).toHaveLength(PENDING);
    expect(all.meta).toMatchObject({ total: PENDING, total_capped: false, total_pages: 1, has_next_page: false, next_cursor: null });
    const first = await get('/admin/subscriptions?limit=5');
    expect(first.meta).toMatchObject({ total: PENDING, total_capped: false, total_pages: 2, has_next_page: true });
    const second = await get('/admin/subscriptions?limit=5&page=2');
    expect(second.items).toHaveLength(2);
    expect(second.meta).toMatchObject({ total: PENDING, total_capped: false, has_next_page: false });
    const past = await get('/admin/subscriptions?limit=5&page=3');
    expect(past.items).toEqual([]);
    expect(past.meta).toMatchObject({ total: PENDING, total_capped: false, has_next_page: false });
    const cursorWalk = await get(`/admin/subscriptions?limit=5&cursor=${first.meta.next_cursor as string}`);
    expect(cursorWalk.items.map((item) => item.id)).toEqual(second.items.map((item) => item.id));
    expect(cursorWalk.meta).toMatchObject({ page: null, total: PENDING, total_capped: false, has_next_page: false, next_cursor: null });
  });

  it('the KYC lists (offset and cursor style) cap the total and walk past it', async () => {
    const list = await get('/identity/kyc-verifications?status=approved&limit=100');
    expect(list.items).toHaveLength(100);
    expect(list.meta).toEqual({ limit: 100, offset: 0, total: 1000, total_capped: true, has_next_page: true });
    const deep = await get('/identity/kyc-verifications?status=approved&limit=100&offset=1000');
    expect(deep.items).toHaveLength(KYC_APPROVED - 1000);
    expect(deep.meta).toEqual({ limit: 100, offset: 1000, total: 1000, total_capped: true, has_next_page: false });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await get(`/admin/kyc-verifications?status=approved&limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...page.items.map((item) => item.verification_id!));
      expect(page.meta).toMatchObject({ total: 1000, total_capped: true });
      cursor = page.meta.next_cursor as string | null;
    } while (cursor);
    expect(new Set(seen).size).toBe(KYC_APPROVED);
    const offsetPage = await get('/admin/kyc-verifications?status=approved&limit=100&offset=1000');
    expect(offsetPage.meta).toEqual({ limit: 100, offset: 1000, total: 1000, total_capped: true, has_next_page: false, next_cursor: null });
  });

  it('the audit list caps the total, and counts a narrow filter exactly', async () => {
    const capped = await get('/identity/audit?action=test.capped&limit=10');
    expect(capped.meta).toEqual({ limit: 10, offset: 0, total: 1000, total_capped: true, has_next_page: true });
    const narrow = await get('/identity/audit?action=test.capped&subject_type=test&subject_id=7');
    expect(narrow.items).toHaveLength(1);
    expect(narrow.meta).toEqual({ limit: 20, offset: 0, total: 1, total_capped: false, has_next_page: false });
    const other = await get('/identity/audit?action=offering.created');
    expect(other.meta).toMatchObject({ total: other.items.length, total_capped: false });
  });

  it('the caller’s own lists carry total_capped too', async () => {
    const own = await get(`/issuance/subscriptions?offering_id=${offeringId}`);
    expect(own.meta).toMatchObject({ total: 0, total_capped: false, has_next_page: false });
    const offerings = await get('/issuance/offerings');
    expect(offerings.meta).toMatchObject({ total: 1, total_capped: false, total_pages: 1, has_next_page: false });
  });
});

describe('capped totals error', () => {
  it('refuses a malformed cursor with 400, and a cursor naming no subscription of the org gives an empty page', async () => {
    const bad = await t.get('/admin/subscriptions?cursor=not-a-uuid', admin);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ success: false, error: { code: 'VALIDATION_ERROR' } });
    const unknown = await get('/admin/subscriptions?status=completed&cursor=00000000-0000-4000-8000-000000000000');
    expect(unknown.items).toEqual([]);
    expect(unknown.meta).toMatchObject({ total: 1000, total_capped: true, has_next_page: false, next_cursor: null });
  });
});

describe('capped totals security', () => {
  it('an org admin cannot page by another org’s subscription', async () => {
    const other = await t.createOrg({ name: 'Other', adminEmails: ['other-admin@example.com'] });
    const otherAdmin = await t.signIn('other-admin@example.com', other);
    const [foreign] = await queryRows<{ id: string }>(t.db, sql`select id from subscriptions where org_id = ${t.org.id} limit 1`);
    const page = await t.get<ListBody>(`/admin/subscriptions?status=completed&cursor=${foreign!.id}`, otherAdmin.auth);
    expect(page.status, page.text).toBe(200);
    expect(page.body.data.items).toEqual([]);
    expect(page.body.data.meta).toMatchObject({ total: 0, total_capped: false });
  });
});
