import { and, eq, isNotNull, isNull } from 'drizzle-orm';
import { seal, unseal } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import { rewrapRows } from '../../platform/crypto/rewrap-rows.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { subscriptions } from '../issuance.tables.ts';

/** The evidence of a click-to-sign that is not PII: stored readable in `subscriptions.signature`. */
export type SignatureRecord = {
  signerUserId: string;
  signedAt: string;
  agreementDocumentId: string;
  agreementVersion: number;
  agreementSha256: string;
  consentText: string;
  method: 'typed_name';
};

/** The evidence that is PII: stored sealed in the `signer_*` columns. */
export type SignerEvidence = { signerEmail: string; signerName: string; ip: string; userAgent: string | null };

/** The whole evidence of a signature, as the signer gave it. */
export type SignatureEvidence = SignatureRecord & SignerEvidence;

type SealedSigner = Pick<typeof subscriptions.$inferSelect, 'signerKeyId' | 'signerWrappedKey' | 'signerCiphertext'>;

const PII_FIELDS = ['signerEmail', 'signerName', 'ip', 'userAgent'] as const;

/** Where a subscription's sealed signer evidence is bound, so it cannot move to another row. */
const signerAad = (subscriptionId: string) => `subscriptions.signer:${subscriptionId}`;

/** The columns a subscription stores for a signature: the readable record and the PII sealed. */
export function sealSignature(keyring: Keyring, subscriptionId: string, evidence: SignatureEvidence) {
  const { signerEmail, signerName, ip, userAgent, ...record } = evidence;
  const sealed = seal(keyring, JSON.stringify({ signerEmail, signerName, ip, userAgent }), signerAad(subscriptionId));
  return {
    signature: record satisfies SignatureRecord,
    signerKeyId: sealed.keyId,
    signerWrappedKey: sealed.wrappedKey,
    signerCiphertext: sealed.ciphertext,
  };
}

/**
 * The whole evidence of a subscription's signature, its PII opened; null when it is not signed.
 * Throws for a signature still in plaintext (`sealPlaintextRows` has not run since migration 0015).
 */
export function openSignature(keyring: Keyring, row: { id: string; signature: unknown } & SealedSigner): SignatureEvidence | null {
  if (row.signature === null) return null;
  if (row.signerKeyId === null || row.signerWrappedKey === null || row.signerCiphertext === null) {
    throw new Error('subscriptions row is not sealed yet; restart the server so that it seals plaintext rows');
  }
  const sealed = { keyId: row.signerKeyId, wrappedKey: row.signerWrappedKey, ciphertext: row.signerCiphertext };
  const signer = JSON.parse(unseal(keyring, sealed, signerAad(row.id))) as SignerEvidence;
  return { ...(row.signature as SignatureRecord), ...signer };
}

/**
 * The one-time move of signatures written before migration 0015, whose PII (signer email and
 * name, IP, user agent) sits in the `signature` jsonb: seals it into the `signer_*` columns and
 * keeps only the rest readable. Every start runs it after the migrations; rows are locked, so
 * processes starting together seal each once. Returns how many it sealed.
 */
export async function sealPlaintextSignatures(db: Db, keyring: Keyring): Promise<number> {
  return db.transaction(async (tx) => {
    const rows = await tx
      .select({ id: subscriptions.id, signature: subscriptions.signature })
      .from(subscriptions)
      .where(and(isNotNull(subscriptions.signature), isNull(subscriptions.signerKeyId)))
      .for('update');
    for (const row of rows) {
      const legacy = row.signature as Record<string, unknown>;
      const evidence = { ...legacy } as unknown as SignatureEvidence;
      for (const field of PII_FIELDS) (evidence as Record<string, unknown>)[field] = legacy[field] ?? null;
      await tx
        .update(subscriptions)
        .set(sealSignature(keyring, row.id, evidence))
        .where(eq(subscriptions.id, row.id));
    }
    return rows.length;
  });
}

/** Re-wraps the data keys of the sealed signer evidence under the active master key; returns how many. */
export function rewrapSignatures(tx: Executor, keyring: Keyring): Promise<number> {
  return rewrapRows(tx, keyring, 'subscriptions', 'signer_');
}
