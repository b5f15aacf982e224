import type { PGlite, Transaction } from '@electric-sql/pglite';
import pg from 'pg';
import type { Database } from '../../src/platform/db/database.ts';

/**
 * Records every statement the app sends to its database while `during` runs: on PostgreSQL each
 * `pg.Client#query` (one network round trip each: node-postgres does not pipeline), on the
 * embedded database each query of PGlite, with the `BEGIN` and `COMMIT`/`ROLLBACK` its
 * `transaction()` sends. Nothing else may use the database meanwhile: the test's own queries
 * would count too.
 */
export async function statementsDuring(database: Database, during: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const text = (query: unknown) => (typeof query === 'string' ? query : ((query as { text?: string }).text ?? String(query)));
  const restore: (() => void)[] = [];
  if (database.kind === 'postgres') {
    const prototype = pg.Client.prototype as unknown as Record<'query', (...args: unknown[]) => unknown>;
    const original = prototype.query;
    prototype.query = function (this: pg.Client, ...args: unknown[]) {
      sent.push(text(args[0]));
      return original.apply(this, args);
    };
    restore.push(() => (prototype.query = original));
  } else {
    const pglite = (database as Database & { pglite: PGlite }).pglite;
    const query = pglite.query.bind(pglite);
    const exec = pglite.exec.bind(pglite);
    const transaction = pglite.transaction.bind(pglite);
    const counted = (tx: Transaction): Transaction =>
      Object.assign(Object.create(tx) as Transaction, {
        query: ((...args: Parameters<Transaction['query']>) => (sent.push(text(args[0])), tx.query(...args))) as Transaction['query'],
        exec: (...args: Parameters<Transaction['exec']>) => (sent.push(text(args[0])), tx.exec(...args)),
      });
    pglite.query = ((...args: Parameters<PGlite['query']>) => (sent.push(text(args[0])), query(...args))) as PGlite['query'];
    pglite.exec = (...args: Parameters<PGlite['exec']>) => (sent.push(text(args[0])), exec(...args));
    pglite.transaction = async <T>(run: (tx: Transaction) => Promise<T>) => {
      sent.push('BEGIN');
      try {
        const result = await transaction((tx) => run(counted(tx)));
        sent.push('COMMIT');
        return result;
      } catch (error) {
        sent.push('ROLLBACK');
        throw error;
      }
    };
    restore.push(() => {
      // The instance's own properties go: its prototype's methods answer again.
      for (const name of ['query', 'exec', 'transaction'] as const) delete (pglite as unknown as Record<string, unknown>)[name];
    });
  }
  try {
    await during();
  } finally {
    for (const undo of restore) undo();
  }
  return sent;
}
