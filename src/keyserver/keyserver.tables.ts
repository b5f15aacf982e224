import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  serial,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { createdAt, id, updatedAt } from '../platform/db/columns.ts';
import type { NewSigner } from './accounts/accounts.repo.ts';

/**
 * An envelope-sealed JSON document (platform/crypto/envelope.ts). Nullable only for rows written
 * before PII was sealed at rest: the start-up step `sealPlaintextRows` seals those, after which
 * every row has all three.
 */
const sealedColumns = () => ({
  keyId: text('key_id'),
  wrappedKey: text('wrapped_key'),
  ciphertext: text('ciphertext'),
});

/** The account registry the request-signature checks rely on (TokenD accounts, without a ledger). */
export const ksAccounts = pgTable('ks_accounts', {
  id: text('id').primaryKey(),
  isMaster: boolean('is_master').notNull().default(false),
  createdAt: createdAt(),
});

export const ksSigners = pgTable(
  'ks_signers',
  {
    accountId: text('account_id')
      .notNull()
      .references(() => ksAccounts.id, { onDelete: 'cascade' }),
    publicKey: text('public_key').notNull(),
    roleId: bigint('role_id', { mode: 'number' }).notNull(),
    weight: integer('weight').notNull(),
    identity: integer('identity').notNull(),
    details: text('details').notNull().default('{}'),
    createdAt: createdAt(),
  },
  (table) => [primaryKey({ columns: [table.accountId, table.publicKey] }), index('ks_signers_public_key_idx').on(table.publicKey)],
);

/** Envelopes already applied: a captured envelope cannot be applied twice. */
export const ksTransactions = pgTable('ks_transactions', {
  hash: text('hash').primaryKey(),
  accountId: text('account_id').notNull(),
  createdAt: createdAt(),
});

/**
 * Strict signatures (KEYSERVER_STRICT_SIGNATURES): the SHA-256 of each write's signature, kept for
 * the clock-skew window, so a captured request cannot be sent again while its date is still good.
 */
export const ksSignatureReplays = pgTable(
  'ks_signature_replays',
  {
    signatureDigest: text('signature_digest').primaryKey(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (table) => [index('ks_signature_replays_expires_idx').on(table.expiresAt)],
);

export const ksWallets = pgTable(
  'ks_wallets',
  {
    id: id(),
    /** Lookups and uniqueness: keyed hashes of the wallet id (the login credential) and of the email. */
    walletIdDigest: text('wallet_id_digest'),
    emailDigest: text('email_digest'),
    /** `{ walletId, email }`, sealed. */
    ...sealedColumns(),
    /** Plaintext of rows older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyWalletId: text('wallet_id'),
    legacyEmail: text('email'),
    accountId: text('account_id')
      .notNull()
      .references(() => ksAccounts.id),
    currentAccountId: text('current_account_id').notNull(),
    salt: text('salt').notNull(),
    keychainData: text('keychain_data').notNull(),
    kdfVersion: integer('kdf_version').notNull(),
    verified: boolean('verified').notNull().default(false),
    verificationDigest: text('verification_digest'),
    verificationSentAt: timestamp('verification_sent_at', { withTimezone: true }),
    /** A sign-up that takes over an unregistered identity's account: its signers join once the email is confirmed. */
    pendingSigners: jsonb('pending_signers').$type<NewSigner[]>(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('ks_wallets_wallet_id_digest_idx').on(table.walletIdDigest),
    uniqueIndex('ks_wallets_email_digest_idx').on(table.emailDigest),
    index('ks_wallets_account_idx').on(table.accountId),
  ],
);

export const ksFactors = pgTable(
  'ks_factors',
  {
    id: serial('id').primaryKey(),
    walletPk: uuid('wallet_pk')
      .notNull()
      .references(() => ksWallets.id, { onDelete: 'cascade' }),
    type: text('type', { enum: ['password', 'totp', 'email'] }).notNull(),
    priority: integer('priority').notNull().default(0),
    /** password: the factor keypair's account id, salt and keychain (opaque, client-encrypted). */
    accountId: text('account_id'),
    salt: text('salt'),
    keychainData: text('keychain_data'),
    /** totp: the secret, envelope-encrypted; the last accepted time step makes codes single-use. */
    secretKeyId: text('secret_key_id'),
    secretWrappedKey: text('secret_wrapped_key'),
    secretCiphertext: text('secret_ciphertext'),
    lastUsedStep: bigint('last_used_step', { mode: 'number' }),
    failedAttempts: integer('failed_attempts').notNull().default(0),
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex('ks_factors_one_per_type_idx').on(table.walletPk, table.type)],
);

/** A pending or verified second-factor challenge, bound to one request (method, path, body). */
export const ksTfaChallenges = pgTable(
  'ks_tfa_challenges',
  {
    token: text('token').primaryKey(),
    walletPk: uuid('wallet_pk')
      .notNull()
      .references(() => ksWallets.id, { onDelete: 'cascade' }),
    factorId: integer('factor_id')
      .notNull()
      .references(() => ksFactors.id, { onDelete: 'cascade' }),
    verified: boolean('verified').notNull().default(false),
    /** email factor: the keyed hash of the code mailed for this challenge. */
    codeDigest: text('code_digest'),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('ks_tfa_challenges_wallet_idx').on(table.walletPk)],
);

export const ksSessions = pgTable(
  'ks_sessions',
  {
    /** The keyed hash of the session id (a bearer secret); the id itself is never stored. */
    id: text('id').primaryKey(),
    walletPk: uuid('wallet_pk')
      .notNull()
      .references(() => ksWallets.id, { onDelete: 'cascade' }),
    keyId: text('key_id').notNull(),
    wrappedKey: text('wrapped_key').notNull(),
    ciphertext: text('ciphertext').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('ks_sessions_wallet_idx').on(table.walletPk)],
);

export const ksBlobs = pgTable(
  'ks_blobs',
  {
    id: text('id').primaryKey(),
    type: integer('type').notNull(),
    ownerId: text('owner_id').notNull(),
    /** The value, sealed: whatever its type, a blob may hold PII (kyc_form holds SSNs). */
    ...sealedColumns(),
    /** Plaintext of rows older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyValue: text('value'),
    creatorRoleId: bigint('creator_role_id', { mode: 'number' }),
    createdAt: createdAt(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (table) => [index('ks_blobs_owner_idx').on(table.ownerId, table.createdAt)],
);

export const ksDocuments = pgTable('ks_documents', {
  key: text('key').primaryKey(),
  type: integer('type').notNull(),
  ownerId: text('owner_id').notNull(),
  contentType: text('content_type').notNull(),
  /** A copy of the upload taken at its first read; every later read serves it, whatever the upload policy still allows. */
  sealedKey: text('sealed_key'),
  sha256: text('sha256'),
  sizeBytes: integer('size_bytes'),
  createdAt: createdAt(),
});

export const ksIdentities = pgTable(
  'ks_identities',
  {
    id: serial('id').primaryKey(),
    address: text('address')
      .notNull()
      .references(() => ksAccounts.id),
    /** Lookups and uniqueness: keyed hashes of the contact details. */
    emailDigest: text('email_digest'),
    phoneDigest: text('phone_digest'),
    telegramDigest: text('telegram_digest'),
    passportDigest: text('passport_digest'),
    /** `{ email, phoneNumber, telegramUsername, passport }`, sealed. */
    ...sealedColumns(),
    /** Plaintext of rows older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyEmail: text('email'),
    legacyPhoneNumber: text('phone_number'),
    legacyTelegramUsername: text('telegram_username'),
    legacyPassport: text('passport'),
    status: text('status', { enum: ['unregistered', 'active'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('ks_identities_address_idx').on(table.address),
    uniqueIndex('ks_identities_email_digest_idx').on(table.emailDigest),
    uniqueIndex('ks_identities_phone_digest_idx').on(table.phoneDigest),
    uniqueIndex('ks_identities_telegram_digest_idx').on(table.telegramDigest),
    index('ks_identities_passport_digest_idx').on(table.passportDigest),
  ],
);

export const ksIdentitySettings = pgTable(
  'ks_identity_settings',
  {
    identityId: integer('identity_id')
      .notNull()
      .references(() => ksIdentities.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    /** The JSON value, sealed. */
    ...sealedColumns(),
    /** Plaintext of rows older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyValue: jsonb('value'),
    updatedAt: updatedAt(),
  },
  (table) => [primaryKey({ columns: [table.identityId, table.key] })],
);

export const ksInvites = pgTable(
  'ks_invites',
  {
    id: serial('id').primaryKey(),
    type: text('type', { enum: ['whitelist-invite', 'general-invite'] }).notNull(),
    /** Keyed hash of the invitee's email (the same as a wallet's `email_digest`); the email itself is sealed. */
    emailDigest: text('email_digest'),
    ...sealedColumns(),
    /** Plaintext of rows older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyEmail: text('email'),
    saleId: text('sale_id').notNull().default(''),
    creatorId: text('creator_id').notNull(),
    /** Keyed hash of the code mailed with the invite; a wallet created with it starts verified. */
    codeDigest: text('code_digest'),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('ks_invites_email_digest_sale_idx').on(table.emailDigest, table.type, table.saleId),
    index('ks_invites_sale_idx').on(table.saleId),
  ],
);
