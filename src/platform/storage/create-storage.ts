import path from 'node:path';
import type { Config } from '../../config.ts';
import { keyedHash } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { localStorage } from './local.storage.ts';
import type { S3Options } from './s3.storage.ts';
import type { ObjectStorage } from './storage.ts';

export const LOCAL_STORAGE_PREFIX = '/storage/local';

export type StorageSetup = { storage: ObjectStorage; routes?: ReturnType<typeof localStorage>['routes'] };

export function createStorage(config: Pick<Config, 's3' | 'dataDir' | 'publicUrl'>, keyring: Keyring, directory?: string): StorageSetup {
  if (config.s3) return { storage: lazyS3Storage(config.s3) };
  const local = localStorage({
    directory: directory ?? path.join(config.dataDir, 'objects'),
    publicUrl: config.publicUrl,
    signingKey: Buffer.from(keyedHash(keyring, 'storage-url', 'local-storage'), 'hex'),
    routePrefix: LOCAL_STORAGE_PREFIX,
  });
  return { storage: local, routes: local.routes };
}

/**
 * S3 storage whose SDK is loaded on first use: the AWS SDK takes about half a second to import,
 * which every start of the embedded default (local disk) would otherwise pay for nothing.
 */
function lazyS3Storage(options: S3Options): ObjectStorage {
  let loaded: Promise<ObjectStorage> | undefined;
  const s3 = () => (loaded ??= import('./s3.storage.ts').then((module) => module.s3Storage(options)));
  return {
    presignPut: async (key, presign) => (await s3()).presignPut(key, presign),
    presignPost: async (key, presign) => (await s3()).presignPost(key, presign),
    presignGet: async (key, presign) => (await s3()).presignGet(key, presign),
    head: async (key) => (await s3()).head(key),
    get: async (key) => (await s3()).get(key),
    put: async (key, body, contentType) => (await s3()).put(key, body, contentType),
  };
}
