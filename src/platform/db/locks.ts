import { sql } from 'drizzle-orm';
import type { Executor } from './database.ts';

/**
 * Serialises the transactions that touch the same logical thing (e.g. one investor's Reg CF
 * total, one user's KYC submissions) when no single row can be locked for it: a
 * transaction-scoped advisory lock on a 64-bit hash of `parts`, held until commit or rollback.
 * Call it first in the transaction, before the reads the rule depends on. Works the same on
 * PostgreSQL and the embedded database.
 */
export async function lockScope(tx: Executor, ...parts: string[]): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${parts.join(':')}, 0))`);
}
