import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const person = (ssn: string) => ({ ...johnSmith, ssn });

describe('lists follow the contract', () => {
  it('identity lists page with limit/offset and say so in meta', async () => {
    const user = await t.signIn('lister@example.com');
    // Two rejected checks (the sandbox rejects these SSNs), so the user may start another each time.
    for (const ssn of ['123450003', '123450003']) expect((await t.post('/identity/kyc-sessions', person(ssn), user.auth)).status).toBe(201);

    const kyc = await t.get('/identity/kyc-sessions/user?limit=1&offset=1', user.auth);
    expect(kyc.status, kyc.text).toBe(200);
    expect(kyc.body.data.meta).toEqual({ limit: 1, offset: 1, total: 2, total_capped: false, has_next_page: false });
    expect(kyc.body.data.items).toHaveLength(1);
    expect((await t.get('/identity/kyc-sessions/user?limit=1', user.auth)).body.data.meta).toMatchObject({ total: 2, has_next_page: true });
    expect((await t.get('/identity/kyc-sessions/user', user.auth)).body.data.meta).toEqual({
      limit: 20,
      offset: 0,
      total: 2,
      total_capped: false,
      has_next_page: false,
    });
    expect((await t.get('/identity/kyc-sessions/user?limit=101', user.auth)).status).toBe(400);

    const accreditation = await t.get('/identity/accreditation-sessions/user?limit=5', user.auth);
    expect(accreditation.status, accreditation.text).toBe(200);
    expect(accreditation.body.data.meta).toEqual({ limit: 5, offset: 0, total: 1, total_capped: false, has_next_page: false });
    expect(accreditation.body.data.items).toHaveLength(1);
    expect((await t.get('/identity/accreditation-sessions/user?offset=1', user.auth)).body.data).toEqual({
      items: [],
      meta: { limit: 20, offset: 1, total: 1, total_capped: false, has_next_page: false },
    });
  });

  it('issuance lists page with page/limit (at most 100) and full page meta', async () => {
    const admin = await t.signIn('admin@example.com');
    const { offeringId } = await seedOffering(t, admin.auth);
    const added = await t.post(
      `/admin/offerings/${offeringId}/documents`,
      { kind: 'ppm', title: 'PPM', contentType: 'text/plain', content: Buffer.from('memorandum').toString('base64') },
      admin.auth,
    );
    expect(added.status, added.text).toBe(201);

    const page = await t.get(`/issuance/offerings/${offeringId}/documents?page=2&limit=1`, admin.auth);
    expect(page.status, page.text).toBe(200);
    expect(page.body.data.items).toHaveLength(1);
    expect(page.body.data.meta).toEqual({
      page: 2,
      limit: 1,
      total: 2,
      total_capped: false,
      total_pages: 2,
      has_next_page: false,
      has_previous_page: true,
    });
    expect((await t.get(`/issuance/offerings/${offeringId}/documents?limit=101`, admin.auth)).status).toBe(400);
  });
});
