import { asc } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(2048, 32), Buffer.from('\n%%EOF\n')]);

describe('the typical user journey of spec/kyc-and-accreditation.txt', () => {
  it('exchange → KYC approved → accreditation with a real uploaded file → admin approval → a new token shows the claims', async () => {
    const investor = await t.signIn('journey@example.com');
    expect(investor.claims).toMatchObject({ kyc_completed: false, accredited: false, accreditation_verified: false });

    const kyc = await t.post('/identity/kyc-verifications', johnSmith, investor.auth);
    expect(kyc.status).toBe(201);
    expect(kyc.body.data).toMatchObject({
      user_id: investor.userId,
      org_id: t.org.id,
      status: 'approved',
      checks: { identity: 'passed' },
      required_action: null,
    });
    expect(kyc.body.data.completed_at).not.toBeNull();
    expect((await t.get('/identity/kyc', investor.auth)).body.data.status).toBe('approved');
    expect((await t.get(`/identity/user-pii/${investor.userId}`, investor.auth)).body.data.ssn).toBe('*****3333');

    const baseline = await t.get('/identity/accreditations', investor.auth);
    expect(baseline.body.data).toMatchObject({ accreditation_status: 'pending', review_status: 'not_required', verified: false });

    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: investor.auth,
    });
    expect(certified.body.data).toMatchObject({
      accreditation_status: 'accredited',
      accreditation_basis: 'income',
      review_status: 'pending_review',
    });

    const requested = await t.post(
      '/identity/accreditations/documents',
      { documentType: 'income_proof', fileName: 'tax-return-2025.pdf', contentType: 'application/pdf', fileSizeBytes: pdf.length },
      investor.auth,
    );
    expect(requested.status).toBe(201);
    expect(requested.body.data).toMatchObject({
      document_type: 'income_proof',
      status: 'upload_pending',
      upload: { method: 'PUT', headers: { 'Content-Type': 'application/pdf' } },
    });

    const uploadUrl = new URL(requested.body.data.upload.url);
    const put = await fetch(`${t.url}${uploadUrl.pathname}${uploadUrl.search}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/pdf' },
      body: pdf,
    });
    expect(put.status).toBe(200);

    const finalized = await t.post(`/identity/accreditations/documents/${requested.body.data.id}/upload`, undefined, investor.auth);
    expect(finalized.status).toBe(200);
    expect(finalized.body.data.status).toBe('uploaded');

    const admin = await t.signIn('admin@example.com');
    const queue = await t.get('/admin/accreditations', admin.auth);
    expect(queue.body.data.items.map((item: { user_id: string }) => item.user_id)).toContain(investor.userId);
    const accreditationId = certified.body.data.id;
    expect((await t.post(`/admin/accreditations/${accreditationId}/start-review`, {}, admin.auth)).body.data.review_status).toBe(
      'under_review',
    );
    const approved = await t.post(`/admin/accreditations/${accreditationId}/approve`, { reason: 'W-2s check out' }, admin.auth);
    expect(approved.body.data).toMatchObject({ review_status: 'approved', verified: true, review_reason: 'W-2s check out' });
    const validDays = (new Date(approved.body.data.expires_at).getTime() - Date.now()) / 86_400_000;
    expect(validDays).toBeGreaterThan(89.9);
    expect(validDays).toBeLessThanOrEqual(90);

    const refreshed = await t.post('/identity/auth/refresh', { refreshToken: investor.refreshToken });
    const claims = JSON.parse(Buffer.from(refreshed.body.access_token.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ kyc_completed: true, accredited: true, accreditation_verified: true });

    expect(await t.modules.identity.eligibility(t.org.id, investor.userId)).toMatchObject({
      kycStatus: 'approved',
      accreditation: { status: 'accredited', basis: 'income', reviewStatus: 'approved', verified: true },
    });

    const events = await t.db.select().from(outboxEvents).orderBy(asc(outboxEvents.createdAt));
    expect(events.map((event) => event.type)).toEqual([
      'kyc.verification.created',
      'kyc.verification.approved',
      'accreditation.submitted',
      'accreditation.document.uploaded',
      'accreditation.approved',
    ]);
    const payloads = JSON.stringify(events.map((event) => event.data));
    for (const pii of ['JOHN', 'SMITH', '112223333', 'PEACHTREE', 'journey@example.com']) expect(payloads).not.toContain(pii);
  });
});
