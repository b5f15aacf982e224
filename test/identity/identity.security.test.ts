import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { users } from '../../src/identity/identity.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { startIdp } from '../support/idp.ts';
import { payCheckout, seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const exchange = async (token: string, apiKey = t.apiKey) =>
  t.request('POST', '/identity/auth/exchange', { headers: { 'x-api-key': apiKey }, body: { token } });
const claimsOf = (accessToken: string) =>
  JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

describe('identity security: claims count only as the exact JSON value that grants', () => {
  it('refuses email_verified given as the string "false" (or any non-boolean), even for an admin email', async () => {
    for (const value of ['false', 'true', 0, 1, null, 'yes']) {
      const response = await exchange(await t.idp.idToken('admin@example.com', { email_verified: value as never }));
      expect(response.status, String(value)).toBe(400);
      expect(response.body.error).toBe('invalid_grant');
    }
    expect(await t.modules.identity.users.findByEmail(t.org.id, 'admin@example.com')).toEqual([]);
  });

  it('an absent email_verified proves nothing: the admin email signs in as a plain user', async () => {
    const token = await t.idp.idToken('admin@example.com', { email_verified: undefined });
    const response = await exchange(token);
    expect(response.status).toBe(200);
    expect(claimsOf(response.body.access_token).role).toBe('user');
  });

  it('email_verified: true is what grants the admin role', async () => {
    const response = await exchange(await t.idp.idToken('admin@example.com'));
    expect(claimsOf(response.body.access_token).role).toBe('org_admin');
  });
});

describe('identity security: issuers exactly as the IdP states them', () => {
  it('an org registered with a trailing-slash issuer (Auth0 style) can exchange its tokens', async () => {
    const idp = await startIdp({ trailingSlash: true });
    try {
      expect(idp.issuer.endsWith('/')).toBe(true);
      const org = await t.modules.identity.orgs.createOrg({ name: 'Slash', idpIssuer: idp.issuer, idpAudience: idp.audience });
      expect(org.idpIssuer).toBe(idp.issuer);
      const key = await t.modules.identity.orgs.createApiKey(org.id);
      const response = await exchange(await idp.idToken('slash@example.com'), key.key);
      expect(response.status, response.text).toBe(200);
      // Exact comparison: the same issuer without its slash is another issuer.
      const other = await exchange(await idp.idToken('slash@example.com', { iss: idp.issuer.slice(0, -1) }), key.key);
      expect(other.status).toBe(400);
    } finally {
      await idp.close();
    }
  });

  it('an org registered by JWKS URL must name its issuer, and tokens of another issuer signed by those keys fail', async () => {
    await expect(
      t.modules.identity.orgs.createOrg({ name: 'No issuer', idpJwksUrl: t.idp.jwksUrl, idpAudience: t.idp.audience }),
    ).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    const org = await t.modules.identity.orgs.createOrg({
      name: 'JWKS',
      idpIssuer: t.idp.issuer,
      idpJwksUrl: t.idp.jwksUrl,
      idpAudience: t.idp.audience,
    });
    const key = await t.modules.identity.orgs.createApiKey(org.id);
    expect((await exchange(await t.idp.idToken('jwks@example.com'), key.key)).status).toBe(200);
    const foreign = await exchange(await t.idp.idToken('jwks@example.com', { iss: 'https://other-tenant.example.com' }), key.key);
    expect(foreign.status).toBe(400);
    expect(foreign.body.error_description).toMatch(/issuer/);
  });
});

describe('identity security: four eyes', () => {
  it('an org admin cannot review their own KYC; another admin can', async () => {
    const self = await t.signIn('admin@example.com');
    const started = await t.post(
      '/identity/kyc-verifications',
      {
        firstName: 'JANE',
        lastName: 'DOE',
        address: '1 MAIN ST',
        city: 'ATLANTA',
        state: 'GA',
        zip: '30318',
        country: 'USA',
        ssn: '123450002',
        dobMonth: '01',
        dobDay: '15',
        dobYear: '1980',
      },
      self.auth,
    );
    const id = started.body.data.verification_id as string;
    expect(started.body.data.status).toBe('needs_review');
    const own = await t.post(`/admin/kyc-verifications/${id}/approve`, {}, self.auth);
    expect(own.status).toBe(403);
    expect(own.body.error.code).toBe('FORBIDDEN');
    const adminKey = await t.modules.identity.orgs.createAdminKey();
    expect((await t.post(`/admin/kyc-verifications/${id}/approve`, {}, { 'x-admin-key': adminKey.key })).status).toBe(200);
  });

  it('an org admin cannot review their own accreditation', async () => {
    const self = await t.signIn('admin@example.com');
    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: self.auth,
    });
    const id = certified.body.data.id as string;
    await t.post(
      `/identity/accreditation-sessions/${id}/documents`,
      {
        documentType: 'income_proof',
        fileName: 'w2.pdf',
        contentType: 'application/pdf',
        content: Buffer.from('%PDF w2').toString('base64'),
      },
      self.auth,
    );
    for (const action of ['approve', 'start-review', 'deny']) {
      const own = await t.post(`/admin/accreditations/${id}/${action}`, { reason: 'mine' }, self.auth);
      expect(own.status, action).toBe(403);
    }
    expect((await t.get('/identity/accreditations', self.auth)).body.data.verified).toBe(false);
  });

  it('an org admin cannot approve or reject their own subscription', async () => {
    const { offeringId, securityId } = await seedOffering(t, (await t.signIn('admin@example.com')).auth);
    // The primary org's admin invests in their own org's offering.
    const investor = await seedInvestor(t, 'admin@example.com');
    const created = await t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(securityId, 10), investor.auth);
    expect(created.status, created.text).toBe(201);
    const id = created.body.data.id as string;
    await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'Admin', consent: true }, investor.auth);
    const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
    await payCheckout(t, checkout.body.data.checkout_url);
    expect((await t.get(`/issuance/subscriptions/${id}`, investor.auth)).body.data.status).toBe('pending_review');
    expect((await t.post(`/admin/subscriptions/${id}/approve`, {}, investor.auth)).status).toBe(403);
    expect((await t.post(`/admin/subscriptions/${id}/reject`, { reason: 'mine' }, investor.auth)).status).toBe(403);
    const adminKey = await t.modules.identity.orgs.createAdminKey();
    expect((await t.post(`/admin/subscriptions/${id}/approve`, {}, { 'x-admin-key': adminKey.key })).status).toBe(200);
  });

  it('a demoted admin loses the role at once, with the access token they already hold', async () => {
    const demoted = await t.signIn('admin@example.com');
    expect((await t.get('/admin/kyc-verifications', demoted.auth)).status).toBe(200);
    await t.db.update(users).set({ role: 'user' }).where(eq(users.id, demoted.userId));
    const after = await t.get('/admin/kyc-verifications', demoted.auth);
    expect(after.status).toBe(403);
    expect((await t.get(`/identity/users/${demoted.userId}`, demoted.auth)).status).toBe(200);
    const someone = await t.signIn('someone-else@example.com');
    expect((await t.get(`/identity/users/${someone.userId}`, demoted.auth)).status).toBe(404);
    await t.db.delete(users).where(eq(users.id, demoted.userId));
    expect((await t.get(`/identity/users/${demoted.userId}`, demoted.auth)).status).toBe(401);
  });
});
