import sdk from '@tokend/js-sdk';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/platform/db/database.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

type Keypair = InstanceType<typeof sdk.base.Keypair>;

/**
 * Known values driven through the key server, the identity service and issuance over HTTP; none
 * of them may appear in clear in any row of any table, nor in the server's log.
 */
const SSN = '987654329';
const KYC_SSN = '987-65-4329';
const WALLET_EMAIL = 'marker.wallet@at-rest.example';
const IDENTITY_EMAIL = 'marker.identity@at-rest.example';
const INVITE_EMAIL = 'marker.invitee@at-rest.example';
const PII_EMAIL = 'marker.pii@at-rest.example';
const WALLET_PHONE = '+15550199876';
const IDENTITY_PHONE = '+15550188765';
const PII_PHONE = '5550177654';
const PASSWORD = 'marker password 1';
const KYC_NAME = 'Zebulonmarker';
const SETTING_VALUE = 'settingmarker.example';
const TELEGRAM = 'telegrammarker';
const INVESTOR_EMAIL = 'marker.investor@at-rest.example';
const PII_USER_EMAIL = 'marker.piiuser@at-rest.example';
const ORG_ADMIN_EMAIL = 'marker.orgadmin@at-rest.example';
const SIGNER_NAME = 'Quillonmarker Signer';
const USER_AGENT = 'useragentmarker/1.0';
// IdPs such as Auth0 or the demo IdP put the email in `sub`: the subject is PII too.
const SUBJECT = 'auth0|marker.subject@at-rest.example';

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

function signed(keypair: Keypair, method: string, target: string, body?: unknown, headers: Record<string, string> = {}) {
  return t.request(method, target, { body, headers: { ...signedHeaders(keypair, method, target), ...headers } });
}

/** Every row of every table of the app's schemas, as text (`row::text`), on PGlite and PostgreSQL alike. */
async function dumpDatabase(): Promise<string> {
  const tables = await queryRows<{ schema: string; name: string }>(
    t.db,
    sql`select table_schema as schema, table_name as name from information_schema.tables
        where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
        order by 1, 2`,
  );
  expect(tables.map((table) => table.name)).toEqual(expect.arrayContaining(['ks_wallets', 'ks_blobs', 'user_pii', 'mail_outbox']));
  const parts: string[] = [];
  for (const table of tables) {
    const rows = await queryRows<{ row: string }>(t.db, sql.raw(`select r::text as row from "${table.schema}"."${table.name}" r`));
    parts.push(`== ${table.schema}.${table.name}\n${rows.map((row) => row.row).join('\n')}`);
  }
  return parts.join('\n');
}

const inClear = (haystack: string, markers: Record<string, string>) =>
  Object.entries(markers)
    .filter(([, value]) => haystack.toLowerCase().includes(value.toLowerCase()))
    .map(([name]) => name);

describe('at-rest security: no PII or secret in clear in the database or the log', () => {
  it('after sign-up, login, sessions, 2FA, identities, settings, blobs, invites, mail, users, org admins, identity PII and a signature', async () => {
    // Key server: a wallet signed up and confirmed through the official SDK (the mailed link).
    const wallet = await client.signUp(WALLET_EMAIL, PASSWORD);
    const asOwner = (method: string, target: string, body?: unknown) =>
      signed(wallet.keypair, method, target, body, { 'account-id': wallet.accountId });
    const asAdmin = (method: string, target: string, body?: unknown) => signed(client.admin, method, target, body);

    const login = await t.get(`/wallets/${wallet.id}`);
    expect(login.status, login.text).toBe(200);
    const session = login.body.included.find((item: { type: string }) => item.type === 'session');
    expect((await t.get(`/sessions/${session.id}`)).status).toBe(200);
    expect((await t.get(`/kdf?email=${encodeURIComponent(WALLET_EMAIL)}`)).status).toBe(200);

    const phone = await asOwner('PUT', `/identities/${wallet.accountId}/settings/phone`, { data: { attributes: { phone: WALLET_PHONE } } });
    expect(phone.status, phone.text).toBe(204);
    const telegram = await asOwner('PUT', `/identities/${wallet.accountId}/settings/telegram`, {
      data: { attributes: { username: TELEGRAM } },
    });
    expect(telegram.status, telegram.text).toBe(204);
    const setting = await asOwner('PUT', `/identities/${wallet.accountId}/settings`, {
      data: { attributes: { key: 'client_domain', value: SETTING_VALUE } },
    });
    expect(setting.status, setting.text).toBe(204);
    expect((await asOwner('GET', `/identities/${wallet.accountId}/settings/client_domain`)).body.data.attributes.value).toBe(SETTING_VALUE);

    const kycForm = JSON.stringify({ first_name: KYC_NAME, last_name: 'Smith', ssn: KYC_SSN, email: WALLET_EMAIL, phone: WALLET_PHONE });
    const blob = await asOwner('POST', '/blobs', {
      data: { type: 'kyc_form', attributes: { value: kycForm }, relationships: { owner: { data: { id: wallet.accountId } } } },
    });
    expect(blob.status, blob.text).toBe(201);
    expect((await asOwner('GET', `/blobs/${blob.body.data.id}`)).body.data.attributes.value).toBe(kycForm);

    const invite = await asOwner('POST', '/invites', { data: { type: 'general-invite', attributes: { email: INVITE_EMAIL } } });
    expect(invite.status, invite.text).toBe(201);
    expect((await asOwner('GET', '/invites')).body.data[0].attributes.email).toBe(INVITE_EMAIL);

    const identity = await asAdmin('POST', '/identities', {
      data: { attributes: { email: IDENTITY_EMAIL, phone_number: IDENTITY_PHONE } },
    });
    expect(identity.status, identity.text).toBe(201);
    const byEmail = await t.get(`/identities?filter[email]=${encodeURIComponent(IDENTITY_EMAIL)}`);
    expect(byEmail.body.data.map((row: { attributes: { email: string } }) => row.attributes.email)).toEqual([IDENTITY_EMAIL]);
    const byPhone = await t.get(`/identities?filter[identifier]=${encodeURIComponent(WALLET_PHONE)}`);
    expect(byPhone.body.data.map((row: { attributes: { address: string } }) => row.attributes.address)).toEqual([wallet.accountId]);

    const totpSecret = await client.enableTotp(wallet, PASSWORD);

    // Identity service: an org whose admin is named by email, that admin signing in, and a user
    // (signed in by email) with a PII record.
    const markerOrg = await t.createOrg({ name: 'At-rest org', adminEmails: [ORG_ADMIN_EMAIL.toUpperCase()] });
    expect((await t.signIn(ORG_ADMIN_EMAIL, markerOrg)).claims).toMatchObject({ role: 'org_admin', email: ORG_ADMIN_EMAIL });
    const user = await t.signIn(PII_USER_EMAIL);
    const subjectExchange = await t.post(
      '/identity/auth/exchange',
      { token: await t.idp.idToken('marker.subjectuser@at-rest.example', { sub: SUBJECT }) },
      { 'x-api-key': t.apiKey },
    );
    expect(subjectExchange.status, subjectExchange.text).toBe(200);
    expect((await t.get(`/identity/users/${user.userId}`, user.auth)).body.data.email).toBe(PII_USER_EMAIL);
    const pii = await t.post(
      '/identity/user-pii',
      { firstName: KYC_NAME, lastName: 'Smith', ssn: SSN, email: PII_EMAIL, telephone: PII_PHONE },
      { ...user.auth, 'x-api-key': t.apiKey },
    );
    expect(pii.status, pii.text).toBe(201);

    // Issuance: the investor subscribes and signs the agreement (name, email, IP, user agent as evidence).
    const admin = await t.signIn('admin@example.com');
    const { offeringId, securityId } = await seedOffering(t, admin.auth);
    const investor = await seedInvestor(t, INVESTOR_EMAIL);
    const created = await t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(securityId, 10), investor.auth);
    expect(created.status, created.text).toBe(201);
    const subscriptionId = created.body.data.id as string;
    const signedUp = await t.post(
      `/issuance/subscriptions/${subscriptionId}/sign-agreement`,
      { signerName: SIGNER_NAME, consent: true },
      { ...investor.auth, 'user-agent': USER_AGENT },
    );
    expect(signedUp.status, signedUp.text).toBe(200);
    expect(await t.modules.issuance.subscriptions.signatureEvidence(t.org.id, subscriptionId)).toMatchObject({
      signerName: SIGNER_NAME,
      signerEmail: INVESTOR_EMAIL,
      userAgent: USER_AGENT,
    });

    // The development outbox, read back by a platform admin, filtered by recipient.
    const adminKey = (await t.modules.identity.orgs.createAdminKey()).key;
    const mail = await t.get(`/admin/mail?to=${encodeURIComponent(INVITE_EMAIL)}`, { 'x-admin-key': adminKey });
    expect(mail.status, mail.text).toBe(200);
    expect(mail.body.data.items.map((item: { recipient: string }) => item.recipient)).toEqual([INVITE_EMAIL]);

    const markers = {
      ssn: SSN,
      kycSsn: KYC_SSN,
      walletEmail: WALLET_EMAIL,
      identityEmail: IDENTITY_EMAIL,
      inviteEmail: INVITE_EMAIL,
      piiEmail: PII_EMAIL,
      walletPhone: WALLET_PHONE,
      identityPhone: IDENTITY_PHONE,
      piiPhone: PII_PHONE,
      kycName: KYC_NAME,
      setting: SETTING_VALUE,
      telegram: TELEGRAM,
      investorEmail: INVESTOR_EMAIL,
      piiUserEmail: PII_USER_EMAIL,
      orgAdminEmail: ORG_ADMIN_EMAIL,
      signerName: SIGNER_NAME,
      userAgent: USER_AGENT,
      subject: SUBJECT,
      subjectEmail: 'marker.subject@at-rest.example',
      walletId: wallet.id,
      sessionId: session.id,
      sessionKey: session.attributes.encryption_key,
      totpSecret,
      apiKey: t.apiKey,
      adminKey,
      accessToken: user.accessToken,
      refreshToken: user.refreshToken,
      investorAccessToken: investor.accessToken,
    };
    expect(inClear(await dumpDatabase(), markers), 'in clear in the database').toEqual([]);
    // Rate limits count per client address and per email, by keyed hash.
    const counters = await queryRows<{ key: string }>(t.db, sql`select key from rate_limit_counters`);
    expect(counters.length).toBeGreaterThan(0);
    for (const { key } of counters) expect(key).toMatch(/^[\w-]+:[0-9a-f]{64}$/);
    expect(inClear(t.logs.join(''), markers), 'in clear in the log').toEqual([]);
  }, 180_000);
});
