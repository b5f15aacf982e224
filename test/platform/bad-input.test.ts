import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type ApiResponse, type TestApp } from '../support/harness.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
});
afterAll(() => t.close());

/** Our envelope, with its code and the HTTP status its code stands for. */
function expectEnvelope(response: ApiResponse, status: number, code: string) {
  expect(response.status, response.text).toBe(status);
  expect(response.body).toMatchObject({ success: false, error: { code, message: expect.any(String) } });
}

/** A JSON:API error document whose first error carries the response status. */
function expectJsonApi(response: ApiResponse, status: number) {
  expect(response.status, response.text).toBe(status);
  expect(response.headers.get('content-type')).toContain('application/vnd.api+json');
  expect(response.body.errors[0]).toMatchObject({ status: String(status), title: expect.any(String) });
}

describe('bad input is a 4xx, never a 5xx', () => {
  it('refuses the NUL character in bodies, query strings and path parameters, naming the field', async () => {
    const user = await t.signIn('nul@example.com');
    const body = await t.post('/identity/kyc-verifications', { ...johnSmith, address: 'PEACHTREE\u0000PLACE' }, user.auth);
    expectEnvelope(body, 400, 'VALIDATION_ERROR');
    expect(body.body.error.field).toBe('address');
    expect((await t.get('/identity/user-pii/' + user.userId, user.auth)).status).toBe(404);

    const admin = await t.signIn('admin@example.com');
    expectEnvelope(await t.get('/notifications/deliveries?event_type=test.ping%00', admin.auth), 400, 'VALIDATION_ERROR');
    expectEnvelope(await t.get('/identity/users/%00', user.auth), 400, 'VALIDATION_ERROR');
    expectJsonApi(await t.get('/wallets/kdf?email=a%00b@example.com'), 400);
    expectJsonApi(await t.get('/identities/a%00b'), 400);
  });

  it('refuses a lone UTF-16 surrogate in a value or a key, which would be stored as U+FFFD, and writes nothing', async () => {
    const user = await t.signIn('surrogate@example.com');
    const body = await t.post('/identity/kyc-verifications', { ...johnSmith, lastName: 'Sm\ud800ith' }, user.auth);
    expectEnvelope(body, 400, 'VALIDATION_ERROR');
    expect(body.body.error.field).toBe('lastName');
    expect((await t.get('/identity/kyc', user.auth)).body.data.status).toBe('not_started');
    // A pair is one code point (U+1F600) and stays accepted.
    const paired = await t.post('/identity/kyc-verifications', { ...johnSmith, address: 'Peachtree \ud83d\ude00 Place' }, user.auth);
    expect(paired.status, paired.text).toBe(201);

    const key = await t.post(
      '/identity/user-pii',
      { firstName: 'A', lastName: 'B', ['x\udc00']: 1 },
      { ...user.auth, 'x-api-key': t.apiKey },
    );
    expectEnvelope(key, 400, 'VALIDATION_ERROR');
    const wallet = await client.signUp('surrogate-wallet@example.com', 'pw');
    const target = `/identities/${wallet.accountId}/settings`;
    const setting = await t.request('PUT', target, {
      headers: { ...signedHeaders(wallet.keypair, 'PUT', target), 'account-id': wallet.accountId },
      body: { data: { attributes: { key: 'theme', value: 'dark\udfff' } } },
    });
    expectJsonApi(setting, 400);
  });

  it('refuses values nested deeper than any route takes (a recursive validator would overflow the stack), before authentication', async () => {
    const deep = (levels: number, leaf: unknown): unknown => (levels === 0 ? leaf : [deep(levels - 1, leaf)]);
    const wallet = await client.signUp('deep-wallet@example.com', 'pw');
    const target = `/identities/${wallet.accountId}/settings`;
    for (const value of [deep(2000, 1), deep(70, 'x\ud800')]) {
      const unsigned = await t.request('PUT', target, { body: { data: { attributes: { key: 'theme', value } } } });
      expectJsonApi(unsigned, 400);
    }
    const body = await t.post(
      '/identity/kyc-verifications',
      { ...johnSmith, address: deep(100, 'x') },
      (await t.signIn('deep@example.com')).auth,
    );
    expectEnvelope(body, 400, 'VALIDATION_ERROR');
    expect(body.body.error.message).toContain('nested');
  });

  it('refuses dates and times outside the years the database stores (no year 0), in queries and bodies', async () => {
    const adminKey = { 'x-admin-key': (await t.modules.identity.orgs.createAdminKey()).key };
    for (const query of ['from=0000-01-01T00:00:00Z', 'to=0000-06-01T00:00:00Z', 'from=0001-01-01T00:00:00%2B14:00'])
      expectEnvelope(await t.get(`/admin/audit?${query}`, adminKey), 400, 'VALIDATION_ERROR');
    const admin = await t.signIn('admin@example.com');
    expectEnvelope(await t.get('/notifications/deliveries?from=0000-01-01T00:00:00Z', admin.auth), 400, 'VALIDATION_ERROR');
    expect((await t.get('/admin/audit?from=0001-01-02T00:00:00Z', adminKey)).status).toBe(200);
  });

  it('bounds integers to their column type in bodies and query filters', async () => {
    const investor = await t.signIn('ints@example.com');
    expectEnvelope(await t.get('/issuance/offerings?page=2147483648', investor.auth), 400, 'VALIDATION_ERROR');
    expectEnvelope(await t.get('/notifications/webhooks?offset=9007199254740993', investor.auth), 400, 'VALIDATION_ERROR');
    const wallet = await client.signUp('ints-wallet@example.com', 'pw');
    expectJsonApi(await t.get(`/accounts/${wallet.accountId}/blobs?filter[type]=2147483648`), 400);
    const target = `/accounts/${wallet.accountId}/signers`;
    const signer = await t.request('POST', target, {
      headers: signedHeaders(client.admin, 'POST', target),
      body: {
        data: { type: 'signer', id: wallet.accountId, attributes: { role_id: 2, weight: 1000, identity: 2 ** 31 } },
      },
    });
    expectJsonApi(signer, 400);
  });

  it('refuses a file name of . or .., and null where an object is stored', async () => {
    const user = await t.signIn('dots@example.com');
    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: user.auth,
    });
    expect(certified.status, certified.text).toBe(200);
    for (const fileName of ['..', '.']) {
      const upload = await t.post(
        `/identity/accreditation-sessions/${certified.body.data.id}/documents`,
        { documentType: 'income_proof', fileName, contentType: 'application/pdf', content: Buffer.from('%PDF').toString('base64') },
        user.auth,
      );
      expectEnvelope(upload, 400, 'VALIDATION_ERROR');
    }

    const wallet = await client.signUp('null-setting@example.com', 'pw');
    const target = `/identities/${wallet.accountId}/settings`;
    const setting = await t.request('PUT', target, {
      headers: { ...signedHeaders(wallet.keypair, 'PUT', target), 'account-id': wallet.accountId },
      body: { data: { attributes: { key: 'theme', value: null } } },
    });
    expectJsonApi(setting, 400);
  });

  it("answers a deleted user's still-valid token with 401", async () => {
    const user = await t.signIn('deleted@example.com');
    expect((await t.delete(`/identity/users/${user.userId}`, user.auth)).status).toBe(200);
    expectEnvelope(await t.post('/identity/kyc-verifications', johnSmith, user.auth), 401, 'UNAUTHORIZED');
    expectEnvelope(await t.get('/identity/accreditations', user.auth), 401, 'UNAUTHORIZED');
  });
});

describe("router-level errors come out in the path's own envelope", () => {
  it('unknown routes', async () => {
    expectEnvelope(await t.get('/identity/nothing-here'), 404, 'NOT_FOUND');
    expectEnvelope(await t.post('/admin/nothing-here', {}), 404, 'NOT_FOUND');
    expectJsonApi(await t.get('/nothing-here'), 404);
    expectJsonApi(await t.request('PATCH', '/wallets'), 404);
  });

  it('invalid percent-encoding and over-long path parameters', async () => {
    expectEnvelope(await t.get('/identity/users/%zz'), 400, 'VALIDATION_ERROR');
    expectEnvelope(await t.get(`/issuance/offerings/${'9'.repeat(600)}`), 414, 'URI_TOO_LONG');
    expectJsonApi(await t.get('/wallets/%E0%A4%A'), 400);
    expectJsonApi(await t.get(`/wallets/${'a'.repeat(600)}`), 414);
  });

  it('unparsable and unsupported bodies', async () => {
    const user = await t.signIn('bodies@example.com');
    const headers = { ...user.auth, 'content-type': 'application/json' };
    expectEnvelope(await t.request('POST', '/identity/user-pii', { rawBody: '{"firstName":', headers }), 400, 'VALIDATION_ERROR');
    expectEnvelope(await t.request('POST', '/identity/user-pii', { rawBody: 'null', headers }), 400, 'VALIDATION_ERROR');
    expectEnvelope(
      await t.request('POST', '/identity/user-pii', { rawBody: 'a=b', headers: { ...user.auth, 'content-type': 'text/csv' } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectJsonApi(await t.request('POST', '/wallets', { rawBody: '{"data":', headers: { 'content-type': 'application/json' } }), 400);
    expectJsonApi(await t.request('POST', '/wallets', { rawBody: 'null', headers: { 'content-type': 'application/json' } }), 400);
    expectJsonApi(await t.request('POST', '/wallets', { rawBody: 'a=b', headers: { 'content-type': 'text/csv' } }), 415);
  });
});
