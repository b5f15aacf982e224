import { eq } from 'drizzle-orm';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refreshTokens, userPii } from '../../src/identity/identity.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('users happy', () => {
  it('GET returns the caller in snake_case', async () => {
    const me = await t.signIn('me@example.com');
    const response = await t.get(`/identity/users/${me.userId}`, me.auth);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      success: true,
      data: {
        id: me.userId,
        org_id: t.org.id,
        email: 'me@example.com',
        role: 'user',
        onboarding_completed: false,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        updated_at: expect.any(String),
      },
    });
  });

  it('PATCH updates onboarding, and the next token carries it', async () => {
    const me = await t.signIn('onboard@example.com');
    const response = await t.patch(`/identity/users/${me.userId}`, { onboardingCompleted: true }, me.auth);
    expect(response.status).toBe(200);
    expect(response.body.data.onboarding_completed).toBe(true);
    expect((await t.signIn('onboard@example.com')).claims.onboarding_completed).toBe(true);
  });

  it('an org_admin reads and promotes another user of the org', async () => {
    const admin = await t.signIn('admin@example.com');
    const member = await t.signIn('member@example.com');
    expect((await t.get(`/identity/users/${member.userId}`, admin.auth)).status).toBe(200);
    const promoted = await t.patch(`/identity/users/${member.userId}`, { role: 'org_admin' }, admin.auth);
    expect(promoted.body.data.role).toBe('org_admin');
  });

  it('DELETE removes the user, their PII and their refresh tokens', async () => {
    const me = await t.signIn('leaving@example.com');
    expect((await t.post('/identity/user-pii', { firstName: 'Ada', lastName: 'Leaver' }, me.auth)).status).toBe(201);
    const response = await t.delete(`/identity/users/${me.userId}`, me.auth);
    expect(response.body).toEqual({ success: true, data: { id: me.userId, deleted: true } });
    expect(await t.db.select().from(userPii).where(eq(userPii.userId, me.userId))).toHaveLength(0);
    expect(await t.db.select().from(refreshTokens).where(eq(refreshTokens.userId, me.userId))).toHaveLength(0);
    expect((await t.post('/identity/auth/refresh', { refreshToken: me.refreshToken })).status).toBe(400);
    // The access token is still cryptographically valid, but it names nobody any more.
    expect((await t.get(`/identity/users/${me.userId}`, me.auth)).status).toBe(401);
  });
});

describe('users security', () => {
  it('hides users of other orgs (404), even from their org_admin', async () => {
    const other = await t.createOrg({ name: 'Elsewhere', adminEmails: ['boss@elsewhere.com'] });
    const outsider = await t.signIn('boss@elsewhere.com', other);
    expect(outsider.claims.role).toBe('org_admin');
    const insider = await t.signIn('insider@example.com');
    for (const [method, body] of [['GET'], ['PATCH', { onboardingCompleted: true }], ['DELETE']] as const) {
      const response = await t.request(method, `/identity/users/${insider.userId}`, { body, headers: outsider.auth });
      expect(response.status).toBe(404);
      expect(response.body.error.code).toBe('NOT_FOUND');
    }
    expect((await t.get(`/identity/users/${insider.userId}`, insider.auth)).status).toBe(200);
  });

  it('hides other users of the same org from a plain user', async () => {
    const a = await t.signIn('peer-a@example.com');
    const b = await t.signIn('peer-b@example.com');
    expect((await t.get(`/identity/users/${b.userId}`, a.auth)).status).toBe(404);
  });

  it('refuses a role change by a plain user (403)', async () => {
    const me = await t.signIn('climber@example.com');
    const response = await t.patch(`/identity/users/${me.userId}`, { role: 'org_admin' }, me.auth);
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe('FORBIDDEN');
  });

  it('requires a valid Bearer token', async () => {
    const me = await t.signIn('auth@example.com');
    const path = `/identity/users/${me.userId}`;
    const missing = await t.get(path);
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ success: false, error: { code: 'UNAUTHORIZED' } });
    expect((await t.get(path, { authorization: 'Basic abc' })).status).toBe(401);
    expect((await t.get(path, { authorization: `Bearer ${me.accessToken}x` })).status).toBe(401);
    expect((await t.get(path, { 'x-api-key': t.apiKey })).status).toBe(401);

    const forger = await t.idp.unpublishedKey();
    const forged = await new SignJWT({ user_id: me.userId, org_id: t.org.id, role: 'org_admin', email: 'x@example.com' })
      .setProtectedHeader({ alg: 'RS256', kid: forger.kid, typ: 'at+jwt' })
      .setIssuer('http://tranche.test/identity')
      .setAudience('tranche')
      .setExpirationTime('5m')
      .sign(forger.privateKey);
    expect((await t.get(path, { authorization: `Bearer ${forged}` })).status).toBe(401);
  });

  it('rejects an expired access token', async () => {
    const shortLived = await startTestApp({ accessTokenTtlSeconds: 30 });
    try {
      const me = await shortLived.signIn('short@example.com');
      const [header, payload, signature] = me.accessToken.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, number>;
      const expired = Buffer.from(JSON.stringify({ ...claims, exp: claims.iat! - 1 })).toString('base64url');
      const response = await shortLived.get(`/identity/users/${me.userId}`, { authorization: `Bearer ${header}.${expired}.${signature}` });
      expect(response.status).toBe(401);
    } finally {
      await shortLived.close();
    }
  });
});

describe('users error', () => {
  it('names the bad field: a non-uuid id, an empty PATCH, an unknown field, a wrong type', async () => {
    const me = await t.signIn('fields@example.com');
    const badId = await t.get('/identity/users/not-a-uuid', me.auth);
    expect(badId.status).toBe(400);
    expect(badId.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'userId' });

    const empty = await t.patch(`/identity/users/${me.userId}`, {}, me.auth);
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe('VALIDATION_ERROR');

    const unknown = await t.patch(`/identity/users/${me.userId}`, { email: 'new@example.com' }, me.auth);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/email/);

    const wrongType = await t.patch(`/identity/users/${me.userId}`, { onboardingCompleted: 'yes' }, me.auth);
    expect(wrongType.body.error.field).toBe('onboardingCompleted');
  });

  it('answers 404 for a well-formed id that does not exist', async () => {
    const me = await t.signIn('ghost@example.com');
    const response = await t.get('/identity/users/00000000-0000-4000-8000-000000000000', me.auth);
    expect(response.status).toBe(404);
  });
});
