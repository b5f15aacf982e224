import { and, eq, isNull, sql } from 'drizzle-orm';
import { keyedHash, seal, unseal, type Sealed } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { rewrapRows } from '../platform/crypto/rewrap-rows.ts';
import type { Db, Executor } from '../platform/db/database.ts';
import { ksBlobs, ksIdentities, ksIdentitySettings, ksInvites, ksSessions, ksWallets } from './keyserver.tables.ts';

/** What a keyed-hash lookup column holds; the kind is part of the hashed text, so equal values of different kinds never match. */
export type LookupKind = 'email' | 'phone' | 'telegram' | 'passport' | 'wallet-id';

/** The sealed columns of a key-server row; null only on rows older than sealing at rest. */
export type SealedColumns = { keyId: string | null; wrappedKey: string | null; ciphertext: string | null };

/** A row that still holds plaintext: `sealPlaintextRows` has not run since the migration that added sealing. */
export class UnsealedRowError extends Error {}

/**
 * The key server's PII at rest: values sealed with the envelope encryption (bound to their row by
 * `aad`), looked up by keyed hashes. Emails, phone numbers, telegram usernames, passports and
 * wallet ids are hashed with the `ks-pii-index` subkey, session ids with `ks-session`.
 */
export function keyserverSealer(keyring: Keyring) {
  return {
    /** The keyed hash a lookup column stores for `value`. */
    digest: (kind: LookupKind, value: string): string => keyedHash(keyring, 'ks-pii-index', `${kind}:${value}`),
    /** A session id is a bearer secret: the table is keyed by this hash of it. */
    sessionDigest: (sessionId: string): string => keyedHash(keyring, 'ks-session', sessionId),
    /** Seals `value` as JSON under a fresh data key. */
    seal: (value: unknown, aad: string): Sealed => seal(keyring, JSON.stringify(value), aad),
    /** Opens what `seal` sealed; throws `UnsealedRowError` for a row still in plaintext. */
    open<T>(row: SealedColumns, aad: string): T {
      if (row.keyId === null || row.wrappedKey === null || row.ciphertext === null) {
        throw new UnsealedRowError(`${aad.split(':')[0]} row is not sealed yet; restart the server so that it seals plaintext rows`);
      }
      return JSON.parse(unseal(keyring, { keyId: row.keyId, wrappedKey: row.wrappedKey, ciphertext: row.ciphertext }, aad)) as T;
    },
  };
}

export type KeyserverSealer = ReturnType<typeof keyserverSealer>;

/** Where each table's sealed document is bound (the AAD), so a ciphertext cannot move to another row. */
export const aad = {
  wallet: (pk: string) => `ks_wallets:${pk}`,
  identity: (address: string) => `ks_identities:${address}`,
  setting: (identityId: number, key: string) => `ks_identity_settings:${identityId}:${key}`,
  blob: (id: string) => `ks_blobs:${id}`,
  invite: (type: string, saleId: string, emailDigest: string) => `ks_invites:${type}:${saleId}:${emailDigest}`,
  session: (digest: string) => `ks-session:${digest}`,
};

const LEGACY_SESSION_ID_LENGTH = 32;

/**
 * The one-time move of rows written before PII was sealed at rest (migration 0013 could only add
 * columns: the keys are not in the database). Seals the plaintext of wallets, identities,
 * settings, blobs and invites into their new columns, fills the keyed hashes and nulls the
 * plaintext; re-keys sessions from their id to its keyed hash. Every start runs it after the
 * migrations; once nothing is left it only runs its empty selects. Rows are locked, so processes
 * starting together seal each row once. Returns how many rows of each table it sealed.
 */
export async function sealPlaintextKeyserverRows(db: Db, keyring: Keyring): Promise<Record<string, number>> {
  const sealer = keyserverSealer(keyring);
  const digest = (kind: LookupKind, value: string | null) => (value === null ? null : sealer.digest(kind, value));
  return db.transaction(async (tx) => {
    const counts: Record<string, number> = { wallets: 0, identities: 0, settings: 0, blobs: 0, invites: 0, sessions: 0 };

    for (const row of await tx.select().from(ksWallets).where(isNull(ksWallets.keyId)).for('update')) {
      const credentials = { walletId: row.legacyWalletId!, email: row.legacyEmail! };
      await tx
        .update(ksWallets)
        .set({
          walletIdDigest: sealer.digest('wallet-id', credentials.walletId),
          emailDigest: sealer.digest('email', credentials.email),
          ...sealer.seal(credentials, aad.wallet(row.id)),
          legacyWalletId: null,
          legacyEmail: null,
        })
        .where(eq(ksWallets.id, row.id));
      counts.wallets!++;
    }

    for (const row of await tx.select().from(ksIdentities).where(isNull(ksIdentities.keyId)).for('update')) {
      const contact = {
        email: row.legacyEmail,
        phoneNumber: row.legacyPhoneNumber,
        telegramUsername: row.legacyTelegramUsername,
        passport: row.legacyPassport,
      };
      await tx
        .update(ksIdentities)
        .set({
          emailDigest: digest('email', contact.email),
          phoneDigest: digest('phone', contact.phoneNumber),
          telegramDigest: digest('telegram', contact.telegramUsername),
          passportDigest: digest('passport', contact.passport),
          ...sealer.seal(contact, aad.identity(row.address)),
          legacyEmail: null,
          legacyPhoneNumber: null,
          legacyTelegramUsername: null,
          legacyPassport: null,
        })
        .where(eq(ksIdentities.id, row.id));
      counts.identities!++;
    }

    for (const row of await tx.select().from(ksIdentitySettings).where(isNull(ksIdentitySettings.keyId)).for('update')) {
      await tx
        .update(ksIdentitySettings)
        .set({ ...sealer.seal(row.legacyValue, aad.setting(row.identityId, row.key)), legacyValue: null })
        .where(and(eq(ksIdentitySettings.identityId, row.identityId), eq(ksIdentitySettings.key, row.key)));
      counts.settings!++;
    }

    for (const row of await tx.select().from(ksBlobs).where(isNull(ksBlobs.keyId)).for('update')) {
      await tx
        .update(ksBlobs)
        .set({ ...sealer.seal(row.legacyValue, aad.blob(row.id)), legacyValue: null })
        .where(eq(ksBlobs.id, row.id));
      counts.blobs!++;
    }

    for (const row of await tx.select().from(ksInvites).where(isNull(ksInvites.keyId)).for('update')) {
      const emailDigest = sealer.digest('email', row.legacyEmail!);
      await tx
        .update(ksInvites)
        .set({ emailDigest, ...sealer.seal(row.legacyEmail, aad.invite(row.type, row.saleId, emailDigest)), legacyEmail: null })
        .where(eq(ksInvites.id, row.id));
      counts.invites!++;
    }

    // Sessions were sealed already but keyed by their id, a bearer secret: re-key them by its hash.
    const legacySessions = await tx
      .select()
      .from(ksSessions)
      .where(sql`length(${ksSessions.id}) = ${LEGACY_SESSION_ID_LENGTH}`)
      .for('update');
    for (const row of legacySessions) {
      const encryptionKey = unseal(keyring, row, aad.session(row.id));
      const sessionDigest = sealer.sessionDigest(row.id);
      await tx
        .update(ksSessions)
        .set({ id: sessionDigest, ...sealer.seal(encryptionKey, aad.session(sessionDigest)) })
        .where(eq(ksSessions.id, row.id));
      counts.sessions!++;
    }
    return counts;
  });
}

/**
 * `tranche keys rotate`: re-wraps the data keys of everything the key server sealed (wallets,
 * identities, settings, blobs, invites, sessions, TOTP secrets) under the active master key, so
 * the old master key can then be dropped. Returns how many rows of each it re-wrapped.
 */
export async function rewrapKeyserverRows(tx: Executor, keyring: Keyring): Promise<Record<string, number>> {
  return {
    keyserverWallets: await rewrapRows(tx, keyring, 'ks_wallets'),
    keyserverIdentities: await rewrapRows(tx, keyring, 'ks_identities'),
    keyserverSettings: await rewrapRows(tx, keyring, 'ks_identity_settings'),
    keyserverBlobs: await rewrapRows(tx, keyring, 'ks_blobs'),
    keyserverInvites: await rewrapRows(tx, keyring, 'ks_invites'),
    keyserverSessions: await rewrapRows(tx, keyring, 'ks_sessions'),
    keyserverTotpSecrets: await rewrapRows(tx, keyring, 'ks_factors', 'secret_'),
  };
}
