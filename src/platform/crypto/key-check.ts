import { createHmac } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/database.ts';
import { keyChecks } from '../platform.tables.ts';
import { constantTimeEqual } from './compare.ts';
import type { Keyring } from './keyring.ts';

/** This process's keys are not the deployment's; the message is one line naming what differs. */
export class KeyMismatchError extends Error {}

type KeyCheck = { kind: 'hash_secret' | 'master_key'; keyId: string; checkValue: string };

const KEY_CHECK_LOCK_ID = 7_316_002;
const REMEDY = "give this process the deployment's MASTER_KEYS and HASH_SECRET";

/** HMAC-SHA256 of a fixed label under the key: equal for equal keys, and says nothing about the key. */
function checkValue(key: Buffer, kind: KeyCheck['kind'], keyId: string): string {
  return createHmac('sha256', key).update(`tranche key check v1:${kind}:${keyId}`).digest('base64url');
}

/** The check values of a keyring: one for the hash secret, one per master key. */
export function keyChecksOf(keyring: Keyring): KeyCheck[] {
  return [
    { kind: 'hash_secret', keyId: '', checkValue: checkValue(keyring.hashSecret, 'hash_secret', '') },
    ...[...keyring.masterKeys].map(([keyId, key]) => ({
      kind: 'master_key' as const,
      keyId,
      checkValue: checkValue(key, 'master_key', keyId),
    })),
  ];
}

/**
 * Compares this process's keys with those the deployment recorded in `key_checks`, and records
 * keys it has not seen (the first start records them all; a rotation adds the new master key).
 * Refuses (throws `KeyMismatchError`) when the hash secret differs, when a master key id is known
 * with other key material, or when none of the process's master keys is one the deployment has
 * recorded (wholly different keys). Concurrent first starts are serialised by an advisory lock.
 */
export async function verifyDeploymentKeys(db: Db, keyring: Keyring): Promise<void> {
  const mine = keyChecksOf(keyring);
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${KEY_CHECK_LOCK_ID})`);
    const recorded = await tx.select().from(keyChecks);
    const find = (check: KeyCheck) => recorded.find((row) => row.kind === check.kind && row.keyId === check.keyId);
    const hash = mine[0]!;
    const recordedHash = find(hash);
    if (recordedHash && !constantTimeEqual(recordedHash.checkValue, hash.checkValue)) {
      throw new KeyMismatchError(`HASH_SECRET is not the one this deployment uses (refusing to start): ${REMEDY}.`);
    }
    const masterKeys = mine.slice(1);
    for (const key of masterKeys) {
      const row = find(key);
      if (row && !constantTimeEqual(row.checkValue, key.checkValue)) {
        throw new KeyMismatchError(
          `MASTER_KEYS: key ${key.keyId} is not the key this deployment uses under that id (refusing to start): ${REMEDY}.`,
        );
      }
    }
    const recordedMasterIds = recorded.filter((row) => row.kind === 'master_key').map((row) => row.keyId);
    if (recordedMasterIds.length > 0 && !masterKeys.some((key) => find(key))) {
      throw new KeyMismatchError(
        `MASTER_KEYS: none of this process's master keys (${masterKeys.map((key) => key.keyId).join(', ')}) is one this deployment uses (${recordedMasterIds.join(', ')}) (refusing to start): ${REMEDY}.`,
      );
    }
    const unseen = mine.filter((check) => !find(check));
    if (unseen.length > 0) await tx.insert(keyChecks).values(unseen).onConflictDoNothing();
  });
}
