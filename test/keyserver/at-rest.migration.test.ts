import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keypair } from '@stellar/stellar-base';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules, sealPlaintextRows } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { rewrapUserEmails } from '../../src/identity/at-rest.ts';
import { rewrapSignatures } from '../../src/issuance/subscriptions/signature-evidence.ts';
import { aad, keyserverSealer, rewrapKeyserverRows } from '../../src/keyserver/at-rest.ts';
import { seal } from '../../src/platform/crypto/envelope.ts';
import type { Keyring } from '../../src/platform/crypto/keyring.ts';
import { rewrapRows } from '../../src/platform/crypto/rewrap-rows.ts';
import { queryRows, type Database } from '../../src/platform/db/database.ts';
import { databaseAt, migrationsBefore } from '../support/migrations.ts';
import { readOutbox } from '../../src/platform/mail/mailer.ts';
import { testKeyring } from '../support/harness.ts';

const keyring = testKeyring();
const owner = Keypair.random().publicKey();
const legacy = {
  walletId: 'a1'.repeat(32),
  email: 'legacy.owner@at-rest.example',
  phone: '+15550166543',
  telegram: 'legacytelegram',
  passport: 'LEGACYPASS77',
  otherEmail: 'legacy.unregistered@at-rest.example',
  inviteEmail: 'legacy.invitee@at-rest.example',
  sessionId: 'b2'.repeat(16),
  encryptionKey: 'c3'.repeat(32),
  blobId: 'D'.repeat(52),
  blobValue: JSON.stringify({ first_name: 'Legacymarker', ssn: '987-65-1234' }),
  setting: 'legacysetting.example',
  mailBody: 'Your legacy confirmation code is 918273.',
  userEmail: 'legacy.user@at-rest.example',
  adminEmail: 'legacy.admin@at-rest.example',
  signerName: 'Legacysigner Marker',
  userAgent: 'legacyagent/2.0',
  signerIp: '203.0.113.77',
};
// Many IdPs put an email in `sub`; it is PII and must not stay in clear either.
const userSubject = 'auth0|legacy.subject@at-rest.example';
const adminSubject = 'idp|legacy-admin';
let orgId: string;
let userId: string;
let subscriptionId: string;

let database: Database;
let fresh: Awaited<ReturnType<typeof databaseAt>> | undefined;
beforeAll(async () => {
  fresh = await databaseAt(migrationsBefore());
  database = fresh.database;
  const db = database.db;
  // Rows as the releases before sealing at rest wrote them.
  await db.execute(sql`insert into ks_accounts (id) values (${owner})`);
  const [wallet] = await queryRows<{ id: string }>(
    db,
    sql`insert into ks_wallets (wallet_id, email, account_id, current_account_id, salt, keychain_data, kdf_version, verified)
        values (${legacy.walletId}, ${legacy.email}, ${owner}, ${owner}, 'c2FsdA==', 'keychain', 2, true) returning id`,
  );
  const session = seal(keyring, legacy.encryptionKey, `ks-session:${legacy.sessionId}`);
  await db.execute(
    sql`insert into ks_sessions (id, wallet_pk, key_id, wrapped_key, ciphertext, expires_at)
        values (${legacy.sessionId}, ${wallet!.id}, ${session.keyId}, ${session.wrappedKey}, ${session.ciphertext}, now() + interval '1 hour')`,
  );
  const [identity] = await queryRows<{ id: number }>(
    db,
    sql`insert into ks_identities (address, email, phone_number, telegram_username, passport, status)
        values (${owner}, ${legacy.email}, ${legacy.phone}, ${legacy.telegram}, ${legacy.passport}, 'active') returning id`,
  );
  const other = Keypair.random().publicKey();
  await db.execute(sql`insert into ks_accounts (id) values (${other})`);
  await db.execute(sql`insert into ks_identities (address, email, status) values (${other}, ${legacy.otherEmail}, 'unregistered')`);
  await db.execute(
    sql`insert into ks_identity_settings (identity_id, key, value) values (${identity!.id}, 'client_domain', ${JSON.stringify(legacy.setting)}::jsonb)`,
  );
  await db.execute(sql`insert into ks_blobs (id, type, owner_id, value) values (${legacy.blobId}, 2048, ${owner}, ${legacy.blobValue})`);
  await db.execute(
    sql`insert into ks_invites (type, email, sale_id, creator_id) values ('general-invite', ${legacy.inviteEmail}, '', ${owner})`,
  );
  await db.execute(sql`insert into mail_outbox (recipient, subject, body) values (${legacy.email}, 'Your code', ${legacy.mailBody})`);

  // Identity and issuance rows as the releases before migration 0015 wrote them: a user's email,
  // an org's admin emails and a signature's evidence in clear.
  [{ id: orgId }] = (await queryRows<{ id: string }>(
    db,
    sql`insert into orgs (name, idp_issuer, idp_audience, admin_emails)
        values ('Legacy org', 'https://idp.legacy.example', 'legacy', ${sql.raw(`array['${legacy.adminEmail}']::text[]`)}) returning id`,
  )) as [{ id: string }];
  [{ id: userId }] = (await queryRows<{ id: string }>(
    db,
    sql`insert into users (org_id, external_subject, email) values (${orgId}, ${userSubject}, ${legacy.userEmail}) returning id`,
  )) as [{ id: string }];
  const [issuer] = await queryRows<{ id: string }>(
    db,
    sql`insert into issuers (org_id, legal_name) values (${orgId}, 'Legacy Inc.') returning id`,
  );
  const [offering] = await queryRows<{ id: string }>(
    db,
    sql`insert into offerings (org_id, issuer_id, name, exemption_type, target_amount_cents, maximum_amount_cents, minimum_investment_cents, deadline)
        values (${orgId}, ${issuer!.id}, 'Legacy offering', 'reg_d_506c', 100000, 500000, 100, '2027-12-31') returning id`,
  );
  const [security] = await queryRows<{ id: string }>(
    db,
    sql`insert into security_classes (org_id, offering_id, name, category, price_per_unit_cents, units_authorized)
        values (${orgId}, ${offering!.id}, 'Legacy class', 'equity', 1000, 1000) returning id`,
  );
  const signature = {
    signerUserId: userId,
    signerEmail: legacy.userEmail,
    signerName: legacy.signerName,
    signedAt: '2026-01-02T03:04:05.000Z',
    ip: legacy.signerIp,
    userAgent: legacy.userAgent,
    agreementDocumentId: '00000000-0000-4000-8000-000000000001',
    agreementVersion: 1,
    agreementSha256: 'ab'.repeat(32),
    consentText: 'I agree.',
    method: 'typed_name',
  };
  [{ id: subscriptionId }] = (await queryRows<{ id: string }>(
    db,
    sql`insert into subscriptions (org_id, offering_id, security_class_id, user_id, units, price_per_unit_cents, amount_cents, currency,
          payment_method, accreditation_status, suitability_confirmed, risk_acknowledgment_signed, status, signature)
        values (${orgId}, ${offering!.id}, ${security!.id}, ${userId}, 10, 1000, 10000, 'USD', 'card', 'accredited', true, true,
          'pending_payment', ${JSON.stringify(signature)}::jsonb) returning id`,
  )) as [{ id: string }];
}, 180_000);
afterAll(async () => {
  await database?.close();
  await fresh?.drop();
});

async function dump(): Promise<string> {
  const tables = await queryRows<{ name: string }>(database.db, sql`select tablename as name from pg_tables where schemaname = 'public'`);
  const parts: string[] = [];
  for (const { name } of tables) {
    const rows = await queryRows<{ row: string }>(database.db, sql`select r::text as row from ${sql.identifier(name)} r`);
    parts.push(...rows.map((row) => row.row));
  }
  return parts.join('\n');
}

describe('at-rest migration: rows written before sealing', () => {
  it('migrations 0014 and 0015 apply over them, and the start-up step seals each once, keeping every lookup', async () => {
    await database.migrate();
    expect(await dump()).toContain(legacy.email);

    expect(await sealPlaintextRows(database.db, keyring)).toEqual({
      wallets: 1,
      identities: 2,
      settings: 1,
      blobs: 1,
      invites: 1,
      sessions: 1,
      mail: 1,
      users: 1,
      orgs: 1,
      subscriptions: 1,
    });
    expect(Object.values(await sealPlaintextRows(database.db, keyring)).every((count) => count === 0)).toBe(true);

    const stored = await dump();
    const { blobId: _blobId, ...inClear } = legacy; // a blob id is a public content hash, not PII
    for (const value of [...Object.values(inClear), userSubject]) expect(stored, `${value} in clear`).not.toContain(value);

    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-at-rest-'));
    const modules = createModules({ config: { ...loadConfig({}), dataDir }, database, keyring });
    const { keyserver } = modules;
    const wallet = await keyserver.wallets.mustFind(legacy.walletId);
    expect(wallet).toMatchObject({ email: legacy.email, accountId: owner, verified: true });
    expect((await keyserver.wallets.kdfFor(legacy.email)).salt).toBe('c2FsdA==');
    expect((await keyserver.wallets.extendSession(legacy.sessionId)).encryptionKey).toBe(legacy.encryptionKey);

    const [identity] = await keyserver.identities.list({ phone: legacy.phone }, 0, 10);
    expect(identity).toMatchObject({ address: owner, email: legacy.email, telegramUsername: legacy.telegram, passport: legacy.passport });
    expect((await keyserver.identities.list({ passport: legacy.passport }, 0, 10)).map((row) => row.address)).toEqual([owner]);
    expect((await keyserver.identities.byEmail(legacy.otherEmail)).status).toBe('unregistered');
    expect(await keyserver.identities.setting(identity!, 'client_domain')).toBe(legacy.setting);

    const [blob] = await queryRows<{ key_id: string; wrapped_key: string; ciphertext: string }>(
      database.db,
      sql`select key_id, wrapped_key, ciphertext from ks_blobs where id = ${legacy.blobId}`,
    );
    const sealed = { keyId: blob!.key_id, wrappedKey: blob!.wrapped_key, ciphertext: blob!.ciphertext };
    expect(keyserverSealer(keyring).open(sealed, aad.blob(legacy.blobId))).toBe(legacy.blobValue);

    const mail = await readOutbox(database.db, keyring, { to: legacy.email.toUpperCase(), limit: 10, offset: 0 });
    expect(mail.items.map((item) => item.body)).toEqual([legacy.mailBody]);

    // Identity: the user's email opens, is found by its keyed hash, and the admin list still grants.
    const { identity: identityModule, issuance } = modules;
    expect((await identityModule.users.findById(userId))!.email).toBe(legacy.userEmail);
    expect((await identityModule.users.findByEmail(orgId, legacy.userEmail.toUpperCase())).map((user) => user.id)).toEqual([userId]);
    const org = (await identityModule.orgs.getOrg(orgId))!;
    expect(org.legacyAdminEmails).toBeNull();
    const admin = await identityModule.users.upsertFromIdentity(org, {
      subject: adminSubject,
      email: legacy.adminEmail,
      emailVerified: true,
    });
    expect(admin.role).toBe('org_admin');
    const plain = await identityModule.users.upsertFromIdentity(org, {
      subject: userSubject,
      email: legacy.userEmail,
      emailVerified: true,
    });
    expect(plain).toMatchObject({ id: userId, role: 'user', email: legacy.userEmail });

    // Issuance: the signature's PII opens; what is not PII stayed readable in the row.
    expect(await issuance.subscriptions.signatureEvidence(orgId, subscriptionId)).toMatchObject({
      signerEmail: legacy.userEmail,
      signerName: legacy.signerName,
      ip: legacy.signerIp,
      userAgent: legacy.userAgent,
      agreementVersion: 1,
      method: 'typed_name',
    });
    const [row] = await queryRows<{ signature: Record<string, unknown> }>(
      database.db,
      sql`select signature from subscriptions where id = ${subscriptionId}`,
    );
    expect(row!.signature).toMatchObject({ signedAt: '2026-01-02T03:04:05.000Z', agreementSha256: 'ab'.repeat(32) });
    expect(row!.signature).not.toHaveProperty('signerEmail');

    // Uniqueness now rests on the keyed hashes: the legacy email cannot be taken again.
    await expect(keyserver.identities.createUnregistered({ email: legacy.email })).rejects.toMatchObject({ status: 409 });
  }, 180_000);

  it('keys rotate re-wraps everything sealed, so the old master key can go', async () => {
    const oldKey = keyring.masterKeys.get(keyring.activeKeyId)!;
    const newKey = randomBytes(32);
    const during: Keyring = {
      ...keyring,
      activeKeyId: 'test-k2',
      masterKeys: new Map([
        ['test-k2', newKey],
        [keyring.activeKeyId, oldKey],
      ]),
    };
    const counts = await database.db.transaction(async (tx) => ({
      ...(await rewrapKeyserverRows(tx, during)),
      mail: await rewrapRows(tx, during, 'mail_outbox'),
      userEmails: await rewrapUserEmails(tx, during),
      subscriptionSigners: await rewrapSignatures(tx, during),
    }));
    expect(counts).toMatchObject({
      keyserverWallets: 1,
      keyserverIdentities: 2,
      keyserverBlobs: 1,
      keyserverSessions: 1,
      mail: 1,
      userEmails: 2,
      subscriptionSigners: 1,
    });

    const after: Keyring = { ...keyring, activeKeyId: 'test-k2', masterKeys: new Map([['test-k2', newKey]]) };
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-at-rest-'));
    const { keyserver, identity, issuance } = createModules({ config: { ...loadConfig({}), dataDir }, database, keyring: after });
    expect((await identity.users.findById(userId))!.email).toBe(legacy.userEmail);
    expect((await issuance.subscriptions.signatureEvidence(orgId, subscriptionId))!.signerName).toBe(legacy.signerName);
    expect((await keyserver.wallets.mustFind(legacy.walletId)).email).toBe(legacy.email);
    expect((await keyserver.wallets.extendSession(legacy.sessionId)).encryptionKey).toBe(legacy.encryptionKey);
    expect((await keyserver.identities.byEmail(legacy.otherEmail)).status).toBe('unregistered');
    expect((await readOutbox(database.db, after, { to: legacy.email, limit: 10, offset: 0 })).items[0]!.body).toBe(legacy.mailBody);
  }, 180_000);
});

describe('at-rest migration: users sealed before subjects were hashed', () => {
  it('migration 0016 applies over a user whose email was sealed under its plaintext subject, and the start-up step moves it', async () => {
    const before = await databaseAt(migrationsBefore('0016_user_subject_digest'));
    try {
      const db = before.database.db;
      const subject = 'auth0|sealed.subject@at-rest.example';
      const email = 'sealed.user@at-rest.example';
      const [{ id: org }] = (await queryRows<{ id: string }>(
        db,
        sql`insert into orgs (name, idp_issuer, idp_audience) values ('Sealed org', 'https://idp.sealed.example', 'sealed') returning id`,
      )) as [{ id: string }];
      // As release 0015 wrote it: the email sealed with AAD `users.email:<org>:<plaintext subject>`.
      const sealed = seal(keyring, email, `users.email:${org}:${subject}`);
      const [{ id: user }] = (await queryRows<{ id: string }>(
        db,
        sql`insert into users (org_id, external_subject, email_digest, email_key_id, email_wrapped_key, email_ciphertext)
            values (${org}, ${subject}, 'digest', ${sealed.keyId}, ${sealed.wrappedKey}, ${sealed.ciphertext}) returning id`,
      )) as [{ id: string }];

      await before.database.migrate();
      expect(await sealPlaintextRows(db, keyring)).toMatchObject({ users: 1 });
      expect(await sealPlaintextRows(db, keyring)).toMatchObject({ users: 0 });
      const [row] = await queryRows<{ row: string }>(db, sql`select u::text as row from users u where id = ${user}`);
      expect(row!.row).not.toContain(subject);
      expect(row!.row).not.toContain('sealed.subject');

      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-at-rest-'));
      const { identity } = createModules({ config: { ...loadConfig({}), dataDir }, database: before.database, keyring });
      expect((await identity.users.findById(user))!.email).toBe(email);
      const again = await identity.users.upsertFromIdentity((await identity.orgs.getOrg(org))!, { subject, email, emailVerified: true });
      expect(again.id).toBe(user);
      const other = await identity.users.upsertFromIdentity((await identity.orgs.getOrg(org))!, {
        subject: subject.toUpperCase(),
        email,
        emailVerified: true,
      });
      expect(other.id).not.toBe(user); // `sub` is case-sensitive (OpenID Connect Core 1.0, section 2)
    } finally {
      await before.database.close();
      await before.drop();
    }
  }, 180_000);
});
