import sdk from '@tokend/js-sdk';
import {
  createTrancheClient,
  exchangeToken,
  keyServerSigning,
  TrancheError,
  tokenSession,
  verifyWebhook,
  type RequestSigner,
} from '@tranche/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

let t: TestApp;
let receiver: Receiver;
beforeAll(async () => {
  t = await startTestApp();
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
  await t?.close();
});

const signerOf = (keypair: InstanceType<typeof sdk.base.Keypair>): RequestSigner => ({
  accountId: keypair.accountId(),
  sign: (data) => keypair.sign(Buffer.from(data)) as Buffer,
});

describe('typed client happy', () => {
  it('exchanges an ID token, calls typed routes, and refreshes once for concurrent callers when the access token runs out', async () => {
    const refreshed: string[] = [];
    const session = await exchangeToken({
      baseUrl: t.url,
      apiKey: t.apiKey,
      idToken: await t.idp.idToken('client-investor@example.com'),
      onTokens: (tokens) => refreshed.push(tokens.refreshToken),
    });
    const client = createTrancheClient({ baseUrl: t.url, session });
    const me = await client.GET('/identity/kyc');
    expect(me.response.status).toBe(200);
    expect(me.data?.data.status).toBe('not_started');

    // As if the access token had run out: five calls at once share one refresh (refresh tokens rotate).
    const stale = tokenSession({
      baseUrl: t.url,
      tokens: { ...session.tokens(), accessExpiresAt: Date.now() - 1 },
      onTokens: (tokens) => refreshed.push(tokens.refreshToken),
    });
    const staleClient = createTrancheClient({ baseUrl: t.url, session: stale });
    const answers = await Promise.all(Array.from({ length: 5 }, () => staleClient.GET('/identity/kyc')));
    expect(answers.map((answer) => answer.response.status)).toEqual([200, 200, 200, 200, 200]);
    expect(refreshed).toHaveLength(2);
    expect(stale.tokens().refreshToken).not.toBe(session.tokens().refreshToken);

    // The old refresh token was spent by the rotation.
    await expect(session.refresh()).rejects.toBeInstanceOf(TrancheError);
  });

  it('on a 401 refreshes and sends the request again, body included', async () => {
    const session = await exchangeToken({ baseUrl: t.url, apiKey: t.apiKey, idToken: await t.idp.idToken('client-retry@example.com') });
    const revoked = tokenSession({ baseUrl: t.url, tokens: { ...session.tokens(), accessToken: 'not-a-token' } });
    const client = createTrancheClient({ baseUrl: t.url, session: revoked });
    const created = await client.POST('/identity/user-pii', { body: { firstName: 'Ada', lastName: 'Lovelace' } });
    expect(created.response.status).toBe(201);
    expect(created.data?.data.first_name).toBe('Ada');
    expect(revoked.tokens().accessToken).not.toBe('not-a-token');
  });

  it('lists offerings page by page with the typed query', async () => {
    const admin = (await t.signIn('admin@example.com')).auth;
    for (let i = 0; i < 3; i++) await seedOffering(t, admin);
    const session = await exchangeToken({ baseUrl: t.url, apiKey: t.apiKey, idToken: await t.idp.idToken('client-lister@example.com') });
    const client = createTrancheClient({ baseUrl: t.url, session });
    const first = await client.GET('/issuance/offerings', { params: { query: { page: 1, limit: 2 } } });
    expect(first.response.status).toBe(200);
    expect(first.data?.data.items).toHaveLength(2);
    expect(first.data?.data.meta).toMatchObject({ page: 1, limit: 2, has_next_page: true });
    const second = await client.GET('/issuance/offerings', { params: { query: { page: 2, limit: 2 } } });
    expect(second.data?.data.items.length).toBeGreaterThanOrEqual(1);
    const ids = new Set([...first.data!.data.items, ...second.data!.data.items].map((offering) => offering.id));
    expect(ids.size).toBe(first.data!.data.items.length + second.data!.data.items.length);
  });

  it('verifies a received webhook with the endpoint secret, and refuses a tampered one', async () => {
    const client = createTrancheClient({ baseUrl: t.url, apiKey: t.apiKey });
    const created = await client.POST('/notifications/webhooks', { body: { url: `${receiver.url}/client`, eventTypes: ['*'] } });
    expect(created.response.status).toBe(201);
    const endpoint = created.data!.data;
    const test = await client.POST('/notifications/webhooks/{id}/test', { params: { path: { id: endpoint.id } } });
    expect(test.response.status).toBeLessThan(300);
    let delivery: (typeof receiver.received)[number] | undefined;
    for (let round = 0; round < 50 && !delivery; round++) {
      await t.modules.notifications.dispatcher.runOnce();
      delivery = receiver.received.find((received) => received.body.includes('"test.ping"'));
    }
    if (!delivery) throw new Error('the test event never arrived');

    const event = verifyWebhook(endpoint.signing_secret, delivery.body, delivery.headers);
    expect(event.type).toBe('test.ping');
    expect(event.id).toBe(delivery.headers['webhook-id']);
    expect(() => verifyWebhook(endpoint.signing_secret, delivery.body.replace('test.ping', 'test.pong'), delivery.headers)).toThrow();
    expect(() => verifyWebhook(`whsec_${Buffer.alloc(24, 1).toString('base64')}`, delivery.body, delivery.headers)).toThrow();
  });
});

describe('typed client security', () => {
  it('signs key-server requests strictly (date + digest), which strict mode requires of every write', async () => {
    const strict = await startTestApp({ keyserver: { ...loadConfig({}).keyserver, strictSignatures: true } });
    try {
      const admin = sdk.base.Keypair.random();
      await strict.modules.keyserver.accounts.addAdminSigner(admin.accountId());
      const body = { data: { type: 'identity' as const, attributes: { email: 'signed-by-client@example.com' } } };

      const unsigned = createTrancheClient({ baseUrl: strict.url });
      expect((await unsigned.POST('/identities', { body })).response.status).toBe(401);

      const signed = createTrancheClient({ baseUrl: strict.url, signer: signerOf(admin) });
      const created = await signed.POST('/identities', { body });
      expect(created.response.status).toBe(201);
      const lookup = await signed.GET('/identities', { params: { query: { 'filter[identifier]': 'signed-by-client@example.com' } } });
      expect(lookup.response.status).toBe(200);

      // A signature by a key that is no signer of the master account proves nothing.
      const stranger = createTrancheClient({ baseUrl: strict.url });
      stranger.use(keyServerSigning(signerOf(sdk.base.Keypair.random())));
      expect(
        (await stranger.POST('/identities', { body: { data: { type: 'identity', attributes: { email: 'x@example.com' } } } })).response
          .status,
      ).toBe(401);
    } finally {
      await strict.close();
    }
  });
});
