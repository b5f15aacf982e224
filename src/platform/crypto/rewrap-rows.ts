import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../db/database.ts';
import { rewrap } from './envelope.ts';
import type { Keyring } from './keyring.ts';

/**
 * Re-wraps under the active master key the data key of every row of `table` whose sealed columns
 * are `<prefix>key_id`, `<prefix>wrapped_key`, `<prefix>ciphertext` (the ciphertext is untouched).
 * A wrapped key is unique (a random data key under a random IV), so it names its row whatever
 * the table's primary key. Returns how many rows it re-wrapped.
 */
export async function rewrapRows(tx: Executor, keyring: Keyring, table: string, prefix = ''): Promise<number> {
  const keyId = sql.identifier(`${prefix}key_id`);
  const wrappedKey = sql.identifier(`${prefix}wrapped_key`);
  const ciphertext = sql.identifier(`${prefix}ciphertext`);
  const rows = await queryRows<{ key_id: string; wrapped_key: string; ciphertext: string }>(
    tx,
    sql`select ${keyId} as key_id, ${wrappedKey} as wrapped_key, ${ciphertext} as ciphertext from ${sql.identifier(table)}
        where ${keyId} is not null and ${keyId} <> ${keyring.activeKeyId} for update`,
  );
  for (const row of rows) {
    const next = rewrap(keyring, { keyId: row.key_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext });
    await tx.execute(
      sql`update ${sql.identifier(table)} set ${keyId} = ${next.keyId}, ${wrappedKey} = ${next.wrappedKey} where ${wrappedKey} = ${row.wrapped_key}`,
    );
  }
  return rows.length;
}
