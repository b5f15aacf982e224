import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accreditations, refreshTokens } from '../../src/identity/identity.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const COMPETITORS = 20;

describe('identity limits under concurrency', () => {
  it("twenty first exchanges of one person's ID token at once: one user", async () => {
    const token = await t.idp.idToken('first-race@example.com');
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, () => t.post('/identity/auth/exchange', { token }, { 'x-api-key': t.apiKey })),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(COMPETITORS).fill(200));
    expect(await t.modules.identity.users.findByEmail(t.org.id, 'first-race@example.com')).toHaveLength(1);
  });

  it('twenty uses of one refresh token at once: one rotation succeeds, and the reuse revokes the family', async () => {
    const session = await t.signIn('refresh-race@example.com');
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, () => t.post('/identity/auth/refresh', { refreshToken: session.refreshToken })),
    );
    expect(responses.filter((response) => response.status === 200)).toHaveLength(1);
    expect(new Set(responses.filter((response) => response.status !== 200).map((response) => response.body.error))).toEqual(
      new Set(['invalid_grant']),
    );
    const live = await t.db
      .select()
      .from(refreshTokens)
      .where(and(eq(refreshTokens.userId, session.userId)));
    expect(live.filter((row) => row.revokedAt === null && row.usedAt === null)).toHaveLength(0);
  });

  it('twenty self-certifications at once: one accreditation record per user and org', async () => {
    const user = await t.signIn('acc-race@example.com');
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, (_, i) =>
        i % 2 === 0
          ? t.get('/identity/accreditations', user.auth)
          : t.request('PUT', '/identity/accreditations', {
              body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
              headers: user.auth,
            }),
      ),
    );
    expect(responses.every((response) => response.status === 200)).toBe(true);
    expect(await t.db.select().from(accreditations).where(eq(accreditations.userId, user.userId))).toHaveLength(1);
  });
});
