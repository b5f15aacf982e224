import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTrancheClient, exchangeToken, verifyWebhook } from '@tranche/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { johnSmith } from '../support/fixtures.ts';
import { freePort, repoRoot } from '../support/process.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

// The README's quick start, literally: `npm start` on a fresh machine (the embedded database, no
// settings but a port and a data dir of the test's own), the first start's secrets from the file it
// names, ID tokens from the demo IdP; then the typical journey through the typed client, with a
// webhook receiver that verifies every delivery.

let dataDir: string;
let server: ChildProcess;
let output = '';
let base: string;
let receiver: Receiver;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-quick-start-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, PORT: String(port) };
  server = spawn('npm', ['start'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 150_000;
  while (!output.includes('first-start-secrets.txt') && Date.now() < deadline && server.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  if (!output.includes('first-start-secrets.txt')) throw new Error(`npm start did not come up:\n${output}`);
  base = `http://localhost:${port}`;
  receiver = await startReceiver();
}, 180_000);

afterAll(async () => {
  await receiver?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** A value from the first start's secrets file, by the text that precedes it. */
function secret(text: string, pattern: RegExp): string {
  const match = text.match(pattern);
  if (!match) throw new Error(`not in the first-start secrets: ${pattern}\n${text}`);
  return match[1]!;
}

async function demoIdToken(email: string): Promise<string> {
  const response = await fetch(`${base}/demo-idp/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { id_token?: string; token?: string };
  return (body.id_token ?? body.token)!;
}

const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(2048, 32), Buffer.from('\n%%EOF\n')]);

describe('the README quick start, then the typical journey', () => {
  it('npm start → demo org from the secrets file → exchange → KYC → accreditation with upload → approval → subscribe → sign → pay → approve → shares, every webhook verified', async () => {
    // What the server printed names the file, and the file holds what the README says it does.
    expect(output).toContain(base);
    const secrets = fs.readFileSync(path.join(dataDir, 'first-start-secrets.txt'), 'utf8');
    expect(fs.statSync(path.join(dataDir, 'first-start-secrets.txt')).mode & 0o777).toBe(0o600);
    const apiKey = secret(secrets, /API key \(shown once\): (\S+)/);
    const adminKey = secret(secrets, /x-admin-key: ([^'\s]+)/);

    // The README's first curl: exchange the printed demo ID token.
    const printedToken = secret(secrets, /"token":"([^"]+)"/);
    const exchanged = await fetch(`${base}/identity/auth/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify({ token: printedToken }),
    });
    expect(exchanged.status).toBe(200);
    expect(await exchanged.json()).toMatchObject({ token_type: 'Bearer', refresh_token: expect.stringMatching(/^rt_/) });

    const org = createTrancheClient({ baseUrl: base, apiKey });
    const endpoint = await org.POST('/notifications/webhooks', { body: { url: `${receiver.url}/tranche`, eventTypes: ['*'] } });
    expect(endpoint.response.status, JSON.stringify(endpoint.error)).toBe(201);
    const webhookSecret = endpoint.data!.data.signing_secret;

    const investor = createTrancheClient({
      baseUrl: base,
      session: await exchangeToken({ baseUrl: base, apiKey, idToken: await demoIdToken('quick.investor@example.com') }),
    });
    const orgAdmin = createTrancheClient({
      baseUrl: base,
      session: await exchangeToken({ baseUrl: base, apiKey, idToken: await demoIdToken('demo.admin@example.com') }),
    });
    const staff = createTrancheClient({ baseUrl: base, adminKey });

    // KYC through the sandbox provider.
    const kyc = await investor.POST('/identity/kyc-verifications', { body: johnSmith });
    expect(kyc.response.status, JSON.stringify(kyc.error)).toBe(201);
    expect(kyc.data!.data.status).toBe('approved');

    // Accreditation: self-certify, upload the evidence by presigned URL, finalize; staff approve.
    const certified = await investor.PUT('/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
    });
    expect(certified.response.status, JSON.stringify(certified.error)).toBe(200);
    const requested = await investor.POST('/identity/accreditations/documents', {
      body: { documentType: 'income_proof', fileName: 'tax-return.pdf', contentType: 'application/pdf', fileSizeBytes: pdf.length },
    });
    expect(requested.response.status, JSON.stringify(requested.error)).toBe(201);
    const upload = requested.data!.data.upload;
    const put = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: pdf });
    expect(put.status).toBe(200);
    const finalized = await investor.POST('/identity/accreditations/documents/{id}/upload', {
      params: { path: { id: requested.data!.data.id } },
    });
    expect(finalized.data?.data.status).toBe('uploaded');
    const accreditationId = certified.data!.data.id;
    const approvedAccreditation = await staff.POST('/admin/accreditations/{id}/approve', {
      params: { path: { id: accreditationId } },
      body: { reason: 'Tax return checks out' },
    });
    expect(approvedAccreditation.data?.data.verified, JSON.stringify(approvedAccreditation.error)).toBe(true);

    // The org admin puts up a 506(c) offering.
    const issuer = await orgAdmin.POST('/admin/issuers', { body: { legalName: 'Quick Start Robotics, Inc.' } });
    expect(issuer.response.status, JSON.stringify(issuer.error)).toBe(201);
    const offering = await orgAdmin.POST('/admin/offerings', {
      body: {
        issuerId: issuer.data!.data.id,
        name: 'Quick Start Series A',
        exemptionType: 'reg_d_506c',
        targetAmount: '100000.00',
        maximumAmount: '500000.00',
        minimumInvestment: '100.00',
        deadline: '2030-12-31',
      },
    });
    expect(offering.response.status, JSON.stringify(offering.error)).toBe(201);
    const offeringId = offering.data!.data.id;
    const security = await orgAdmin.POST('/admin/offerings/{id}/securities', {
      params: { path: { id: offeringId } },
      body: { name: 'Series A Preferred', category: 'preferred_equity', pricePerUnit: '10.00', unitsAuthorized: 10_000 },
    });
    expect(security.response.status, JSON.stringify(security.error)).toBe(201);
    const agreement = await orgAdmin.POST('/admin/offerings/{id}/documents', {
      params: { path: { id: offeringId } },
      body: {
        kind: 'subscription_agreement',
        title: 'Subscription Agreement',
        contentType: 'text/plain',
        content: Buffer.from('I subscribe.').toString('base64'),
      },
    });
    expect(agreement.response.status, JSON.stringify(agreement.error)).toBe(201);
    expect((await orgAdmin.POST('/admin/offerings/{id}/open', { params: { path: { id: offeringId } } })).response.status).toBe(200);

    // Subscribe, sign, pay on the Stripe double's page, and the back office approves.
    const subscribed = await investor.POST('/issuance/offerings/{offeringId}/subscriptions', {
      params: { path: { offeringId } },
      body: {
        securityClassId: security.data!.data.id,
        unitsSubscribed: 50,
        paymentMethod: 'card',
        accreditationStatus: 'accredited',
        suitabilityConfirmed: true,
        riskAcknowledgmentSigned: true,
      },
    });
    expect(subscribed.response.status, JSON.stringify(subscribed.error)).toBe(201);
    const subscriptionId = subscribed.data!.data.id;
    const signed = await investor.POST('/issuance/subscriptions/{id}/sign-agreement', {
      params: { path: { id: subscriptionId } },
      body: { signerName: 'John Smith', consent: true },
    });
    expect(signed.data?.data.status).toBe('pending_payment');
    const checkout = await investor.POST('/issuance/subscriptions/{id}/create-checkout-session', {
      params: { path: { id: subscriptionId } },
    });
    expect(checkout.response.status, JSON.stringify(checkout.error)).toBeLessThan(300);
    // The investor's browser on the Stripe double's hosted page, served by the same server.
    const checkoutUrl = checkout.data!.data.checkout_url;
    expect(checkoutUrl.startsWith(`${base}/`)).toBe(true);
    expect((await fetch(checkoutUrl)).status).toBe(200);
    const pay = await fetch(checkoutUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'outcome=pay',
      redirect: 'manual',
    });
    expect(pay.status).toBe(303);
    let paid = await investor.GET('/issuance/subscriptions/{id}', { params: { path: { id: subscriptionId } } });
    for (let i = 0; i < 100 && paid.data?.data.status !== 'pending_review'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      paid = await investor.GET('/issuance/subscriptions/{id}', { params: { path: { id: subscriptionId } } });
    }
    expect(paid.data?.data).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
    const approved = await staff.POST('/admin/subscriptions/{id}/approve', { params: { path: { id: subscriptionId } } });
    expect(approved.data?.data.status, JSON.stringify(approved.error)).toBe('completed');

    const shares = await investor.GET('/issuance/shares');
    expect(shares.data?.data.items).toEqual([expect.objectContaining({ units: 50, total_cost_basis: '500.00', status: 'active' })]);

    // Every delivery verifies with the endpoint's secret, and the journey's events all arrived.
    const expected = [
      'kyc.verification.approved',
      'accreditation.approved',
      'offering.opened',
      'subscription.funded',
      'subscription.completed',
      'share.issued',
    ];
    const types = async () => {
      for (let i = 0; i < 300; i++) {
        const seen = receiver.received.map((delivery) => verifyWebhook(webhookSecret, delivery.body, delivery.headers).type);
        if (expected.every((type) => seen.includes(type))) return seen;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return receiver.received.map((delivery) => verifyWebhook(webhookSecret, delivery.body, delivery.headers).type);
    };
    expect(await types()).toEqual(expect.arrayContaining(expected));
    for (const delivery of receiver.received) {
      const event = verifyWebhook(webhookSecret, delivery.body, delivery.headers);
      expect(event.id).toBe(delivery.headers['webhook-id']);
      for (const pii of ['JOHN', 'SMITH', '112223333', 'quick.investor@example.com'])
        expect(delivery.body.toUpperCase()).not.toContain(pii.toUpperCase());
    }
  }, 240_000);
});
