import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Master keys wrap the data keys of encrypted records; the active one wraps new data keys and
 * the others stay to unwrap older records until `tranche keys rotate` re-wraps them.
 * `hashSecret` keys the HMACs (API key digests, blind indexes, refresh-token digests).
 */
export type Keyring = {
  activeKeyId: string;
  masterKeys: ReadonlyMap<string, Buffer>;
  hashSecret: Buffer;
  source: 'environment' | 'file';
};

type KeyringFile = { activeKeyId: string; masterKeys: Record<string, string>; hashSecret: string };

export const keyringFileName = 'keyring.json';

/** The keys are missing or half-configured; the message is one line an operator can act on. */
export class KeyringError extends Error {}

/**
 * The keyring from `MASTER_KEYS` and `HASH_SECRET` (both or neither). Without them, and only when
 * `dataDir` is given (the embedded database, one process), the keyring in `DATA_DIR/keyring.json`,
 * created on first use. Without them and without `dataDir` it throws `KeyringError`: processes
 * sharing a PostgreSQL database must share keys, so none of them may invent its own.
 */
export function loadKeyring(options: { masterKeys?: string; hashSecret?: string; dataDir?: string }): Keyring {
  if (options.masterKeys !== undefined || options.hashSecret !== undefined) {
    if (options.hashSecret === undefined) throw new KeyringError('HASH_SECRET must be set when MASTER_KEYS is set.');
    if (options.masterKeys === undefined) throw new KeyringError('MASTER_KEYS must be set when HASH_SECRET is set.');
    return keyringFromEnvironment(options.masterKeys, options.hashSecret);
  }
  if (options.dataDir === undefined) {
    throw new KeyringError(
      'MASTER_KEYS and HASH_SECRET are not set; on PostgreSQL every process must use the same keys: generate them once with `tranche keys generate` and give them to every process.',
    );
  }
  const file = path.join(options.dataDir, keyringFileName);
  if (!fs.existsSync(file)) writeKeyringFile(file, newKeyringFile());
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as KeyringFile;
  return {
    activeKeyId: stored.activeKeyId,
    masterKeys: new Map(Object.entries(stored.masterKeys).map(([id, key]) => [id, decodeKey(key)])),
    hashSecret: Buffer.from(stored.hashSecret, 'base64'),
    source: 'file',
  };
}

function keyringFromEnvironment(masterKeys: string, hashSecret: string): Keyring {
  const entries = masterKeys.split(',').map((entry) => {
    const [id, key] = entry.split(':') as [string, string];
    return [id, decodeKey(key)] as const;
  });
  return {
    activeKeyId: entries[0]![0],
    masterKeys: new Map(entries),
    hashSecret: Buffer.from(hashSecret, 'utf8'),
    source: 'environment',
  };
}

function decodeKey(base64: string): Buffer {
  const key = Buffer.from(base64, 'base64');
  if (key.length !== 32) throw new KeyringError('MASTER_KEYS: each master key must be 32 bytes, base64-encoded.');
  return key;
}

function newKeyringFile(): KeyringFile {
  const id = newKeyId();
  return {
    activeKeyId: id,
    masterKeys: { [id]: randomBytes(32).toString('base64') },
    hashSecret: randomBytes(32).toString('base64'),
  };
}

/**
 * Fresh key material for a deployment, as the environment lines `MASTER_KEYS=...` and
 * `HASH_SECRET=...` that every process of it must be given.
 */
export function generateKeyEnvironment(): { MASTER_KEYS: string; HASH_SECRET: string } {
  return { MASTER_KEYS: `${newKeyId()}:${randomBytes(32).toString('base64')}`, HASH_SECRET: randomBytes(32).toString('base64url') };
}

/** A new master key id, `mk_<yyyymmdd>_<8 hex>`. */
export function newKeyId(): string {
  return `mk_${new Date().toISOString().slice(0, 10).replaceAll('-', '')}_${randomBytes(4).toString('hex')}`;
}

function writeKeyringFile(file: string, content: KeyringFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(content, null, 2), { mode: 0o600 });
  fs.renameSync(temporary, file);
}

/** Adds a fresh master key to the data-dir keyring and makes it active. Returns its id. */
export function addMasterKeyToFile(dataDir: string): string {
  const file = path.join(dataDir, keyringFileName);
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as KeyringFile;
  const id = newKeyId();
  stored.masterKeys[id] = randomBytes(32).toString('base64');
  stored.activeKeyId = id;
  writeKeyringFile(file, stored);
  return id;
}
