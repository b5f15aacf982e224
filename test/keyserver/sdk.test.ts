import sdk from '@tokend/js-sdk';
import { generateSync } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { expectRejected, tokendClient } from '../support/tokend.ts';

const { WalletsManager, FactorsManager, DocumentsManager, Wallet, base, errors } = sdk;

let t: TestApp;
let api: InstanceType<typeof sdk.ApiCaller>;
let admin: InstanceType<typeof base.Keypair>;
let client: Awaited<ReturnType<typeof tokendClient>>;
const signUp = (email: string, password: string) => client.signUp(email, password);
const confirmEmail = (email: string) => client.confirmEmail(email);
const signedCaller = (wallet: InstanceType<typeof Wallet>) => api.withWallet(wallet);

beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
  ({ api, admin } = client);
});
afterAll(async () => {
  await t?.close();
});

describe('key server through @tokend/js-sdk', () => {
  it('serves network details the SDK configures itself from', async () => {
    const root = await t.request('GET', '/');
    expect(root.body.network_passphrase).toBe(t.config.keyserver.networkPassphrase);
    expect(root.body.master_account_id).toMatch(/^G[A-Z2-7]{55}$/);
    expect(api.networkDetails.networkPassphrase).toBe(t.config.keyserver.networkPassphrase);
  });

  it('signs up, verifies the email, logs in and decrypts the keychain on the client', async () => {
    const walletsManager = new WalletsManager(api);
    const { wallet } = await walletsManager.create('Alice@Example.com', 'correct horse');
    const blocked = await expectRejected(walletsManager.get('Alice@Example.com', 'correct horse'), errors.VerificationRequiredError);
    expect(blocked.httpStatus).toBe(403);

    const payload = await client.verificationPayload('alice@example.com');
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString()) as {
      type: number;
      meta: { wallet_id: string; token: string };
    };
    expect(decoded).toMatchObject({ type: 1, meta: { wallet_id: wallet.id } });
    expect(decoded.meta.token).toMatch(/^[a-zA-Z]{20}$/);
    await confirmEmail('alice@example.com');

    const loggedIn = await walletsManager.get('Alice@Example.com', 'correct horse');
    expect(loggedIn.accountId).toBe(wallet.accountId);
    expect(loggedIn.secretSeed).toBe(wallet.secretSeed);
    expect(loggedIn.sessionId).toMatch(/^[0-9a-f]{32}$/);

    await expectRejected(walletsManager.get('Alice@Example.com', 'wrong password'), errors.NotFoundError);

    const signers = await t.request('GET', `/v3/accounts/${wallet.accountId}/signers`);
    expect(signers.body.data.map((signer: { id: string }) => signer.id)).toContain(wallet.accountId);

    const session = await t.request('GET', `/sessions/${loggedIn.sessionId}`);
    expect(session.status).toBe(200);
    expect(session.body.data.attributes.encryption_key).toBe(loggedIn.sessionKey);
  });

  it('refuses a wallet whose email or wallet id is taken', async () => {
    await signUp('taken@example.com', 'pw-one');
    await expectRejected(new WalletsManager(api).create('taken@example.com', 'pw-two'), errors.ConflictError);
  });

  it('enables TOTP with the password factor, then logs in through the tfa_required flow; codes are single use', async () => {
    await signUp('totp@example.com', 'hunter22');
    const wallet = await new WalletsManager(api).get('totp@example.com', 'hunter22');
    const caller = signedCaller(wallet);
    const factors = new FactorsManager(caller);

    const needPassword = await expectRejected(
      caller.postWithSignature(`/wallets/${wallet.id}/factors`, { data: { type: 'totp' } }),
      errors.TFARequiredError,
    );
    expect(needPassword.meta).toMatchObject({ factorType: 'password' });
    const created = await factors.verifyPasswordFactorAndRetry(needPassword, 'hunter22');
    const totp = created.data as { id: number; secret: string; seed: string };
    expect(totp.seed).toContain('otpauth://totp/');
    expect(Buffer.from(totp.secret.replace(/=+$/, ''), 'utf8').length).toBeGreaterThanOrEqual(32);

    const needTotp = await expectRejected(
      caller.patchWithSignature(`/wallets/${wallet.id}/factors/${totp.id}`, { data: { attributes: { priority: 1 } } }),
      errors.TFARequiredError,
    );
    expect(needTotp.meta).toMatchObject({ factorType: 'totp', factorId: totp.id });
    await expectRejected(factors.verifyTotpFactor(needTotp, '000000'), errors.BadRequestError);
    const code = generateSync({ secret: totp.secret });
    await factors.verifyTotpFactorAndRetry(needTotp, code);

    const login = await expectRejected(new WalletsManager(api).get('totp@example.com', 'hunter22'), errors.TFARequiredError);
    expect(login.meta).toMatchObject({ factorType: 'totp', walletId: wallet.id });
    await expectRejected(factors.verifyTotpFactor(login, code), errors.BadRequestError);

    t.clock.advance(30_000);
    const nextCode = generateSync({ secret: totp.secret, epoch: Math.floor(t.clock.now().getTime() / 1000) });
    const retried = await factors.verifyTotpFactorAndRetry(login, nextCode);
    expect((retried.data as { accountId: string }).accountId).toBe(wallet.accountId);
    const replay = await expectRejected(login.retryRequest(), Error);
    expect((replay as unknown as { response: { status: number } }).response.status).toBe(403);
  });

  it('locks a factor after five wrong codes', async () => {
    await signUp('lock@example.com', 'pw');
    const wallet = await new WalletsManager(api).get('lock@example.com', 'pw');
    const caller = signedCaller(wallet);
    const challenge = await expectRejected(
      caller.postWithSignature(`/wallets/${wallet.id}/factors`, { data: { type: 'totp' } }),
      errors.TFARequiredError,
    );
    const path = `/wallets/${wallet.id}/factors/${challenge.meta.factorId}/verification`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const wrong = await t.request('PUT', path, {
        body: { data: { attributes: { token: challenge.meta.token, otp: Buffer.alloc(64).toString('base64') } } },
      });
      expect(wrong.status).toBe(400);
      expect(wrong.body.errors[0].meta.field).toBe('/data/attributes/otp');
    }
    const locked = await t.request('PUT', path, { body: { data: { attributes: { token: challenge.meta.token, otp: 'x' } } } });
    expect(locked.status).toBe(429);
  });

  it('changes the password: the envelope swaps the signer and the old key loses access', async () => {
    await signUp('change@example.com', 'old password');
    const walletsManager = new WalletsManager(api);
    const oldWallet = await walletsManager.get('change@example.com', 'old password');
    const caller = signedCaller(oldWallet);
    const manager = new WalletsManager(caller);
    const challenge = await expectRejected(manager.changePassword('new password'), errors.TFARequiredError);
    await new FactorsManager(caller).verifyPasswordFactorAndRetry(challenge, 'old password');

    const newWallet = await walletsManager.get('change@example.com', 'new password');
    expect(newWallet.accountId).toBe(oldWallet.accountId);
    await expectRejected(walletsManager.get('change@example.com', 'old password'), errors.NotFoundError);
    const signers = (await t.request('GET', `/v3/accounts/${oldWallet.accountId}/signers`)).body.data.map(
      (signer: { id: string }) => signer.id,
    );
    expect(signers).toContain(newWallet.keypair.accountId());
    expect(signers).not.toContain(oldWallet.keypair.accountId());

    // The removed signer can neither act as owner nor sign another signer change.
    await expectRejected(caller.getWithSignature(`/wallets/${newWallet.id}/factors`), errors.NotAllowedError);
    const forged = new base.TransactionBuilder(oldWallet.accountId);
    forged.operations = [
      base.ManageSignerBuilder.createSigner({
        publicKey: base.Keypair.random().accountId(),
        weight: 1000,
        identity: 0,
        roleID: '2',
        details: {},
      }),
    ];
    const envelope = forged.build();
    envelope.sign(oldWallet.keypair);
    const attempt = await t.modules.keyserver.accounts
      .applyEnvelope(envelope.toEnvelope().toXDR().toString('base64'), oldWallet.accountId, t.db, '/envelope')
      .then(
        () => 'applied',
        (error: { errors: { code?: string }[] }) => error.errors[0]!.code,
      );
    expect(attempt).toBe('tx_failed');
  });

  it('recovers with the recovery seed', async () => {
    const walletsManager = new WalletsManager(api);
    const recovery = base.Keypair.random();
    const created = await walletsManager.create('recover@example.com', 'forgotten', recovery);
    await confirmEmail('recover@example.com');
    await walletsManager.recovery('recover@example.com', recovery.secret(), 'brand new');
    const recovered = await walletsManager.get('recover@example.com', 'brand new');
    expect(recovered.accountId).toBe(created.wallet.accountId);
  });

  it('stores private and public blobs with owner and admin access', async () => {
    await signUp('blobs@example.com', 'pw');
    const wallet = await new WalletsManager(api).get('blobs@example.com', 'pw');
    const caller = signedCaller(wallet);
    const privateBlob = await caller.postWithSignature('/blobs', {
      data: {
        type: 'kyc_form',
        attributes: { value: '{"first_name":"Ann"}' },
        relationships: { owner: { data: { id: wallet.accountId } } },
      },
    });
    const id = (privateBlob.data as { id: string }).id;
    expect(id).toMatch(/^[A-Z2-7]{52}$/);
    expect(((await caller.getWithSignature(`/blobs/${id}`)).data as { value: string }).value).toBe('{"first_name":"Ann"}');
    await expectRejected(api.get(`/blobs/${id}`), errors.NotAllowedError);
    const stranger = api.withWallet(Wallet.generate('x@example.com'));
    await expectRejected(stranger.getWithSignature(`/blobs/${id}`), errors.NotAllowedError);
    const adminCaller = api.withWallet(new Wallet('admin@example.com', admin, admin.accountId()));
    expect(((await adminCaller.getWithSignature(`/blobs/${id}`)).data as { id: string }).id).toBe(id);

    const publicBlob = await caller.postWithSignature('/blobs', {
      data: { type: 'asset_description', attributes: { value: 'A fund' }, relationships: { owner: { data: { id: wallet.accountId } } } },
    });
    expect(((await api.get(`/blobs/${(publicBlob.data as { id: string }).id}`)).data as { value: string }).value).toBe('A fund');
    const listed = await t.request('GET', `/accounts/${wallet.accountId}/blobs`);
    expect(listed.body.data).toHaveLength(1);
  });

  it('hands out a document upload policy the SDK uploads with, and a download URL to the owner', async () => {
    await signUp('docs@example.com', 'pw');
    const wallet = await new WalletsManager(api).get('docs@example.com', 'pw');
    const caller = signedCaller(wallet);
    const documents = new DocumentsManager({ apiCaller: caller, storageURL: `${t.url}/storage/local` });
    const key = await documents.uploadDocument({
      type: 'kyc_id_document',
      mimeType: 'image/png',
      file: Buffer.from('png bytes'),
      accountId: wallet.accountId,
    });
    expect(key).toMatch(/^ksdoc-/);
    const url = await documents.getPrivateUrl(key);
    const download = await fetch(url.replace('http://tranche.test', t.url));
    expect(await download.text()).toBe('png bytes');
    await expectRejected(api.withWallet(Wallet.generate('y@example.com')).getWithSignature(`/documents/${key}`), errors.NotAllowedError);
  });

  it('looks up identities and keeps settings', async () => {
    const wallet = await signUp('lookup@example.com', 'pw');
    const found = await api.get('/identities', { filter: { identifier: 'lookup@example.com' }, page: { limit: 1 } });
    expect((found.data as { address: string }[])[0]!.address).toBe(wallet.accountId);
    await expectRejected(api.get('/identities'), errors.BadRequestError);
    const caller = signedCaller(wallet);
    await caller.putWithSignature(`/identities/${wallet.accountId}/settings`, {
      data: { attributes: { key: 'theme', value: { dark: true } } },
    });
    expect(((await caller.getWithSignature(`/identities/${wallet.accountId}/settings/theme`)).data as { value: unknown }).value).toEqual({
      dark: true,
    });
    expect(
      ((await caller.getWithSignature(`/identities/${wallet.accountId}/settings/missing`)).data as { value: unknown }).value,
    ).toBeNull();
  });

  it("refuses signed routes without a signature, with a stranger's signature and with a tampered target", async () => {
    const wallet = await signUp('guarded@example.com', 'pw');
    const account = wallet.accountId;
    const routes: [string, string, unknown?][] = [
      ['GET', `/wallets/${wallet.id}/factors`],
      ['POST', `/wallets/${wallet.id}/factors`, { data: { type: 'totp' } }],
      ['DELETE', `/wallets/${wallet.id}`],
      ['GET', '/wallets'],
      ['POST', '/blobs', { data: { type: 'kyc_form', attributes: { value: 'x' }, relationships: { owner: { data: { id: account } } } } }],
      [
        'POST',
        '/documents',
        { data: { type: 'kyc_poa', attributes: { content_type: 'image/png' }, relationships: { owner: { data: { id: account } } } } },
      ],
      ['GET', `/identities/${account}/settings`],
      ['PUT', `/identities/${account}/settings`, { data: { attributes: { key: 'a', value: 1 } } }],
      ['PUT', `/identities/${account}/settings/phone`, { data: { attributes: { phone: '+15551234567' } } }],
      ['POST', '/identities', { data: { attributes: { email: 'new@example.com' } } }],
      ['POST', '/invites', { data: { type: 'general-invite', attributes: { email: 'friend@example.com' } } }],
      ['GET', '/invites'],
    ];
    const stranger = api.withWallet(Wallet.generate('stranger@example.com'));
    for (const [method, path, body] of routes) {
      const unsigned = await t.request(method, path, body === undefined ? {} : { body });
      expect(unsigned.status, `${method} ${path} unsigned`).toBe(401);
      expect(unsigned.headers.get('content-type')).toContain('application/vnd.api+json');
      const call = stranger.call({ method, endpoint: path, data: body, needSign: true, isEmptyBodyAllowed: true });
      const error = await expectRejected(call, errors.NotAllowedError);
      expect(error.httpStatus, `${method} ${path} stranger`).toBe(401);
    }
    const owner = signedCaller(wallet);
    const signed = await owner
      .call({ method: 'GET', endpoint: `/identities/${account}/settings`, needSign: true, isEmptyBodyAllowed: true })
      .catch((e: unknown) => e);
    expect(signed).not.toBeInstanceOf(Error);
    const headers = (await import('@tokend/js-sdk/lib/api2/middlewares/sign-request.js')).signRequest(
      { method: 'get', url: `/identities/${account}/settings`, params: {}, headers: {} },
      wallet.keypair,
      account,
    );
    const tampered = await t.request('GET', `/identities/${account}/settings/theme`, { headers });
    expect(tampered.status).toBe(401);
    const genuine = await t.request('GET', `/identities/${account}/settings`, { headers });
    expect(genuine.status).toBe(200);
  });

  it('answers bad input with field pointers', async () => {
    const response = await t.request('POST', '/wallets', {
      body: { data: { type: 'wallet', id: 'nothex', attributes: { email: 'nope' } } },
    });
    expect(response.status).toBe(400);
    const fields = response.body.errors.map((error: { meta: { field: string } }) => error.meta.field);
    expect(fields).toContain('/data/id');
    expect(fields).toContain('/data/attributes/email');
    expect((await t.request('GET', '/kdf?email=nobody@example.com')).status).toBe(404);
    expect((await t.request('GET', '/sessions/00000000000000000000000000000000')).status).toBe(404);
  });
});
