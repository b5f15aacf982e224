import { eq, isNotNull, or } from 'drizzle-orm';
import { keyedHash, seal, unseal, type Sealed } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { rewrapRows } from '../platform/crypto/rewrap-rows.ts';
import type { Db, Executor } from '../platform/db/database.ts';
import { orgs, users } from './identity.tables.ts';

/** A users row that still holds its email in plaintext: `sealPlaintextRows` has not run since migration 0015. */
export class UnsealedUserError extends Error {}

/**
 * The keyed hash (`user-email`) of an email, lower-cased: what `users.email_digest` and
 * `orgs.admin_email_digests` store, so a verified email is matched against an org's admin list
 * without either being kept in clear.
 */
export function emailDigest(keyring: Keyring, email: string): string {
  return keyedHash(keyring, 'user-email', email.toLowerCase());
}

/**
 * The keyed hash (`user-subject`) of an ID token's `sub`, as IdPs send it (case-sensitive, per
 * OpenID Connect Core 1.0 section 2): what `users.subject_digest` stores, so that a subject that
 * holds an email or a username (`auth0|alice@example.com`) is never kept in clear.
 */
export function subjectDigest(keyring: Keyring, subject: string): string {
  return keyedHash(keyring, 'user-subject', subject);
}

/** Where a user's sealed email is bound: (org, subject digest) is the user's identity and never changes. */
const emailAad = (orgId: string, subjectDigestValue: string) => `users.email:${orgId}:${subjectDigestValue}`;

/** The columns a users row stores for `email`: its keyed hash and the email sealed. */
export function sealUserEmail(keyring: Keyring, user: { orgId: string; subjectDigest: string }, email: string) {
  const sealed = seal(keyring, email, emailAad(user.orgId, user.subjectDigest));
  return {
    emailDigest: emailDigest(keyring, email),
    emailKeyId: sealed.keyId,
    emailWrappedKey: sealed.wrappedKey,
    emailCiphertext: sealed.ciphertext,
  };
}

/** Opens the email `sealUserEmail` sealed; throws `UnsealedUserError` for a row still in plaintext. */
export function openUserEmail(
  keyring: Keyring,
  row: Pick<typeof users.$inferSelect, 'orgId' | 'subjectDigest' | 'emailKeyId' | 'emailWrappedKey' | 'emailCiphertext'>,
): string {
  if (row.subjectDigest === null || row.emailKeyId === null || row.emailWrappedKey === null || row.emailCiphertext === null) {
    throw new UnsealedUserError('users row is not sealed yet; restart the server so that it seals plaintext rows');
  }
  const sealed: Sealed = { keyId: row.emailKeyId, wrappedKey: row.emailWrappedKey, ciphertext: row.emailCiphertext };
  return unseal(keyring, sealed, emailAad(row.orgId, row.subjectDigest));
}

/**
 * The one-time move of identity rows written before migrations 0015 and 0016: replaces each
 * user's plaintext subject by its keyed hash and seals the email again under it (or seals the
 * plaintext email, and fills its keyed hash), replaces each org's admin email list by the keyed
 * hashes of its lower-cased emails, and nulls the plaintext. Every start runs it after the migrations; once
 * nothing is left it only runs its empty selects. Rows are locked, so processes starting together
 * seal each row once. Returns how many rows of each table it sealed.
 */
export async function sealPlaintextIdentityRows(db: Db, keyring: Keyring): Promise<{ users: number; orgs: number }> {
  return db.transaction(async (tx) => {
    const userRows = await tx
      .select()
      .from(users)
      .where(or(isNotNull(users.legacyEmail), isNotNull(users.legacyExternalSubject)))
      .for('update');
    for (const row of userRows) {
      const subject = row.subjectDigest ?? subjectDigest(keyring, row.legacyExternalSubject!);
      // Before 0016 the email was sealed under the plaintext subject; open it with that binding.
      const email =
        row.legacyEmail ??
        unseal(
          keyring,
          { keyId: row.emailKeyId!, wrappedKey: row.emailWrappedKey!, ciphertext: row.emailCiphertext! },
          `users.email:${row.orgId}:${row.legacyExternalSubject}`,
        );
      await tx
        .update(users)
        .set({
          subjectDigest: subject,
          ...sealUserEmail(keyring, { orgId: row.orgId, subjectDigest: subject }, email),
          legacyEmail: null,
          legacyExternalSubject: null,
        })
        .where(eq(users.id, row.id));
    }
    const orgRows = await tx.select().from(orgs).where(isNotNull(orgs.legacyAdminEmails)).for('update');
    for (const row of orgRows) {
      const digests = new Set([...row.adminEmailDigests, ...row.legacyAdminEmails!.map((email) => emailDigest(keyring, email))]);
      await tx
        .update(orgs)
        .set({ adminEmailDigests: [...digests], legacyAdminEmails: null })
        .where(eq(orgs.id, row.id));
    }
    return { users: userRows.length, orgs: orgRows.length };
  });
}

/** Re-wraps the data keys of the users' sealed emails under the active master key; returns how many. */
export function rewrapUserEmails(tx: Executor, keyring: Keyring): Promise<number> {
  return rewrapRows(tx, keyring, 'users', 'email_');
}
