import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyedHash, rewrap, seal, unseal } from '../../src/platform/crypto/envelope.ts';
import { addMasterKeyToFile, loadKeyring } from '../../src/platform/crypto/keyring.ts';
import { randomBase62 } from '../../src/platform/crypto/random.ts';
import { testKeyring } from '../support/harness.ts';

describe('envelope encryption', () => {
  it('round-trips and binds the ciphertext to its AAD', () => {
    const keyring = testKeyring();
    const sealed = seal(keyring, 'secret text', 'user_pii:a');
    expect(sealed.ciphertext).not.toContain('secret');
    expect(unseal(keyring, sealed, 'user_pii:a')).toBe('secret text');
    expect(() => unseal(keyring, sealed, 'user_pii:b')).toThrow();
  });

  it('detects a tampered ciphertext', () => {
    const keyring = testKeyring();
    const sealed = seal(keyring, 'secret text', 'aad');
    const raw = Buffer.from(sealed.ciphertext, 'base64');
    raw[14] = raw[14]! ^ 1;
    expect(() => unseal(keyring, { ...sealed, ciphertext: raw.toString('base64') }, 'aad')).toThrow();
  });

  it('rewraps the data key under a new master key without touching the ciphertext', () => {
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    const hashSecret = 'h'.repeat(40);
    const before = loadKeyring({ masterKeys: `old:${oldKey}`, hashSecret, dataDir: '/x' });
    const sealed = seal(before, 'payload', 'aad');
    const during = loadKeyring({ masterKeys: `new:${newKey},old:${oldKey}`, hashSecret, dataDir: '/x' });
    const rewrapped = rewrap(during, sealed);
    expect(rewrapped.keyId).toBe('new');
    expect(rewrapped.ciphertext).toBe(sealed.ciphertext);
    const after = loadKeyring({ masterKeys: `new:${newKey}`, hashSecret, dataDir: '/x' });
    expect(unseal(after, rewrapped, 'aad')).toBe('payload');
    expect(() => unseal(after, sealed, 'aad')).toThrow(/old is not in the keyring/);
  });

  it('keeps keyed hashes stable per purpose and distinct across purposes', () => {
    const keyring = testKeyring();
    expect(keyedHash(keyring, 'api-key', 'v')).toBe(keyedHash(keyring, 'api-key', 'v'));
    expect(keyedHash(keyring, 'api-key', 'v')).not.toBe(keyedHash(keyring, 'pii-index', 'v'));
    expect(keyedHash(testKeyring(), 'api-key', 'v')).not.toBe(keyedHash(keyring, 'api-key', 'v'));
  });

  it('creates a data-dir keyring on first use and rotates it, keeping old keys', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyring-'));
    try {
      const first = loadKeyring({ dataDir: dir });
      expect(fs.statSync(path.join(dir, 'keyring.json')).mode & 0o777).toBe(0o600);
      expect(loadKeyring({ dataDir: dir }).activeKeyId).toBe(first.activeKeyId);
      const newId = addMasterKeyToFile(dir);
      const rotated = loadKeyring({ dataDir: dir });
      expect(rotated.activeKeyId).toBe(newId);
      expect(rotated.masterKeys.has(first.activeKeyId)).toBe(true);
      expect(rotated.hashSecret.equals(first.hashSecret)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('requires HASH_SECRET with MASTER_KEYS', () => {
    expect(() => loadKeyring({ masterKeys: `k:${randomBytes(32).toString('base64')}`, dataDir: '/x' })).toThrow(/HASH_SECRET/);
  });

  it('makes base62 strings of the requested length', () => {
    const value = randomBase62(32);
    expect(value).toMatch(/^[0-9A-Za-z]{32}$/);
    expect(randomBase62(32)).not.toBe(value);
  });
});
