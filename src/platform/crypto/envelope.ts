import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { Keyring } from './keyring.ts';

/**
 * A record encrypted under its own data key; the data key is stored wrapped by a master key.
 * `aad` binds the ciphertext to where it lives (table, column, row id), so ciphertexts cannot be
 * moved between rows.
 */
export type Sealed = { keyId: string; wrappedKey: string; ciphertext: string };

const IV_BYTES = 12;
const TAG_BYTES = 16;

function encrypt(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64');
}

function decrypt(key: Buffer, encoded: string, aad: string): Buffer {
  const raw = Buffer.from(encoded, 'base64');
  const iv = raw.subarray(0, IV_BYTES);
  const tag = raw.subarray(raw.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
}

function masterKey(keyring: Keyring, keyId: string): Buffer {
  const key = keyring.masterKeys.get(keyId);
  if (!key) throw new Error(`master key ${keyId} is not in the keyring`);
  return key;
}

export function seal(keyring: Keyring, plaintext: string, aad: string): Sealed {
  const dataKey = randomBytes(32);
  const keyId = keyring.activeKeyId;
  return {
    keyId,
    wrappedKey: encrypt(masterKey(keyring, keyId), dataKey, `wrap:${keyId}`),
    ciphertext: encrypt(dataKey, Buffer.from(plaintext, 'utf8'), aad),
  };
}

export function unseal(keyring: Keyring, sealed: Sealed, aad: string): string {
  const dataKey = decrypt(masterKey(keyring, sealed.keyId), sealed.wrappedKey, `wrap:${sealed.keyId}`);
  return decrypt(dataKey, sealed.ciphertext, aad).toString('utf8');
}

/** Re-wraps the data key under the active master key; the ciphertext is untouched. */
export function rewrap(keyring: Keyring, sealed: Sealed): Sealed {
  if (sealed.keyId === keyring.activeKeyId) return sealed;
  const dataKey = decrypt(masterKey(keyring, sealed.keyId), sealed.wrappedKey, `wrap:${sealed.keyId}`);
  const keyId = keyring.activeKeyId;
  return { keyId, wrappedKey: encrypt(masterKey(keyring, keyId), dataKey, `wrap:${keyId}`), ciphertext: sealed.ciphertext };
}

export type HashPurpose =
  | 'api-key'
  | 'admin-key'
  | 'refresh-token'
  | 'pii-index'
  | 'storage-url'
  | 'kyc-sandbox'
  | 'wallet-token'
  | 'invite-code'
  | 'rate-limit'
  | 'ks-pii-index'
  | 'ks-session'
  | 'mail-recipient'
  | 'user-subject'
  | 'user-email'
  | 'audit-state'
  | 'console-session'
  | 'console-csrf'
  | 'console-oidc';

/** Deterministic keyed digest (hex) for lookups without storing the value; one subkey per purpose. */
export function keyedHash(keyring: Keyring, purpose: HashPurpose, value: string): string {
  return createHmac('sha256', subkeyFor(keyring, purpose)).update(value, 'utf8').digest('hex');
}

const subkeys = new WeakMap<Keyring, Map<HashPurpose, Buffer>>();

function subkeyFor(keyring: Keyring, purpose: HashPurpose): Buffer {
  let byPurpose = subkeys.get(keyring);
  if (!byPurpose) subkeys.set(keyring, (byPurpose = new Map<HashPurpose, Buffer>()));
  let subkey = byPurpose.get(purpose);
  if (!subkey) {
    subkey = Buffer.from(hkdfSync('sha256', keyring.hashSecret, Buffer.alloc(0), `tranche:${purpose}`, 32));
    byPurpose.set(purpose, subkey);
  }
  return subkey;
}
