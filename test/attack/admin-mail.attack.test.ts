import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { tokendClient } from '../support/tokend.ts';

// Attacks on GET /admin/mail: hostile query strings and callers that are not a platform admin.
let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
let adminKey: string;
beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
  adminKey = (await t.modules.identity.orgs.createAdminKey()).key;
  await new sdk.WalletsManager(client.api).create('attack-target@example.com', 'pw');
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const asAdmin = (query: string) => t.get(`/admin/mail${query}`, { 'x-admin-key': adminKey });

describe('GET /admin/mail: hostile query strings are 4xx in the envelope, never 5xx', () => {
  const hostile = [
    '?status=bogus',
    '?status=',
    '?status=SENT',
    '?status=sent&status=failed',
    "?status=sent'--",
    '?to=not-an-email',
    '?to=',
    `?to=${'a'.repeat(250)}@example.com`,
    '?to=a%00b@example.com',
    '?to=a@example.com&to=b@example.com',
    "?to=x'%20or%201=1--@example.com",
    '?limit=0',
    '?limit=-1',
    '?limit=101',
    '?limit=abc',
    '?limit=1.5',
    '?limit=NaN',
    '?limit=Infinity',
    '?limit=99999999999999999999',
    '?limit=',
    '?limit=1&limit=2',
    '?offset=-1',
    '?offset=2147483648',
    '?offset=1e100',
    '?offset=abc',
    '?offset=0.5',
    `?${'x'.repeat(20_000)}=1`,
  ];
  for (const query of hostile) {
    it(`${query.slice(0, 60)}`, async () => {
      const response = await asAdmin(query);
      expect(response.status, response.text).toBeGreaterThanOrEqual(400);
      expect(response.status, response.text).toBeLessThan(500);
      if (response.status !== 414 && response.status !== 431) {
        expect(response.body).toMatchObject({ success: false, error: { code: expect.any(String), message: expect.any(String) } });
      }
    });
  }

  const accepted = [
    '?offset=2147483647',
    '?limit=100&offset=0',
    '?status=kept&to=ATTACK-TARGET@EXAMPLE.COM',
    '?limit=%201',
    '?unknown=1',
    // brackets are not parsed: these are unknown names, ignored
    '?status[]=sent',
    '?status[$ne]=sent',
    '?to[]=a@example.com',
    '?offset[]=1',
  ];
  for (const query of accepted) {
    it(`accepts ${query}`, async () => {
      const response = await asAdmin(query);
      expect(response.status, response.text).toBe(200);
    });
  }

  it('the to= filter finds the address in any case and nothing else', async () => {
    const found = await asAdmin('?to=Attack-Target@Example.com');
    expect(found.body.data.items).toHaveLength(1);
    expect(found.body.data.items[0].recipient).toBe('attack-target@example.com');
  });
});

describe('GET /admin/mail: only a platform admin key reads mail', () => {
  it('an org admin (Bearer), a plain user, an API key, a bad or empty admin key and nobody are refused', async () => {
    const orgAdmin = await t.signIn('admin@example.com');
    expect(orgAdmin.claims.role).toBe('org_admin');
    const user = await t.signIn('someone@example.com');
    const attempts: Record<string, Record<string, string>> = {
      orgAdmin: orgAdmin.auth,
      user: user.auth,
      apiKey: { 'x-api-key': t.apiKey },
      apiKeyAsBearer: { authorization: `Bearer ${t.apiKey}` },
      apiKeyAsAdminKey: { 'x-admin-key': t.apiKey },
      emptyAdminKey: { 'x-admin-key': '' },
      wrongAdminKey: { 'x-admin-key': `${adminKey.slice(0, -2)}xx` },
      nobody: {},
      orgAdminWithOrgHeader: { ...orgAdmin.auth, 'x-tranche-org': t.org.id },
    };
    for (const [who, headers] of Object.entries(attempts)) {
      const response = await t.get('/admin/mail', headers);
      expect([401, 403], `${who}: ${response.status} ${response.text}`).toContain(response.status);
      expect(response.text).not.toContain('attack-target@example.com');
      expect(response.body).toMatchObject({ success: false });
    }
  });

  it('neither the request log nor a refused query logs the searched address', async () => {
    await asAdmin('?to=logged-secret@example.com');
    await asAdmin('?to=logged-secret%40example.com');
    await asAdmin('?to=Logged-Secret@Example.com&limit=0');
    await asAdmin('?status=bogus&to=logged-secret@example.com');
    const joined = t.logs.join('').toLowerCase();
    expect(joined).not.toContain('logged-secret');
  });
});
