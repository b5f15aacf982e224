import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeys, consoleSessions } from '../../src/identity/identity.tables.ts';
import { CONSOLE_SESSION_TTL_SECONDS } from '../../src/identity/identity.module.ts';
import Fastify from 'fastify';
import { CONSOLE_CSP, consoleStatic } from '../../src/admin/console-static.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
let adminKey: string;
beforeAll(async () => {
  t = await startTestApp();
  adminKey = (await t.modules.identity.orgs.createAdminKey()).key;
});
afterAll(() => t.close());

/** Signs in with the admin key; returns the cookie header to send back and the CSRF token. */
async function signIn() {
  const response = await t.post('/admin/console/session', { adminKey });
  expect(response.status, response.text).toBe(200);
  const setCookie = response.headers.get('set-cookie')!;
  return { cookie: setCookie.split(';')[0]!, csrf: response.body.data.csrf_token as string, setCookie, body: response.body };
}

async function needsReview(email: string) {
  const investor = await t.signIn(email);
  const kyc = await t.post('/identity/kyc-verifications', { ...johnSmith, ssn: '123450002' }, investor.auth);
  expect(kyc.body.data.status).toBe('needs_review');
  return { id: kyc.body.data.verification_id as string, investor };
}

describe('console session happy', () => {
  it('exchanges the admin key for an HttpOnly, SameSite=Strict, expiring cookie; reads and writes go through the admin routes', async () => {
    const session = await signIn();
    expect(session.setCookie).toMatch(/HttpOnly/i);
    expect(session.setCookie).toMatch(/SameSite=Strict/i);
    expect(session.setCookie).toMatch(/Expires=/i);
    expect(session.setCookie).not.toMatch(/Secure/i);
    expect(session.body.data).toMatchObject({ kind: 'platform_admin', org_id: null });
    const { id, investor } = await needsReview('cookie-approve@example.com');
    const queue = await t.get('/admin/kyc-verifications', { cookie: session.cookie });
    expect(queue.status, queue.text).toBe(200);
    expect(queue.body.data.items.map((item: { verification_id: string }) => item.verification_id)).toContain(id);
    const approved = await t.post(
      `/admin/kyc-verifications/${id}/approve`,
      {},
      { cookie: session.cookie, 'x-csrf-token': session.csrf, origin: t.url },
    );
    expect(approved.status, approved.text).toBe(200);
    expect((await t.get(`/identity/kyc-verifications/${id}`, investor.auth)).body.data.status).toBe('approved');
  });

  it('stores only a keyed hash of the session token; sign-out ends the session', async () => {
    const session = await signIn();
    const token = decodeURIComponent(session.cookie.split('=')[1]!);
    const rows = await t.db.select().from(consoleSessions);
    expect(JSON.stringify(rows)).not.toContain(token);
    const out = await t.request('DELETE', '/admin/console/session', { headers: { cookie: session.cookie, 'x-csrf-token': session.csrf } });
    expect(out.status, out.text).toBe(204);
    expect((await t.get('/admin/console/session', { cookie: session.cookie })).status).toBe(401);
    expect((await t.get('/admin/kyc-verifications', { cookie: session.cookie })).status).toBe(401);
  });

  it('a platform admin names the org for org-level routes (webhooks) with X-Tranche-Org', async () => {
    const session = await signIn();
    const listed = await t.get('/notifications/deliveries', { cookie: session.cookie, 'x-tranche-org': t.org.id });
    expect(listed.status, listed.text).toBe(200);
    const missing = await t.get('/notifications/deliveries', { cookie: session.cookie });
    expect(missing.status).toBe(400);
    expect(missing.body.error.field).toBe('x-tranche-org');
  });

  it('serves the console with a CSP that allows no inline script', async () => {
    const page = await fetch(`${t.url}/console/kyc`);
    expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).not.toContain('unsafe-inline');
    expect(await page.text()).not.toMatch(/<script>(?!<\/script>)/);
  });
});

describe('console session error', () => {
  it('without a build, /console answers with how to build it and the server still serves', async () => {
    const app = Fastify();
    await app.register(consoleStatic, { prefix: '/console', root: '/nonexistent/console/dist' });
    const page = await app.inject({ method: 'GET', url: '/console/kyc' });
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain('npm run build:console');
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    await app.close();
  });
});

describe('console session security', () => {
  it('refuses a write without the CSRF token, or from another origin, and changes nothing', async () => {
    const session = await signIn();
    const { id, investor } = await needsReview('csrf@example.com');
    const noToken = await t.post(`/admin/kyc-verifications/${id}/approve`, {}, { cookie: session.cookie });
    expect(noToken.status).toBe(403);
    expect(noToken.body.error.code).toBe('FORBIDDEN');
    const wrongToken = await t.post(
      `/admin/kyc-verifications/${id}/approve`,
      {},
      { cookie: session.cookie, 'x-csrf-token': 'x'.repeat(64) },
    );
    expect(wrongToken.status).toBe(403);
    const crossOrigin = await t.post(
      `/admin/kyc-verifications/${id}/approve`,
      {},
      { cookie: session.cookie, 'x-csrf-token': session.csrf, origin: 'https://evil.example' },
    );
    expect(crossOrigin.status).toBe(403);
    expect((await t.get(`/identity/kyc-verifications/${id}`, investor.auth)).body.data.status).toBe('needs_review');
  });

  it('refuses a wrong admin key, a forged cookie and an expired session', async () => {
    const wrong = await t.post('/admin/console/session', { adminKey: `tranche_admin_${'A'.repeat(40)}` });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect((await t.post('/admin/console/session', {})).status).toBe(400);
    const forged = await t.get('/admin/kyc-verifications', { cookie: `tranche_console=cs_${'a'.repeat(43)}` });
    expect(forged.status).toBe(401);
    const session = await signIn();
    t.clock.advance((CONSOLE_SESSION_TTL_SECONDS + 1) * 1000);
    expect((await t.get('/admin/kyc-verifications', { cookie: session.cookie })).status).toBe(401);
  });

  it('revoking the admin key ends its sessions', async () => {
    const other = await t.modules.identity.orgs.createAdminKey();
    const response = await t.post('/admin/console/session', { adminKey: other.key });
    const cookie = response.headers.get('set-cookie')!.split(';')[0]!;
    expect((await t.get('/admin/console/session', { cookie })).status).toBe(200);
    await t.db.update(adminKeys).set({ revokedAt: new Date() }).where(eq(adminKeys.id, other.id));
    expect((await t.get('/admin/console/session', { cookie })).status).toBe(401);
    const rows = await t.db.select().from(consoleSessions).where(eq(consoleSessions.adminKeyId, other.id));
    expect(rows).toHaveLength(1);
  });
});
