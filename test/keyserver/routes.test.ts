import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { expectRejected, signedHeaders, tokendClient } from '../support/tokend.ts';
import { signUpWithCode as signUpWithCodeVia } from '../support/tokend.ts';

const { ApiCaller, WalletsManager, FactorsManager, errors } = sdk;
type SdkWallet = InstanceType<typeof sdk.Wallet>;

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;

beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
});
afterAll(async () => {
  await t?.close();
});

/** A raw request signed by `keypair` (the admin's, or a wallet's), for checking exact bodies and statuses. */
function signed(
  keypair: InstanceType<typeof sdk.base.Keypair>,
  method: string,
  target: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  return t.request(method, target, { body, headers: { ...signedHeaders(keypair, method, target), ...headers } });
}
const asAdmin = (method: string, target: string, body?: unknown) => signed(client.admin, method, target, body);
const asOwner = (wallet: SdkWallet, method: string, target: string, body?: unknown) =>
  signed(wallet.keypair, method, target, body, { 'account-id': wallet.accountId });

async function login(email: string, password: string): Promise<SdkWallet> {
  return new WalletsManager(client.api).get(email, password);
}

/** Sign-up with an invitation's code: `WalletsManager.create`'s ninth argument. */
const signUpWithCode = (email: string, password: string, code: string) => signUpWithCodeVia(client.api, email, password, code);

describe('invites', () => {
  it("mail a code that confirms the invitee's email at sign-up, and show the inviter who joined", async () => {
    const inviter = await client.signUp('inviter@example.com', 'pw');
    const created = await asOwner(inviter, 'POST', '/invites', {
      data: [
        { type: 'whitelist-invite', attributes: { email: 'Invitee@Example.com' }, relationships: { sales: { data: { id: '7' } } } },
        { type: 'whitelist-invite', attributes: { email: 'other@example.com' }, relationships: { sales: { data: { id: '8' } } } },
      ],
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toHaveLength(2);
    const codeOf = async (email: string) => (await client.latestMail(email)).body.match(/the code ([A-Z2-9]{12})/)![1]!;
    const code = await codeOf('invitee@example.com');

    await expectRejected(signUpWithCode('invitee@example.com', 'pw', 'ABCDEFGHJKLM'), errors.BadRequestError);
    await expectRejected(signUpWithCode('invitee@example.com', 'pw', await codeOf('other@example.com')), errors.BadRequestError);
    const { wallet } = await signUpWithCode('invitee@example.com', 'pw', code.toLowerCase());
    expect((await client.latestMail('invitee@example.com')).subject).toBe('You are invited');
    expect((await login('invitee@example.com', 'pw')).accountId).toBe(wallet.accountId);

    const forSale7 = await asOwner(inviter, 'GET', '/invites?filter[sale-id]=7');
    expect(forSale7.status).toBe(200);
    expect(forSale7.body.data).toEqual([
      expect.objectContaining({
        attributes: { email: 'invitee@example.com' },
        relationships: { sales: { data: { type: 'sales', id: '7' } }, accounts: { data: [{ type: 'accounts', id: wallet.accountId }] } },
      }),
    ]);
    const firstPage = await asOwner(inviter, 'GET', '/invites?page[number]=0&page[limit]=1');
    expect(firstPage.body.data).toHaveLength(1);
    expect(firstPage.body.links.next).toContain('page[number]=1');
  });

  it('are all-or-none, private to the inviter, and removable', async () => {
    const inviter = await client.signUp('inviter2@example.com', 'pw');
    const someoneElse = await client.signUp('bystander@example.com', 'pw');
    const invite = { type: 'general-invite', attributes: { email: 'friend@example.com' } };
    expect((await asOwner(inviter, 'POST', '/invites', { data: invite })).status).toBe(201);
    const again = await asOwner(inviter, 'POST', '/invites', {
      data: [{ type: 'general-invite', attributes: { email: 'new-friend@example.com' } }, invite],
    });
    expect(again.status).toBe(409);
    const missingSale = await asOwner(inviter, 'POST', '/invites', {
      data: { type: 'whitelist-invite', attributes: { email: 'x@example.com' } },
    });
    expect(missingSale.status).toBe(400);
    expect(missingSale.body.errors[0].meta.field).toBe('/data/0/relationships/sales/data/id');

    const mine = await asOwner(inviter, 'GET', '/invites');
    expect(mine.body.data.map((item: { attributes: { email: string } }) => item.attributes.email)).toEqual(['friend@example.com']);
    expect((await asOwner(someoneElse, 'GET', '/invites')).body.data).toEqual([]);
    const id = Number(mine.body.data[0].id);
    expect((await asOwner(someoneElse, 'DELETE', '/invites', { data: [{ id }] })).status).toBe(204);
    expect((await asOwner(inviter, 'GET', '/invites')).body.data).toHaveLength(1);
    expect((await asOwner(inviter, 'DELETE', '/invites', { data: [{ id }] })).status).toBe(204);
    expect((await asOwner(inviter, 'GET', '/invites')).body.data).toEqual([]);
  });
});

describe('contact details', () => {
  it('change phone and telegram with the owner signature, and with the second factor once TOTP is on', async () => {
    await client.signUp('phone@example.com', 'pw');
    const wallet = await login('phone@example.com', 'pw');
    const address = wallet.accountId;
    const phone = (number: string) => ({ data: { type: 'phone', attributes: { phone: number } } });
    expect((await asOwner(wallet, 'PUT', `/identities/${address}/settings/phone`, phone('+15550000001'))).status).toBe(204);

    const rival = await client.signUp('rival@example.com', 'pw');
    const taken = await asOwner(rival, 'PUT', `/identities/${rival.accountId}/settings/phone`, phone('+15550000001'));
    expect(taken.status).toBe(409);

    const secret = await client.enableTotp(wallet, 'pw');
    t.clock.advance(30_000);
    const caller = client.api.withWallet(wallet);
    const factors = new FactorsManager(caller);
    const challenge = await expectRejected(
      caller.putWithSignature(`/identities/${address}/settings/phone`, phone('+15550000002')),
      errors.TFARequiredError,
    );
    expect(challenge.meta).toMatchObject({ factorType: 'totp' });
    await expectRejected(factors.verifyTotpFactor(challenge, '000000'), errors.BadRequestError);
    const unchanged = await asAdmin('GET', `/identities?filter[address]=${address}`);
    expect(unchanged.body.data[0].attributes.phone_number).toBe('+15550000001');
    await factors.verifyTotpFactorAndRetry(challenge, client.totpCode(secret));
    const changed = await asAdmin('GET', `/identities?filter[address]=${address}`);
    expect(changed.body.data[0].attributes.phone_number).toBe('+15550000002');

    t.clock.advance(30_000);
    const telegram = { data: { type: 'telegram-username', attributes: { username: '@phone_owner' } } };
    const telegramChallenge = await expectRejected(
      caller.putWithSignature(`/identities/${address}/settings/telegram`, telegram),
      errors.TFARequiredError,
    );
    await factors.verifyTotpFactorAndRetry(telegramChallenge, client.totpCode(secret));
    const withTelegram = await asAdmin('GET', `/identities?filter[telegram_username]=phone_owner`);
    expect(withTelegram.body.data.map((identity: { attributes: { address: string } }) => identity.attributes.address)).toEqual([address]);
  });
});

describe('sessions', () => {
  it('are extended by reading them and refused once expired', async () => {
    await client.signUp('session@example.com', 'pw');
    const { sessionId } = await login('session@example.com', 'pw');
    const first = await t.request('GET', `/sessions/${sessionId}`);
    t.clock.advance(5 * 60_000);
    const extended = await t.request('GET', `/sessions/${sessionId}`);
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.data.attributes.expires_at) - Date.parse(first.body.data.attributes.expires_at)).toBeGreaterThanOrEqual(
      5 * 60_000 - 1000,
    );
    t.clock.advance(11 * 60_000);
    const expired = await t.request('GET', `/sessions/${sessionId}`);
    expect(expired.status).toBe(404);
    expect(expired.body.errors[0].status).toBe('404');
  });
});

describe('KYC recovery', () => {
  it('lets a user who lost password and seed back in with an emailed code, holding a key that is not an owner', async () => {
    const original = await client.signUp('lost@example.com', 'forgotten');
    const recoveryApi = await ApiCaller.getInstanceWithPassphrase(t.url);
    const challenge = await expectRejected(
      new WalletsManager(recoveryApi).kycRecovery('lost@example.com', 'fresh start'),
      errors.TFARequiredError,
    );
    expect(challenge.meta).toMatchObject({ factorType: 'email' });
    const code = (await client.latestMail('lost@example.com')).body.match(/code is (\d{6})/)![1]!;
    const factors = new FactorsManager(recoveryApi);
    await expectRejected(factors.verifyTotpFactor(challenge, code === '000000' ? '111111' : '000000'), errors.BadRequestError);
    await factors.verifyTotpFactorAndRetry(challenge, code);

    await expectRejected(login('lost@example.com', 'forgotten'), errors.NotFoundError);
    const recovered = await login('lost@example.com', 'fresh start');
    const signers = await t.request('GET', `/v3/accounts/${original.accountId}/signers`);
    const recoverySigner = signers.body.data.find((signer: { id: string }) => signer.id === recovered.keypair.accountId());
    expect(recoverySigner.relationships.role.data.id).toBe(String(loadConfig({}).keyserver.kycRecoverySignerRole));
    const asRecoveredKey = await signed(recovered.keypair, 'GET', `/identities/${original.accountId}/settings`);
    expect(asRecoveredKey.status).toBe(401);
  });
});

describe('admin', () => {
  it('lists wallets by state and deletes one', async () => {
    await client.signUp('listed@example.com', 'pw');
    await new WalletsManager(client.api).create('unconfirmed@example.com', 'pw');
    const unverified = await asAdmin('GET', '/wallets?filter[state]=1&page[limit]=100');
    const emails = unverified.body.data.map((wallet: { attributes: { email: string } }) => wallet.attributes.email);
    expect(emails).toContain('unconfirmed@example.com');
    expect(emails).not.toContain('listed@example.com');
    const listed = await login('listed@example.com', 'pw');
    expect((await asAdmin('DELETE', `/wallets/${listed.id}`)).status).toBe(204);
    await expectRejected(login('listed@example.com', 'pw'), errors.NotFoundError);
  });

  it('creates unregistered identities, one or in bulk, whose account a confirmed sign-up takes over; only those can be deleted', async () => {
    const single = await asAdmin('POST', '/identities', { data: { type: 'identity', attributes: { email: 'Later@Example.com' } } });
    expect(single.status).toBe(201);
    expect(single.body.data.attributes).toMatchObject({ email: 'later@example.com', status: 'unregistered' });
    expect((await asAdmin('POST', '/identities', { data: { attributes: { email: 'later@example.com' } } })).status).toBe(409);

    const bulk = await asAdmin('POST', '/identities/mass-create', {
      data: [{ attributes: { email: 'bulk@example.com' } }, { attributes: { phone_number: '+15550000009' } }],
    });
    expect(bulk.status).toBe(201);
    const halfTaken = await asAdmin('POST', '/identities/mass-create', {
      data: [{ attributes: { email: 'never@example.com' } }, { attributes: { email: 'bulk@example.com' } }],
    });
    expect(halfTaken.status).toBe(409);
    expect((await t.request('GET', '/identities?filter[email]=never@example.com')).body.data).toEqual([]);

    const addresses = bulk.body.data.map((identity: { attributes: { address: string } }) => identity.attributes.address);
    const emails = await asAdmin('POST', '/identities/mass-emails', { data: addresses.map((id: string) => ({ type: 'account', id })) });
    expect(emails.body.data.map((identity: { attributes: { email: string | null } }) => identity.attributes.email)).toEqual([
      'bulk@example.com',
      null,
    ]);

    const byEmail = await t.request('GET', '/identities?filter[email]=bulk@example.com');
    expect(byEmail.body.data[0].attributes).toEqual(expect.objectContaining({ email: 'bulk@example.com' }));
    expect(byEmail.body.data[0].attributes).not.toHaveProperty('phone_number');
    const byPhone = await t.request('GET', '/identities?filter[phone]=%2B15550000009');
    expect(byPhone.body.data[0].attributes).toEqual(expect.objectContaining({ phone_number: '+15550000009' }));
    expect(byPhone.body.data[0].attributes).not.toHaveProperty('email');
    expect((await t.request('GET', '/identities?filter[passport]=X')).status).toBe(400);

    expect((await asAdmin('DELETE', '/identities/bulk@example.com')).status).toBe(204);
    expect((await t.request('GET', '/identities?filter[email]=bulk@example.com')).body.data).toEqual([]);

    const address = single.body.data.attributes.address;
    const { wallet: unconfirmed } = await new WalletsManager(client.api).create('later@example.com', 'pw');
    const pending = await t.request('GET', '/identities?filter[email]=later@example.com');
    expect(pending.body.data[0].attributes).toMatchObject({ address, status: 'unregistered' });
    expect((await signed(unconfirmed.keypair, 'GET', `/identities/${address}/settings`)).status).toBe(401);

    await client.confirmEmail('later@example.com');
    const joined = await login('later@example.com', 'pw');
    expect(joined.accountId).toBe(address);
    const later = await t.request('GET', '/identities?filter[email]=later@example.com');
    expect(later.body.data).toHaveLength(1);
    expect(later.body.data[0].attributes).toMatchObject({ address, status: 'active' });
    expect((await asOwner(joined, 'GET', `/identities/${address}/settings`)).status).toBe(200);
    const refused = await asAdmin('DELETE', '/identities/later@example.com');
    expect(refused.status).toBe(403);
  });

  it('hands an unregistered identity to a sign-up at once when an invite code proves the email', async () => {
    const opened = await asAdmin('POST', '/identities', { data: { attributes: { email: 'invited-later@example.com' } } });
    const address = opened.body.data.attributes.address;
    await asAdmin('POST', '/invites', { data: { type: 'general-invite', attributes: { email: 'invited-later@example.com' } } });
    const code = (await client.latestMail('invited-later@example.com')).body.match(/the code ([A-Z2-9]{12})/)![1]!;
    await signUpWithCode('invited-later@example.com', 'pw', code);
    const joined = await login('invited-later@example.com', 'pw');
    expect(joined.accountId).toBe(address);
    const signers = await t.request('GET', `/v3/accounts/${address}/signers`);
    expect(signers.body.data.map((signer: { id: string }) => signer.id)).toContain(joined.keypair.accountId());
    const identity = await t.request('GET', `/identities?filter[address]=${address}`);
    expect(identity.body.data[0].attributes.status).toBe('active');
  });
});

describe('the mail outbox (no SMTP server configured)', () => {
  it('shows a platform admin the mail that was kept instead of sent, and nobody else', async () => {
    await new WalletsManager(client.api).create('outbox@example.com', 'pw');
    const adminKey = await t.modules.identity.orgs.createAdminKey('mail');
    const mail = await t.get('/admin/mail?to=Outbox@Example.com', { 'x-admin-key': adminKey.key });
    expect(mail.status).toBe(200);
    expect(mail.body.data.meta).toMatchObject({ total: 1, limit: 20, offset: 0 });
    expect(mail.body.data.items[0]).toMatchObject({ recipient: 'outbox@example.com', subject: 'Confirm your email' });
    expect(mail.body.data.items[0].body).toContain(`${t.config.keyserver.clientUrl}/`);

    expect((await t.get('/admin/mail')).status).toBe(401);
    expect((await t.get('/admin/mail', { 'x-admin-key': 'tranche_admin_nope' })).status).toBe(401);
    const orgAdmin = await t.signIn('admin@example.com');
    expect((await t.get('/admin/mail', orgAdmin.auth)).status).toBe(403);
    const badQuery = await t.get('/admin/mail?to=not-an-email', { 'x-admin-key': adminKey.key });
    expect(badQuery.status).toBe(400);
  });
});

describe('brute-force guards', () => {
  it('limit KDF by email, wallet fetch and factor verification per client address', async () => {
    const limited = await startTestApp({ keyserver: { ...loadConfig({}).keyserver, rateLimitPerMinute: 3 } });
    try {
      for (const path of ['/kdf?email=someone@example.com', `/wallets/${'ab'.repeat(32)}`]) {
        for (let attempt = 0; attempt < 3; attempt++) expect((await limited.request('GET', path)).status).toBe(404);
        const refused = await limited.request('GET', path);
        expect(refused.status).toBe(429);
        expect(refused.headers.get('content-type')).toContain('application/vnd.api+json');
        expect(refused.body.errors[0]).toMatchObject({ status: '429' });
        expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      }
      const verification = `/wallets/${'cd'.repeat(32)}/factors/1/verification`;
      const body = { data: { attributes: { token: 'x', otp: '123456' } } };
      for (let attempt = 0; attempt < 3; attempt++) expect((await limited.request('PUT', verification, { body })).status).toBe(404);
      expect((await limited.request('PUT', verification, { body })).status).toBe(429);
    } finally {
      await limited.close();
    }
  });
});
