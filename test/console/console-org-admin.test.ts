import path from 'node:path';
import axe from 'axe-core';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_AUDIENCE } from '../../src/identity/demo-idp/demo-idp.ts';
import { launchBrowser, SHOTS } from '../support/browser.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { freePort } from '../support/process.ts';

let t: TestApp;
let context: BrowserContext;
let page: Page;
let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
const cases: Record<'a' | 'b', { orgId: string; verificationId: string }> = {} as never;

/** An org trusting the built-in demo IdP, its admin's email, and a KYC case of its own in needs_review. */
async function orgWithCase(name: string, adminEmail: string, investorEmail: string) {
  const org = await t.modules.identity.orgs.createOrg({
    name,
    idpIssuer: t.modules.identity.demo.issuer,
    idpAudience: DEMO_AUDIENCE,
    adminEmails: [adminEmail],
  });
  const apiKey = await t.modules.identity.orgs.createApiKey(org.id);
  const exchanged = await t.post(
    '/identity/auth/exchange',
    { token: await t.modules.identity.demo.mintIdToken(investorEmail) },
    { 'x-api-key': apiKey.key },
  );
  expect(exchanged.status, exchanged.text).toBe(200);
  const kyc = await t.post(
    '/identity/kyc-verifications',
    { ...johnSmith, ssn: '123450002' },
    { authorization: `Bearer ${exchanged.body.access_token as string}` },
  );
  expect(kyc.body.data.status, kyc.text).toBe('needs_review');
  return { orgId: org.id, verificationId: kyc.body.data.verification_id as string };
}

beforeAll(async () => {
  // The IdP sends the browser back to PUBLIC_URL, so here it is the server's real address.
  const port = await freePort();
  t = await startTestApp({ publicUrl: `http://127.0.0.1:${port}`, demoIdp: true }, { port });
  cases.a = await orgWithCase('Org A', 'admin.a@example.com', 'investor.a@example.com');
  cases.b = await orgWithCase('Org B', 'admin.b@example.com', 'investor.b@example.com');
  browser = await launchBrowser();
  ({ context, page } = browser);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe('console org admin', () => {
  it("signs in through the demo IdP (authorization code + PKCE) and sees only their org's cases", async () => {
    await page.goto(`${t.url}/console/?org=${cases.a.orgId}`);
    await page.getByRole('button', { name: 'Sign in with your identity provider' }).click();
    await page.getByRole('heading', { name: 'Demo identity provider' }).waitFor();
    expect(page.url()).toContain('code_challenge_method=S256');
    await page.screenshot({ path: path.join(SHOTS, 'demo-idp.png') });
    await page.getByLabel('Email').fill('admin.a@example.com');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /KYC verifications/ }).waitFor();
    await page.getByText('Org admin', { exact: true }).waitFor();
    await page.getByRole('link', { name: cases.a.verificationId.slice(0, 8) }).waitFor();
    expect(await page.getByRole('link', { name: cases.b.verificationId.slice(0, 8) }).count()).toBe(0);
    await page.screenshot({ path: path.join(SHOTS, 'org-admin-queue.png'), fullPage: true });
    await page.evaluate(axe.source);
    const result = await page.evaluate(() => (globalThis as unknown as { axe: typeof axe }).axe.run());
    expect(result.violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')).toEqual([]);

    // The API says the same with the session cookie: another org's case does not exist for them.
    const session = await page.request.get(`${t.url}/admin/console/session`);
    const { csrf_token: csrf, org_id: orgId, kind } = (await session.json()).data;
    expect({ kind, orgId }).toEqual({ kind: 'org_admin', orgId: cases.a.orgId });
    const queue = await (await page.request.get(`${t.url}/admin/kyc-verifications`)).json();
    expect(queue.data.items.map((item: { org_id: string }) => item.org_id)).toEqual([cases.a.orgId]);
    const other = await page.request.post(`${t.url}/admin/kyc-verifications/${cases.b.verificationId}/approve`, {
      headers: { 'x-csrf-token': csrf, origin: t.url, 'content-type': 'application/json' },
      data: {},
    });
    expect(other.status()).toBe(404);
    const own = await page.request.post(`${t.url}/admin/kyc-verifications/${cases.a.verificationId}/approve`, {
      headers: { 'x-csrf-token': csrf, origin: t.url, 'content-type': 'application/json' },
      data: {},
    });
    expect(own.status()).toBe(200);
  });

  it('a signed-in user who is not an org admin gets no session; a forged state is refused', async () => {
    await context.clearCookies();
    await page.goto(`${t.url}/console/?org=${cases.b.orgId}`);
    await page.getByRole('button', { name: 'Sign in with your identity provider' }).click();
    await page.getByLabel('Email').fill('investor.b@example.com');
    const [response] = await Promise.all([
      page.waitForResponse((answer) => answer.url().includes('/admin/console/oidc/callback')),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    expect(response.status()).toBe(403);
    expect((await context.cookies(t.url)).map((cookie) => cookie.name)).not.toContain('tranche_console');
    const forged = await page.request.get(`${t.url}/admin/console/oidc/callback?code=x&state=forged`);
    expect(forged.status()).toBe(401);
    // A page for the person in the browser, with the way back, not our JSON envelope.
    expect(forged.headers()['content-type']).toMatch(/^text\/html/);
    expect(await forged.text()).toContain('href="/console/"');
  });
});
