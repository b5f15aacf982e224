import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kycVerifications } from '../../src/identity/identity.tables.ts';
import { SANDBOX_SIGNATURE_HEADER } from '../../src/identity/kyc/sandbox.provider.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const person = (ssn: string) => ({
  firstName: 'JANE',
  lastName: 'DOE',
  address: '1 MAIN ST',
  city: 'ATLANTA',
  state: 'GA',
  zip: '30318',
  country: 'USA',
  ssn,
  dobMonth: '01',
  dobDay: '15',
  dobYear: '1980',
});

async function startKyc(email: string, ssn: string) {
  const user = await t.signIn(email);
  const response = await t.post('/identity/kyc-verifications', person(ssn), user.auth);
  return { user, response, id: response.body.data?.verification_id as string };
}

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const value = await read();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('condition not reached in 5 s');
}

describe('kyc-verifications happy', () => {
  it('action_required (SSN ending 0001): serves a scan page; completing it approves', async () => {
    const { user, response, id } = await startKyc('scan@example.com', '123450001');
    expect(response.body.data).toMatchObject({
      status: 'action_required',
      checks: { identity: 'needs_review', document: 'pending' },
      required_action: { type: 'document_scan', url: expect.stringContaining('/identity/kyc/sandbox/scan/') },
      completed_at: null,
    });
    const scanPath = new URL(response.body.data.required_action.url).pathname;
    const page = await fetch(`${t.url}${scanPath}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Complete scan');
    // As a browser submits the page's form: url-encoded, no fields.
    const submitted = await fetch(`${t.url}${scanPath}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
    });
    expect(submitted.status).toBe(200);
    expect(await submitted.text()).toContain('Scan complete');

    const after = await t.get(`/identity/kyc-verifications/${id}`, user.auth);
    expect(after.body.data).toMatchObject({
      status: 'approved',
      checks: { identity: 'passed', document: 'passed' },
      required_action: null,
    });
  });

  it('needs_review (0002) waits for an admin, who approves it; a second decision is refused', async () => {
    const { id } = await startKyc('review@example.com', '123450002');
    const admin = await t.signIn('admin@example.com');
    const queue = await t.get('/admin/kyc-verifications', admin.auth);
    expect(queue.body.data.items.map((item: { verification_id: string }) => item.verification_id)).toContain(id);
    const approved = await t.post(`/admin/kyc-verifications/${id}/approve`, { reason: 'documents match' }, admin.auth);
    expect(approved.body.data).toMatchObject({ status: 'approved', checks: { identity: 'passed' } });
    const again = await t.post(`/admin/kyc-verifications/${id}/reject`, { reason: 'changed my mind' }, admin.auth);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('INVALID_STATE');
  });

  it('rejected (0003) and error (0004) are terminal', async () => {
    expect((await startKyc('rejected@example.com', '123450003')).response.body.data).toMatchObject({
      status: 'rejected',
      checks: { identity: 'failed' },
    });
    expect((await startKyc('error@example.com', '123450004')).response.body.data.status).toBe('error');
  });

  it('asynchronous results (0005, 0006) arrive by callback after pending', async () => {
    const approve = await startKyc('async@example.com', '123450005');
    expect(approve.response.body.data).toMatchObject({ status: 'pending', checks: { identity: 'pending' } });
    const approved = await waitFor(
      () => t.db.select().from(kycVerifications).where(eq(kycVerifications.id, approve.id)),
      (rows) => rows[0]!.status !== 'pending',
    );
    expect(approved[0]!.status).toBe('approved');
    const reject = await startKyc('async-reject@example.com', '123450006');
    const rejected = await waitFor(
      () => t.get(`/identity/kyc-verifications/${reject.id}`, reject.user.auth),
      (response) => response.body.data.status !== 'pending',
    );
    expect(rejected.body.data.status).toBe('rejected');
  });

  it('GET /identity/kyc says not_started, then the effective status', async () => {
    const user = await t.signIn('fresh@example.com');
    expect((await t.get('/identity/kyc', user.auth)).body.data).toMatchObject({ status: 'not_started', verification_id: null });
    await t.post('/identity/kyc-verifications', person('123450003'), user.auth);
    expect((await t.get('/identity/kyc', user.auth)).body.data.status).toBe('rejected');
    await t.post('/identity/kyc-verifications', person('112223333'), user.auth);
    expect((await t.get('/identity/kyc', user.auth)).body.data.status).toBe('approved');
  });

  it('the older kyc-sessions routes show the same records', async () => {
    const user = await t.signIn('sessions@example.com');
    const created = await t.post('/identity/kyc-sessions', person('123450001'), user.auth);
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({ status: 'action_required', verification_url: expect.stringContaining('/scan/') });
    const sessionId = created.body.data.session_id;
    expect((await t.get(`/identity/kyc-verifications/${sessionId}`, user.auth)).body.data.status).toBe('action_required');
    expect((await t.get(`/identity/kyc-sessions/${sessionId}`, user.auth)).body.data.session_id).toBe(sessionId);
    expect(
      (await t.get('/identity/kyc-sessions/user', user.auth)).body.data.items.map((s: { session_id: string }) => s.session_id),
    ).toEqual([sessionId]);
  });
});

describe('kyc-verifications error', () => {
  it('allows one open verification per user (409)', async () => {
    const { user } = await startKyc('twice@example.com', '123450001');
    const second = await t.post('/identity/kyc-verifications', person('112223333'), user.auth);
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('CONFLICT');
  });

  it('lets exactly one of several concurrent submissions through', async () => {
    const user = await t.signIn('race-kyc@example.com');
    const results = await Promise.all([1, 2, 3].map(() => t.post('/identity/kyc-verifications', person('123450002'), user.auth)));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
  });

  it('expires checks nobody finished in time, which frees the user to try again', async () => {
    const { user, id } = await startKyc('slow@example.com', '123450001');
    await t.db
      .update(kycVerifications)
      .set({ expiresAt: sql`now() - interval '1 second'` })
      .where(eq(kycVerifications.id, id));
    const expired = await t.get(`/identity/kyc-verifications/${id}`, user.auth);
    expect(expired.body.data).toMatchObject({ status: 'expired', required_action: null });
    expect(expired.body.data.completed_at).not.toBeNull();
    expect((await t.post('/identity/kyc-verifications', person('112223333'), user.auth)).status).toBe(201);
  });

  it('names missing and malformed fields', async () => {
    const user = await t.signIn('bad-kyc@example.com');
    const { ssn: _ssn, ...noSsn } = person('x');
    const missing = await t.post('/identity/kyc-verifications', noSsn, user.auth);
    expect(missing.status).toBe(400);
    expect(missing.body.error.field).toBe('ssn');
    const { city: _city, ...noCity } = person('112223333');
    expect((await t.post('/identity/kyc-verifications', noCity, user.auth)).body.error.field).toBe('city');
    expect(
      (await t.post('/identity/kyc-verifications', { ...person('112223333'), dobDay: '31', dobMonth: '04' }, user.auth)).body.error.field,
    ).toBe('dobDay');
  });

  it('refuses forged provider callbacks', async () => {
    const { id } = await startKyc('forged@example.com', '123450005');
    const [row] = await t.db.select().from(kycVerifications).where(eq(kycVerifications.id, id));
    const body = JSON.stringify({
      reference: row!.providerReference,
      outcome: { status: 'approved', checks: { identity: 'passed', document: 'passed' }, requiredAction: null },
    });
    const forged = await t.request('POST', '/identity/kyc/providers/sandbox/callback', {
      rawBody: body,
      headers: { 'content-type': 'application/json', [SANDBOX_SIGNATURE_HEADER]: 'bm9wZQ' },
    });
    expect(forged.status).toBe(401);
    const { headers, body: signed } = t.modules.identity.sandbox.signedCallback(JSON.parse(body));
    const genuine = await t.request('POST', '/identity/kyc/providers/sandbox/callback', { rawBody: signed.toString(), headers });
    expect(genuine.status).toBe(200);
  });
});

describe('kyc-verifications security', () => {
  it('hides verifications from other users and other orgs', async () => {
    const { id } = await startKyc('owner-kyc@example.com', '123450002');
    const peer = await t.signIn('peer-kyc@example.com');
    expect((await t.get(`/identity/kyc-verifications/${id}`, peer.auth)).status).toBe(404);
    const rival = await t.createOrg({ name: 'Rival KYC', adminEmails: ['admin@rival-kyc.com'] });
    const rivalAdmin = await t.signIn('admin@rival-kyc.com', rival);
    expect((await t.get(`/identity/kyc-verifications/${id}`, rivalAdmin.auth)).status).toBe(404);
    const review = await t.post(`/admin/kyc-verifications/${id}/approve`, {}, rivalAdmin.auth);
    expect(review.status).toBe(404);
    expect((await t.get('/admin/kyc-verifications', rivalAdmin.auth)).body.data.items).toEqual([]);
  });

  it('lists org verifications for org_admin only, without action URLs', async () => {
    await startKyc('listed@example.com', '123450001');
    const user = await t.signIn('plain-kyc@example.com');
    expect((await t.get('/identity/kyc-verifications', user.auth)).status).toBe(403);
    const admin = await t.signIn('admin@example.com');
    const list = await t.get('/identity/kyc-verifications?status=action_required&limit=50', admin.auth);
    expect(list.status).toBe(200);
    expect(list.body.data.items.length).toBeGreaterThan(0);
    expect(list.body.data.meta).toMatchObject({ limit: 50, offset: 0 });
    expect(list.text).not.toContain('/scan/');
    expect((await t.get('/identity/kyc-verifications?status=bogus', admin.auth)).body.error.field).toBe('status');
  });

  it('keeps review away from plain users and accepts a platform admin key', async () => {
    const { id } = await startKyc('platform-review@example.com', '123450002');
    const user = await t.signIn('not-admin@example.com');
    expect((await t.post(`/admin/kyc-verifications/${id}/approve`, {}, user.auth)).status).toBe(403);
    expect((await t.post(`/admin/kyc-verifications/${id}/approve`, {}, { 'x-admin-key': 'tranche_admin_nope' })).status).toBe(401);
    const adminKey = await t.modules.identity.orgs.createAdminKey('test');
    const approved = await t.post(`/admin/kyc-verifications/${id}/reject`, { reason: 'mismatch' }, { 'x-admin-key': adminKey.key });
    expect(approved.body.data.status).toBe('rejected');
  });
});

describe('kyc review: a platform admin working in one org', () => {
  it('X-Tranche-Org narrows the queue and the actions to that org; anything but an org id is 400', async () => {
    const { id } = await startKyc('working-org@example.com', '123450002');
    const other = await t.createOrg({ name: 'Elsewhere' });
    const key = { 'x-admin-key': (await t.modules.identity.orgs.createAdminKey('working-org')).key };
    const ids = async (headers: Record<string, string>) =>
      (
        (await t.get('/admin/kyc-verifications?status=needs_review&limit=100', headers)).body.data.items as { verification_id: string }[]
      ).map((item) => item.verification_id);
    expect(await ids(key)).toContain(id);
    expect(await ids({ ...key, 'x-tranche-org': t.org.id })).toContain(id);
    expect(await ids({ ...key, 'x-tranche-org': other.org.id })).not.toContain(id);
    expect((await t.post(`/admin/kyc-verifications/${id}/approve`, {}, { ...key, 'x-tranche-org': other.org.id })).status).toBe(404);
    const bad = await t.get('/admin/kyc-verifications', { ...key, 'x-tranche-org': 'not-an-org' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_ERROR');
    expect((await t.post(`/admin/kyc-verifications/${id}/approve`, {}, { ...key, 'x-tranche-org': t.org.id })).body.data.status).toBe(
      'approved',
    );
  });
});

describe('kyc review queue paging', () => {
  it('pages the queue by cursor, newest first, each verification once', async () => {
    const admin = await t.signIn('admin@example.com');
    const ids: string[] = [];
    for (const name of ['page-a', 'page-b', 'page-c']) ids.push((await startKyc(`${name}@example.com`, '123450002')).id);
    const full = await waitFor(
      () => t.get('/admin/kyc-verifications?limit=100', admin.auth),
      (response) => ids.every((id) => response.body.data.items.some((item: { verification_id: string }) => item.verification_id === id)),
    );
    expect(full.body.data.meta.next_cursor).toBeNull();
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { data: { items: { verification_id: string }[]; meta: { next_cursor: string | null } } } } = await t.get(
        `/admin/kyc-verifications?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        admin.auth,
      );
      seen.push(...page.body.data.items.map((item) => item.verification_id));
      cursor = page.body.data.meta.next_cursor;
    } while (cursor);
    expect(seen).toEqual(full.body.data.items.map((item: { verification_id: string }) => item.verification_id));
    expect((await t.get('/admin/kyc-verifications?cursor=x', admin.auth)).body.error.field).toBe('cursor');
  });
});
