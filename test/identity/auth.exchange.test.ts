import { startIdp } from '../support/idp.ts';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ exchangeRateLimitPerMinute: 1000 });
});
afterAll(() => t.close());

const exchange = (token: string, apiKey: string | null = t.apiKey) =>
  t.post('/identity/auth/exchange', { token }, apiKey === null ? {} : { 'x-api-key': apiKey });

function expectGrantError(response: { status: number; body: any }, description: RegExp) {
  expect(response.status).toBe(400);
  expect(response.body.error).toBe('invalid_grant');
  expect(response.body.error_description).toMatch(description);
}

describe('POST /identity/auth/exchange happy', () => {
  it('returns OAuth2 tokens whose access token carries the documented claims and verifies against our JWKS', async () => {
    const response = await exchange(await t.idp.idToken('Investor.One@Example.com'));
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ token_type: 'Bearer', expires_in: 300, refresh_expires_in: 1800, scope: 'user' });
    expect(response.body.refresh_token).toMatch(/^rt_[0-9A-Za-z]{48}$/);

    const jwks = createRemoteJWKSet(new URL(`${t.url}/identity/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(response.body.access_token, jwks, {
      issuer: 'http://tranche.test/identity',
      audience: 'tranche',
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(payload).toMatchObject({
      sub: payload.user_id,
      org_id: t.org.id,
      org_name: 'Test Org',
      email: 'investor.one@example.com',
      role: 'user',
      kyc_completed: false,
      accredited: false,
      accreditation_verified: false,
      onboarding_completed: false,
    });
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('creates the user on first exchange and finds the same user on the next', async () => {
    const first = await t.signIn('repeat@example.com');
    const second = await t.signIn('repeat@example.com');
    expect(second.userId).toBe(first.userId);
    const user = await t.get(`/identity/users/${first.userId}`, first.auth);
    expect(user.body.data).toMatchObject({ id: first.userId, org_id: t.org.id, email: 'repeat@example.com' });
  });

  it('gives org_admin to emails the org lists as admins', async () => {
    expect((await t.signIn('admin@example.com')).claims.role).toBe('org_admin');
  });

  it('refetches the JWKS when the IdP signs with a new key', async () => {
    await exchange(await t.idp.idToken('before-rotation@example.com'));
    await t.idp.rotate();
    const response = await exchange(await t.idp.idToken('after-rotation@example.com'));
    expect(response.status).toBe(200);
  });

  it('verifies through a registered JWKS URL as well as through discovery', async () => {
    const org = await t.modules.identity.orgs.createOrg({
      name: 'JWKS org',
      idpIssuer: t.idp.issuer,
      idpJwksUrl: t.idp.jwksUrl,
      idpAudience: t.idp.audience,
    });
    const key = await t.modules.identity.orgs.createApiKey(org.id);
    const response = await exchange(await t.idp.idToken('jwks@example.com'), key.key);
    expect(response.status).toBe(200);
  });
});

describe('POST /identity/auth/exchange error', () => {
  it("names the discovery URL and the network cause when the org's identity provider cannot be reached", async () => {
    // An IdP that answered once and is gone (e.g. the demo IdP of a server since moved to another port).
    const gone = await startIdp();
    const token = await gone.idToken('gone@example.com');
    await gone.close();
    const org = await t.modules.identity.orgs.createOrg({ name: 'Gone IdP', idpIssuer: gone.issuer, idpAudience: gone.audience });
    const key = await t.modules.identity.orgs.createApiKey(org.id);
    const response = await exchange(token, key.key);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_grant');
    expect(response.body.error_description).toContain(
      `could not be read from ${gone.issuer}/.well-known/openid-configuration (fetch failed: ECONNREFUSED)`,
    );
  });

  it('rejects a missing API key with invalid_client', async () => {
    const response = await exchange(await t.idp.idToken('a@example.com'), null);
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'invalid_client', error_description: 'X-API-Key header is required' });
  });

  it('rejects a malformed or unknown API key with invalid_client', async () => {
    const token = await t.idp.idToken('a@example.com');
    for (const key of [
      'nonsense',
      `rialto_ak_${t.org.id}_${'x'.repeat(32)}`,
      t.apiKey.slice(0, -1) + (t.apiKey.endsWith('a') ? 'b' : 'a'),
    ]) {
      const response = await exchange(token, key);
      expect(response.status).toBe(401);
      expect(response.body.error).toBe('invalid_client');
    }
  });

  it("rejects a key whose org id was swapped for another org's", async () => {
    const other = await t.createOrg({ name: 'Other' });
    const forged = t.apiKey.replace(t.org.id, other.org.id);
    expect((await exchange(await t.idp.idToken('a@example.com'), forged)).status).toBe(401);
  });

  it('rejects a revoked API key', async () => {
    const key = await t.modules.identity.orgs.createApiKey(t.org.id);
    expect((await exchange(await t.idp.idToken('r@example.com'), key.key)).status).toBe(200);
    await t.modules.identity.orgs.revokeApiKey(key.id);
    const response = await exchange(await t.idp.idToken('r@example.com'), key.key);
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('invalid_client');
  });

  it('rejects an expired ID token', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectGrantError(await exchange(await t.idp.idToken('a@example.com', {}, { issuedAt: now - 3600, expiresIn: now - 60 })), /expired/);
  });

  it('rejects a token for another audience', async () => {
    expectGrantError(await exchange(await t.idp.idToken('a@example.com', { aud: 'someone-else' })), /audience/);
  });

  it('rejects a token from another issuer', async () => {
    expectGrantError(await exchange(await t.idp.idToken('a@example.com', { iss: 'https://evil.example.com' })), /issuer/);
  });

  it('rejects an unsigned token', async () => {
    const unsigned = new UnsecuredJWT({ email: 'a@example.com' })
      .setIssuer(t.idp.issuer)
      .setAudience(t.idp.audience)
      .setSubject('x')
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode();
    expectGrantError(await exchange(unsigned), /unsigned/);
  });

  it('rejects a token signed by a key the IdP does not publish', async () => {
    const forged = await t.idp.idToken('a@example.com', {}, { key: await t.idp.unpublishedKey() });
    expectGrantError(await exchange(forged), /key/);
  });

  it('rejects a token whose signature was tampered with', async () => {
    const [header, payload, signature] = (await t.idp.idToken('a@example.com')).split('.') as [string, string, string];
    const otherPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), email: 'victim@example.com' }),
    ).toString('base64url');
    expectGrantError(await exchange(`${header}.${otherPayload}.${signature}`), /signature/);
  });

  it('rejects our own access token passed as an ID token', async () => {
    const session = await t.signIn('user@example.com');
    expect(decodeProtectedHeader(session.accessToken).typ).toBe('at+jwt');
    expectGrantError(await exchange(session.accessToken), /access token/);
  });

  it('rejects an IdP access token (typ at+jwt) passed as an ID token', async () => {
    expectGrantError(await exchange(await t.idp.idToken('a@example.com', {}, { typ: 'at+jwt' })), /access token/);
  });

  it('requires sub and a verified email', async () => {
    expectGrantError(await exchange(await t.idp.idToken('not-an-email')), /email/);
    expectGrantError(await exchange(await t.idp.idToken('a@example.com', { email_verified: false })), /not verified/);
  });

  it('answers invalid_request for a malformed body, naming the field', async () => {
    const missing = await t.post('/identity/auth/exchange', {}, { 'x-api-key': t.apiKey });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('invalid_request');
    expect(missing.body.error_description).toMatch(/^token: /);

    const notJson = await t.request('POST', '/identity/auth/exchange', {
      rawBody: '{"token":',
      headers: { 'content-type': 'application/json', 'x-api-key': t.apiKey },
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toBe('invalid_request');

    const extra = await t.post('/identity/auth/exchange', { token: 'x', admin: true }, { 'x-api-key': t.apiKey });
    expect(extra.status).toBe(400);
    expect(extra.body.error_description).toMatch(/admin/);
  });

  it('refuses an oversized body with 413', async () => {
    const response = await t.post('/identity/auth/exchange', { token: 'x'.repeat(1_100_000) }, { 'x-api-key': t.apiKey });
    expect(response.status).toBe(413);
    expect(response.body.error).toBe('invalid_request');
  });

  it('does not answer from a token signed with a forged key for another issuer', async () => {
    const forger = await t.idp.unpublishedKey();
    const token = await new SignJWT({ email: 'a@example.com' })
      .setProtectedHeader({ alg: 'RS256', kid: forger.kid })
      .setIssuer(t.idp.issuer)
      .setAudience(t.idp.audience)
      .setSubject('x')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(forger.privateKey);
    expect((await exchange(token)).status).toBe(400);
  });
});

describe('POST /identity/auth/exchange rate limit', () => {
  it('limits each org key per minute and says when to retry', async () => {
    const limited = await startTestApp({ exchangeRateLimitPerMinute: 3 });
    try {
      const token = await limited.idp.idToken('a@example.com');
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push((await limited.post('/identity/auth/exchange', { token }, { 'x-api-key': limited.apiKey })).status);
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const blocked = await limited.post('/identity/auth/exchange', { token }, { 'x-api-key': limited.apiKey });
      expect(blocked.body.error).toBe('rate_limited');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);

      const otherOrg = await limited.createOrg({ name: 'Second' });
      const other = await limited.post('/identity/auth/exchange', { token }, { 'x-api-key': otherOrg.apiKey });
      expect(other.status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
