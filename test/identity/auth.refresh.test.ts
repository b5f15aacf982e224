import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refreshTokens } from '../../src/identity/identity.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const refresh = (refreshToken: string) => t.post('/identity/auth/refresh', { refreshToken });

describe('POST /identity/auth/refresh happy', () => {
  it('rotates: returns new tokens and retires the presented refresh token', async () => {
    const session = await t.signIn('rotate@example.com');
    const rotated = await refresh(session.refreshToken);
    expect(rotated.status).toBe(200);
    expect(rotated.body.refresh_token).not.toBe(session.refreshToken);
    expect(rotated.body.token_type).toBe('Bearer');
    const user = await t.get(`/identity/users/${session.userId}`, { authorization: `Bearer ${rotated.body.access_token}` });
    expect(user.status).toBe(200);
    expect((await refresh(rotated.body.refresh_token)).status).toBe(200);
  });

  it('stores only digests of refresh tokens', async () => {
    const session = await t.signIn('digest@example.com');
    const rows = await t.db.select().from(refreshTokens);
    expect(rows.some((row) => row.digest === session.refreshToken || row.digest.includes(session.refreshToken.slice(3)))).toBe(false);
  });
});

describe('POST /identity/auth/refresh error', () => {
  it('treats reuse of a rotated token as theft and revokes the whole family', async () => {
    const session = await t.signIn('reuse@example.com');
    const rotated = await refresh(session.refreshToken);
    expect(rotated.status).toBe(200);

    const replay = await refresh(session.refreshToken);
    expect(replay.status).toBe(400);
    expect(replay.body).toEqual({
      error: 'invalid_grant',
      error_description: 'refresh token was already used; the session has been revoked',
    });

    const legitimate = await refresh(rotated.body.refresh_token);
    expect(legitimate.status).toBe(400);
    expect(legitimate.body.error).toBe('invalid_grant');
  });

  it('lets only one of two concurrent uses of the same token succeed', async () => {
    const session = await t.signIn('race@example.com');
    const results = await Promise.all([refresh(session.refreshToken), refresh(session.refreshToken)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400]);
  });

  it('rejects unknown and expired tokens', async () => {
    expect((await refresh('rt_unknown')).body.error).toBe('invalid_grant');
    const session = await t.signIn('expired@example.com');
    await t.db
      .update(refreshTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(refreshTokens.userId, session.userId));
    const response = await refresh(session.refreshToken);
    expect(response.status).toBe(400);
    expect(response.body.error_description).toMatch(/expired/);
  });

  it('answers invalid_request naming the missing field', async () => {
    const response = await t.post('/identity/auth/refresh', { token: 'x' });
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_request');
    expect(response.body.error_description).toMatch(/refreshToken/);
  });
});
