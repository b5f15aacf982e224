import { createHash } from 'node:crypto';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { bodyDigest } from '../../src/keyserver/httpsig.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { signedHeaders, strictSignedHeaders, tokendClient } from '../support/tokend.ts';

type Keypair = InstanceType<typeof sdk.base.Keypair>;

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
let strict: TestApp;
let strictClient: Awaited<ReturnType<typeof tokendClient>>;

beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
  const defaults = loadConfig({});
  strict = await startTestApp({
    keyserver: { ...defaults.keyserver, strictSignatures: true, invitesPerRequest: 3, invitesPerAccountPerDay: 5 },
    authFailuresPerMinute: 3,
    trustProxy: ['127.0.0.1'],
  });
  strictClient = await tokendClient(strict);
});
afterAll(async () => {
  await t?.close();
  await strict?.close();
});

const identityBody = (email: string, phone?: string) =>
  JSON.stringify({ data: { type: 'identity', attributes: { email, ...(phone ? { phone_number: phone } : {}) } } });

/** A raw request with the exact body text given, so a test can sign one body and send another. */
function send(app: TestApp, method: string, target: string, rawBody: string | undefined, headers: Record<string, string>) {
  return app.request(method, target, { rawBody, headers: { 'content-type': 'application/vnd.api+json', ...headers } });
}

/** `(request-target)`, `date` and `digest` signed, with `date` and `digest` chosen by the test. */
function signedWith(keypair: Keypair, method: string, target: string, date: string, digest: string) {
  const text = `(request-target): ${method.toLowerCase()} ${target}\ndate: ${date}\ndigest: ${digest}`;
  const signature = (keypair.sign(createHash('sha256').update(text).digest()) as Buffer).toString('base64');
  return {
    date,
    digest,
    signature: `keyId="${keypair.accountId()}",algorithm="ed25519-sha256",headers="(request-target) date digest",signature="${signature}"`,
  };
}

describe('key server security: signatures cover what they claim (default mode)', () => {
  it('a signed digest must match the body: a captured admin signature cannot carry another body', async () => {
    const body = identityBody('digest-ok@example.com');
    const headers = await strictSignedHeaders(client.admin, 'POST', '/identities', body);
    const swapped = await send(t, 'POST', '/identities', identityBody('attacker@example.com'), headers);
    expect(swapped.status).toBe(401);
    expect(JSON.stringify(swapped.body)).toContain('digest');
    expect((await send(t, 'POST', '/identities', body, headers)).status).toBe(201);
  });

  it('a signed date is bounded on both sides by the skew window (default ±5 minutes)', async () => {
    const body = identityBody('dated@example.com');
    const at = (offsetMs: number) =>
      signedWith(client.admin, 'POST', '/identities', new Date(Date.now() + offsetMs).toUTCString(), bodyDigest(body));
    expect((await send(t, 'POST', '/identities', body, at(-6 * 60_000))).status).toBe(401);
    expect((await send(t, 'POST', '/identities', body, at(6 * 60_000))).status).toBe(401);
    expect((await send(t, 'POST', '/identities', body, at(-60_000))).status).toBe(201);
  });

  it('still accepts the official SDK style, (request-target) only, by default', async () => {
    const body = identityBody('sdk-style@example.com');
    expect((await send(t, 'POST', '/identities', body, signedHeaders(client.admin, 'POST', '/identities'))).status).toBe(201);
  });
});

describe('key server security: strict signatures (KEYSERVER_STRICT_SIGNATURES)', () => {
  it('refuses a write signed over (request-target) only', async () => {
    const body = identityBody('strict-sdk@example.com');
    const response = await send(strict, 'POST', '/identities', body, signedHeaders(strictClient.admin, 'POST', '/identities'));
    expect(response.status).toBe(401);
    expect(JSON.stringify(response.body)).toMatch(/date and digest/);
  });

  it('accepts a write that signs date + digest, once: the same signed request again is refused', async () => {
    const body = identityBody('strict@example.com');
    const headers = await strictSignedHeaders(strictClient.admin, 'POST', '/identities', body);
    expect(headers.signature).toContain('headers="(request-target) date digest"');
    const first = await send(strict, 'POST', '/identities', body, headers);
    expect(first.status, first.text).toBe(201);
    const replay = await send(strict, 'POST', '/identities', body, headers);
    expect(replay.status).toBe(401);
    expect(JSON.stringify(replay.body)).toMatch(/already used/);
  });

  it('reads still take an SDK-style signature', async () => {
    const target = '/identities?filter[email]=strict@example.com';
    const response = await strict.request('GET', target, { headers: signedHeaders(strictClient.admin, 'GET', target) });
    expect(response.status).toBe(200);
  });
});

describe('key server security: public lookups reveal only what was searched', () => {
  it('filter[identifier]=<email> does not reveal the phone, and =<phone> does not reveal the email', async () => {
    const body = identityBody('lookup@example.com', '+15551230001');
    expect((await send(t, 'POST', '/identities', body, await strictSignedHeaders(client.admin, 'POST', '/identities', body))).status).toBe(
      201,
    );
    const byEmail = await t.get('/identities?filter[identifier]=lookup@example.com');
    expect(byEmail.body.data).toHaveLength(1);
    expect(byEmail.body.data[0].attributes.email).toBe('lookup@example.com');
    expect(byEmail.body.data[0].attributes).not.toHaveProperty('phone_number');
    expect(byEmail.text).not.toContain('5551230001');
    const byPhone = await t.get(`/identities?filter[identifier]=${encodeURIComponent('+15551230001')}`);
    expect(byPhone.body.data[0].attributes.phone_number).toBe('+15551230001');
    expect(byPhone.body.data[0].attributes).not.toHaveProperty('email');
    expect(byPhone.text).not.toContain('lookup@example.com');
  });
});

describe('key server security: every mail and every guess is limited', () => {
  it('mails to one address are limited per hour (resent verifications, KYC recovery and 2FA codes share it)', async () => {
    const { wallet } = await new sdk.WalletsManager(client.api).create('flood@example.com', 'pw');
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 8; attempt++) statuses.push((await t.post(`/wallets/${wallet.id}/verification`)).status);
    expect(statuses.filter((status) => status === 204)).toHaveLength(t.config.keyserver.mailsPerAddressPerHour - 1);
    expect(statuses.at(-1)).toBe(429);
    const mails = await t.get('/admin/mail?to=flood@example.com', { 'x-admin-key': (await t.modules.identity.orgs.createAdminKey()).key });
    expect(mails.body.data.meta.total).toBe(t.config.keyserver.mailsPerAddressPerHour);
  });

  it('invites are limited per request and per inviting account per day', async () => {
    const invite = (emails: string[]) =>
      JSON.stringify({ data: emails.map((email) => ({ type: 'general-invite', attributes: { email } })) });
    const post = async (body: string) =>
      send(strict, 'POST', '/invites', body, await strictSignedHeaders(strictClient.admin, 'POST', '/invites', body));
    expect((await post(invite(['a1@example.com', 'a2@example.com', 'a3@example.com', 'a4@example.com']))).status).toBe(400);
    expect((await post(invite(['b1@example.com', 'b2@example.com', 'b3@example.com']))).status).toBe(201);
    // A refused batch (one invite exists: 409) stores, mails and counts nothing.
    expect((await post(invite(['c1@example.com', 'b1@example.com']))).status).toBe(409);
    expect((await post(invite(['c1@example.com', 'c2@example.com']))).status).toBe(201);
    const adminKey = (await strict.modules.identity.orgs.createAdminKey()).key;
    expect((await strict.get('/admin/mail?to=c1@example.com', { 'x-admin-key': adminKey })).body.data.meta.total).toBe(1);
    const over = await post(invite(['d1@example.com']));
    expect(over.status).toBe(429);
  });

  it('API-key guesses are limited per client address (X-Forwarded-For from a trusted proxy), right key or not', async () => {
    const from = (address: string, key: string) => strict.get('/notifications/webhooks', { 'x-api-key': key, 'x-forwarded-for': address });
    for (let guess = 0; guess < 3; guess++) {
      expect((await from('203.0.113.7', `rialto_ak_${strict.org.id}_${'x'.repeat(31)}${guess}`)).status).toBe(401);
    }
    expect((await from('203.0.113.7', strict.apiKey)).status).toBe(429);
    expect((await from('203.0.113.8', strict.apiKey)).status).toBe(200);
  });

  it('token exchange with invented keys does not get a fresh bucket per key', async () => {
    const exchange = (key: string) =>
      strict.request('POST', '/identity/auth/exchange', {
        headers: { 'x-api-key': key, 'x-forwarded-for': '203.0.113.9' },
        body: { token: 'x.y.z' },
      });
    const statuses: number[] = [];
    for (let guess = 0; guess < 5; guess++) statuses.push((await exchange(`rialto_ak_${strict.org.id}_${'y'.repeat(31)}${guess}`)).status);
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses.slice(3)).toEqual([429, 429]);
  });

  it('admin-key guesses are limited per client address', async () => {
    const guess = (key: string) => strict.get('/admin/kyc-verifications', { 'x-admin-key': key, 'x-forwarded-for': '203.0.113.10' });
    for (let attempt = 0; attempt < 3; attempt++) expect((await guess(`tranche_admin_${'z'.repeat(39)}${attempt}`)).status).toBe(401);
    const real = await strict.modules.identity.orgs.createAdminKey();
    expect((await guess(real.key)).status).toBe(429);
  });
});

describe('key server security: no credentials or PII in request logs', () => {
  it('redacts wallet ids, session ids and emails in URLs', async () => {
    const wallet = await client.signUp('logged@example.com', 'pw');
    const login = await new sdk.WalletsManager(client.api).get('logged@example.com', 'pw');
    await t.get('/kdf?email=logged%40example.com');
    await t.get(`/sessions/${'ab'.repeat(16)}`);
    const text = t.logs.join('');
    expect(text).toContain('/wallets/[redacted]');
    expect(text).toContain('/kdf?email=[redacted]');
    for (const secret of [wallet.id, login.id, 'logged%40example.com', 'logged@example.com', 'ab'.repeat(16)]) {
      expect(text, secret).not.toContain(secret);
    }
  });
});
