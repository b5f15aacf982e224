import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { tokendClient } from '../support/tokend.ts';

const { WalletsManager } = sdk;

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;

beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
});
afterAll(async () => {
  await t?.close();
});

/** Opens `link` as a browser does, then submits the page's form (url-encoded, no fields). */
async function openAndConfirm(link: string) {
  const opened = await fetch(link);
  const submitted = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
  return { opened, openedText: await opened.text(), submitted, submittedText: await submitted.text() };
}

describe('verification page happy', () => {
  it('the mailed link ($PUBLIC_URL/verify/<payload>) opens a page whose button confirms the email', async () => {
    const email = 'verify.page@example.com';
    await new WalletsManager(client.api).create(email, 'correct horse battery');
    const mail = await client.latestMail(email);
    const link = mail.body.match(/(\S+\/verify\/[\w-]+)/)![1]!;
    expect(link.startsWith(`${t.config.keyserver.clientUrl}/`)).toBe(true);
    expect(new URL(link).pathname).toMatch(/^\/verify\/[\w-]+$/);

    const local = `${t.url}${new URL(link).pathname}`;
    const before = await fetch(local);
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toContain('text/html');
    // Opening the link (as a mail scanner would) confirms nothing.
    await expect(new WalletsManager(client.api).get(email, 'correct horse battery')).rejects.toThrow();

    const { submitted, submittedText } = await openAndConfirm(local);
    expect(submitted.status).toBe(200);
    expect(submittedText).toContain('Email confirmed');
    const wallet = await new WalletsManager(client.api).get(email, 'correct horse battery');
    expect(wallet.email).toBe(email);
  });
});

describe('verification page error', () => {
  it('a malformed or forged link gets a page that says so, never a 404 or a 5xx', async () => {
    const malformed = await openAndConfirm(`${t.url}/verify/not-a-payload`);
    expect(malformed.opened.status).toBe(400);
    expect(malformed.submitted.status).toBe(400);
    expect(malformed.submittedText).toContain('Link not valid');

    await new WalletsManager(client.api).create('verify.forged@example.com', 'correct horse battery');
    const real = await client.verificationPayload('verify.forged@example.com');
    const decoded = JSON.parse(Buffer.from(real, 'base64url').toString()) as { type: number; meta: { wallet_id: string; token: string } };
    const forged = Buffer.from(JSON.stringify({ ...decoded, meta: { ...decoded.meta, token: 'x'.repeat(20) } })).toString('base64url');
    const result = await openAndConfirm(`${t.url}/verify/${forged}`);
    expect(result.opened.status).toBe(200);
    expect(result.submitted.status).toBe(400);
    expect(result.submittedText).toContain('Link not valid');
  });
});
