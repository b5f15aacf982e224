import fs from 'node:fs';
import path from 'node:path';
import axe from 'axe-core';
import { sql } from 'drizzle-orm';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_DIST } from '../../src/admin/console-static.ts';
import { launchBrowser, SHOTS } from '../support/browser.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { onTestServer, payCheckout, seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

let t: TestApp;
let adminKey: string;
let context: BrowserContext;
let page: Page;
let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
let receiver: Receiver;

beforeAll(async () => {
  if (!fs.existsSync(path.join(CONSOLE_DIST, 'index.html'))) throw new Error('console/dist is missing: run npm run build:console');
  t = await startTestApp();
  adminKey = (await t.modules.identity.orgs.createAdminKey('console test')).key;
  receiver = await startReceiver();
  browser = await launchBrowser();
  ({ context, page } = browser);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await receiver?.close();
  await t?.close();
});

/** axe-core on the page as shown: no serious or critical violations. */
async function expectAccessible(name: string) {
  await page.evaluate(axe.source);
  const result = await page.evaluate(() => (globalThis as unknown as { axe: typeof axe }).axe.run());
  const serious = result.violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  expect(serious.map((violation) => `${name}: ${violation.id} ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`)).toEqual(
    [],
  );
}

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

describe('console happy', () => {
  it('platform staff sign in with the admin key; the key is not kept in the browser, the cookie is HttpOnly and SameSite=Strict', async () => {
    await page.goto(`${t.url}/console/`);
    await expect.poll(() => page.getByLabel('Admin key').isVisible()).toBe(true);
    await shot('sign-in');
    await expectAccessible('sign-in');
    await page.getByLabel('Admin key').fill(adminKey);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: /KYC verifications/ }).waitFor();
    const cookies = await context.cookies(t.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'tranche_console', httpOnly: true, sameSite: 'Strict' });
    expect(cookies[0]!.value).not.toContain(adminKey);
    const stored = await page.evaluate<string>(
      'JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie',
    );
    expect(stored).not.toContain(adminKey);
  });

  it('approves a KYC verification the sandbox sent to needs_review', async () => {
    const investor = await t.signIn('review@example.com');
    const kyc = await t.post('/identity/kyc-verifications', { ...johnSmith, ssn: '123450002' }, investor.auth);
    expect(kyc.body.data.status, kyc.text).toBe('needs_review');
    const id = kyc.body.data.verification_id as string;
    await page.goto(`${t.url}/console/kyc`);
    await page.getByRole('link', { name: id.slice(0, 8) }).click();
    await page.getByRole('heading', { name: `KYC verification ${id.slice(0, 8)}` }).waitFor();
    await shot('kyc-case');
    await expectAccessible('kyc-case');
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    await expect.poll(async () => (await t.get(`/identity/kyc-verifications/${id}`, investor.auth)).body.data.status).toBe('approved');
    await expect.poll(() => page.getByRole('button', { name: 'Approve', exact: true }).isDisabled()).toBe(true);
  });

  it("opens an accreditation's uploaded PDF from a short-lived link and approves it", async () => {
    const investor = await t.signIn('accredited@example.com');
    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: investor.auth,
    });
    const id = certified.body.data.id as string;
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
    const upload = await t.post(
      `/identity/accreditation-sessions/${id}/documents`,
      { documentType: 'income_proof', fileName: 'w2.pdf', contentType: 'application/pdf', content: pdf.toString('base64') },
      investor.auth,
    );
    expect(upload.status, upload.text).toBe(201);
    await page.goto(`${t.url}/console/accreditations/${id}`);
    await page.getByRole('heading', { name: `Accreditation ${id.slice(0, 8)}` }).waitFor();
    await page.getByRole('button', { name: 'View w2.pdf' }).click();
    const link = page.getByRole('link', { name: 'Open w2.pdf' });
    await link.waitFor();
    // The link is on PUBLIC_URL (a name only in tests): fetched on the test server, as a browser there would.
    const document = await page.request.get(onTestServer(t, (await link.getAttribute('href'))!));
    expect(document.headers()['content-type']).toContain('application/pdf');
    expect(
      Buffer.from(await document.body())
        .subarray(0, 5)
        .toString(),
    ).toBe('%PDF-');
    await shot('accreditation-case');
    await expectAccessible('accreditation-case');
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    await expect.poll(async () => (await t.get('/identity/accreditations', investor.auth)).body.data.review_status).toBe('approved');
  });

  it('approves a funded subscription and shows the holding in the ledger', async () => {
    const admin = (await t.signIn('admin@example.com')).auth;
    const { offeringId, securityId } = await seedOffering(t, admin);
    const investor = await seedInvestor(t, 'investor@example.com');
    const created = await t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(securityId, 10), investor.auth);
    expect(created.status, created.text).toBe(201);
    const id = created.body.data.id as string;
    await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'John Smith', consent: true }, investor.auth);
    const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
    await payCheckout(t, checkout.body.data.checkout_url);
    await page.goto(`${t.url}/console/subscriptions/${id}`);
    await page.getByRole('heading', { name: `Subscription ${id.slice(0, 8)}` }).waitFor();
    await shot('subscription-case');
    await expectAccessible('subscription-case');
    await page.getByText('pending payment → pending review').waitFor();
    await page.getByRole('button', { name: 'Approve and issue shares' }).click();
    await page.getByText(/approved → completed by admin_key:/).waitFor();
    await page.getByRole('button', { name: 'See the holding in the ledger' }).click();
    await page.getByRole('cell', { name: 'Series A Preferred' }).waitFor();
    expect(await page.getByRole('cell', { name: '100.00 USD' }).count()).toBe(1);
    await shot('ledger');
    await expectAccessible('ledger');
  });

  it('creates a draft offering with a security class and opens it; funding shows committed against the maximum', async () => {
    await page.goto(`${t.url}/console/offerings`);
    await page.getByRole('heading', { name: 'New draft offering' }).waitFor();
    await page.getByLabel('Issuer legal name').fill('Beta Energy, LLC');
    await page.getByLabel('Offering name').fill('Beta Seed');
    await page.getByLabel('Target amount (USD)').fill('50000.00');
    await page.getByLabel('Maximum amount (USD)').fill('250000.00');
    await page.getByLabel('Minimum investment (USD)').fill('500.00');
    await page.getByLabel('Deadline').fill('2027-06-30');
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.getByRole('status').filter({ hasText: 'Draft Beta Seed created.' }).waitFor();
    await page.getByLabel('Offering of the class').selectOption({ label: 'Beta Seed' });
    await page.getByLabel('Class name').fill('Seed Units');
    await page.getByLabel('Price per unit (USD)').fill('5.00');
    await page.getByLabel('Units authorized').fill('50000');
    await page.getByRole('button', { name: 'Add class' }).click();
    await page.getByRole('status').filter({ hasText: 'Class Seed Units added.' }).waitFor();
    await page.getByLabel('Offering of the document').selectOption({ label: 'Beta Seed' });
    await page.getByLabel('Title').fill('Beta Subscription Agreement');
    await page.getByLabel('File (PDF, text or HTML)').setInputFiles({
      name: 'agreement.pdf',
      mimeType: 'application/pdf',
      buffer: Buffer.from('%PDF-1.4\n%%EOF\n'),
    });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('status').filter({ hasText: 'Uploaded Beta Subscription Agreement.' }).waitFor();
    await page.getByRole('button', { name: 'Open Beta Seed' }).click();
    await page.getByRole('button', { name: 'Pause Beta Seed' }).waitFor();
    const listed = await t.get('/issuance/offerings?limit=100', { 'x-api-key': t.apiKey });
    const beta = listed.body.data.items.find((offering: { name: string }) => offering.name === 'Beta Seed');
    expect(beta?.status).toBe('open');
    const documents = await t.get(`/issuance/offerings/${beta.id}/documents`, (await t.signIn('admin@example.com')).auth);
    expect(documents.body.data.items.map((document: { title: string }) => document.title)).toEqual(['Beta Subscription Agreement']);
    await page.getByRole('meter', { name: 'Funding of Acme Series A' }).waitFor();
    await shot('offerings');
    await expectAccessible('offerings');
  });

  it("creates an org's API key (shown once) and revokes it; the API refuses it at once", async () => {
    await page.goto(`${t.url}/console/orgs`);
    await page.getByRole('heading', { name: 'API keys of Test Org' }).waitFor();
    await page.getByLabel('Label of a new key').fill('console-made');
    await page.getByRole('button', { name: 'Create API key for Test Org' }).click();
    const shown = await page.getByRole('status').filter({ hasText: 'shown once' }).locator('code').textContent();
    expect(shown).toMatch(/^rialto_ak_/);
    expect((await t.get('/notifications/webhooks', { 'x-api-key': shown! })).status).toBe(200);
    await shot('orgs');
    await expectAccessible('orgs');
    // Revoking asks first; dismissed, nothing changes.
    page.once('dialog', (dialog) => void dialog.dismiss());
    await page.getByRole('button', { name: 'Revoke console-made' }).click();
    await page.getByRole('button', { name: 'Revoke console-made' }).waitFor();
    expect((await t.get('/notifications/webhooks', { 'x-api-key': shown! })).status).toBe(200);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Revoke console-made' }).click();
    await expect.poll(async () => (await t.get('/notifications/webhooks', { 'x-api-key': shown! })).status).toBe(401);
    // The mail outbox, filtered by status: this app has no SMTP server, so mail is kept.
    await t.modules.mailer.queue({ to: 'console-mail@example.com', subject: 'Console mail check', text: 'hello' }, t.db);
    await page.goto(`${t.url}/console/mail`);
    await page.getByRole('heading', { name: /Mail outbox/ }).waitFor();
    await page.getByText('Console mail check').waitFor();
    await page.getByLabel('Status').selectOption('sent');
    await expect.poll(() => page.getByText('Console mail check').count()).toBe(0);
    await page.getByLabel('Status').selectOption('kept');
    await page.getByText('Console mail check').waitFor();
    await shot('mail');
    await expectAccessible('mail');
  });

  it('retries a failed webhook delivery and shows each attempt', async () => {
    receiver.respond(() => ({ status: 500, body: 'endpoint down' }));
    const endpoint = await t.post('/notifications/webhooks', { url: receiver.url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
    expect(endpoint.status, endpoint.text).toBe(201);
    await t.post(`/notifications/webhooks/${endpoint.body.data.id}/test`, undefined, { 'x-api-key': t.apiKey });
    await t.modules.notifications.dispatcher.runOnce();
    const failed = await t.get('/notifications/deliveries?event_type=test.ping', { 'x-api-key': t.apiKey });
    const delivery = failed.body.data.items[0];
    expect(delivery.last_status_code).toBe(500);
    receiver.respond(() => ({ status: 200, body: 'ok' }));
    await page.goto(`${t.url}/console/webhooks/${delivery.id}`);
    await page.getByRole('heading', { name: `Delivery ${delivery.id.slice(0, 8)}` }).waitFor();
    await page.getByRole('cell', { name: 'endpoint down' }).waitFor();
    await page.getByRole('button', { name: 'Retry now' }).click();
    await page.getByRole('status').filter({ hasText: 'Manual attempt' }).waitFor();
    await page.getByRole('cell', { name: 'manual' }).waitFor();
    const after = await t.get(`/notifications/deliveries/${delivery.id}`, { 'x-api-key': t.apiKey });
    expect(after.body.data.attempts.map((attempt: { status_code: number }) => attempt.status_code)).toEqual(
      expect.arrayContaining([500, 200]),
    );
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('status').filter({ hasText: 'whsec_' }).waitFor();
    await page.getByRole('button', { name: 'Send test' }).click();
    await expect
      .poll(async () => (await t.get('/notifications/deliveries?event_type=test.ping', { 'x-api-key': t.apiKey })).body.data.meta.total)
      .toBe(2);
    await shot('webhooks');
    await expectAccessible('webhooks');
  });

  it('shows how many of a long list it has read, and reads the next page on Load more', async () => {
    const endpoint = await t.post('/notifications/webhooks', { url: `${receiver.url}/many`, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
    expect(endpoint.status, endpoint.text).toBe(201);
    const eventId = crypto.randomUUID();
    await t.modules.notifications.deliveries.insertMessage({ id: eventId, orgId: t.org.id, eventType: 'test.ping', body: '{}' });
    await t.db.execute(
      sql`insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, status, attempt_count)
          select ${t.org.id}::uuid, ${endpoint.body.data.id}::uuid, ${eventId}::uuid, 'test.ping', 'succeeded', 1 from generate_series(1, 130)`,
    );
    const total = (await t.get('/notifications/deliveries', { 'x-api-key': t.apiKey })).body.data.meta.total as number;
    expect(total).toBeGreaterThan(130);
    await page.goto(`${t.url}/console/webhooks`);
    await page.getByText(`Showing 100 of ${total} deliveries`).waitFor();
    expect(await page.locator('#deliveries-title ~ table tbody tr').count()).toBe(100);
    await page.getByRole('button', { name: 'Load more' }).click();
    await page.getByText(`Showing ${total} of ${total} deliveries`).waitFor();
    expect(await page.locator('#deliveries-title ~ table tbody tr').count()).toBe(total);
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    await shot('webhooks-load-more');
    // Its deliveries go with it.
    await t.delete(`/notifications/webhooks/${endpoint.body.data.id}`, { 'x-api-key': t.apiKey });
  });
});
