import path from 'node:path';
import type { Config } from '../../config.ts';
import { keyedHash } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { localStorage } from './local.storage.ts';
import { s3Storage } from './s3.storage.ts';
import type { ObjectStorage } from './storage.ts';

export const LOCAL_STORAGE_PREFIX = '/storage/local';

export type StorageSetup = { storage: ObjectStorage; routes?: ReturnType<typeof localStorage>['routes'] };

export function createStorage(config: Pick<Config, 's3' | 'dataDir' | 'publicUrl'>, keyring: Keyring, directory?: string): StorageSetup {
  if (config.s3) return { storage: s3Storage(config.s3) };
  const local = localStorage({
    directory: directory ?? path.join(config.dataDir, 'objects'),
    publicUrl: config.publicUrl,
    signingKey: Buffer.from(keyedHash(keyring, 'storage-url', 'local-storage'), 'hex'),
    routePrefix: LOCAL_STORAGE_PREFIX,
  });
  return { storage: local, routes: local.routes };
}
