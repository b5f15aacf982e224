import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQL } from 'drizzle-orm';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';

export type Db = PgDatabase<PgQueryResultHKT>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** Anything that runs queries: the database itself or an open transaction. */
export type Executor = Db | Tx;

export type Database = {
  db: Db;
  kind: 'embedded' | 'postgres';
  migrate(): Promise<void>;
  /** Calls `onNotify` on every NOTIFY to one of `channels`; returns the unsubscribe. */
  listen(channels: string[], onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
};

const insideTransaction = new AsyncLocalStorage<boolean>();
const QUERY_METHODS = new Set(['select', 'selectDistinct', 'insert', 'update', 'delete', 'execute', '$count', 'with']);

export class QueryOutsideTransactionError extends Error {}

/**
 * Inside `db.transaction(fn)`, a query through `db` instead of the transaction would run on another
 * connection: on the embedded database (one connection) it waits forever, on PostgreSQL it escapes
 * the transaction. This makes that mistake throw at once, on both.
 */
function guardTransactions(db: Db): Db {
  return new Proxy(db, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (property === 'transaction') {
        return (run: (tx: Tx) => Promise<unknown>, ...rest: unknown[]) =>
          (value as (...args: unknown[]) => unknown).call(target, (tx: Tx) => insideTransaction.run(true, () => run(tx)), ...rest);
      }
      if (typeof property === 'string' && QUERY_METHODS.has(property)) {
        return (...args: unknown[]) => {
          if (insideTransaction.getStore()) {
            throw new QueryOutsideTransactionError(`db.${property}() was called inside a transaction; pass the transaction (tx) instead`);
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return value;
    },
  });
}

export const migrationsFolder = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');
const MIGRATION_LOCK_ID = 7_316_001;

export function openPostgres(connectionString: string, poolSize = 10): Database {
  const pool = new pg.Pool({ connectionString, max: poolSize });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  const db = guardTransactions(drizzlePg(pool));
  return {
    db,
    kind: 'postgres',
    async migrate() {
      const client = await pool.connect();
      try {
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
        await migratePg(drizzlePg(client), { migrationsFolder });
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
        client.release();
      }
    },
    async listen(channels, onNotify) {
      const client = new pg.Client({ connectionString });
      await client.connect();
      client.on('notification', onNotify);
      client.on('error', () => undefined);
      for (const channel of channels) await client.query(`listen ${pg.escapeIdentifier(channel)}`);
      return () => client.end();
    },
    close: () => pool.end(),
  };
}

export type EmbeddedOptions = { dataDir?: string; loadDataDir?: Blob };

export async function openEmbedded(options: EmbeddedOptions = {}): Promise<Database & { pglite: PGlite }> {
  const releaseLock = options.dataDir ? lockDataDir(options.dataDir) : () => undefined;
  try {
    const pglite = await PGlite.create({
      ...(options.dataDir ? { dataDir: path.join(options.dataDir, 'pgdata') } : {}),
      ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    });
    const db = guardTransactions(drizzlePglite(pglite));
    return {
      db,
      pglite,
      kind: 'embedded',
      migrate: () => migratePglite(drizzlePglite(pglite), { migrationsFolder }),
      async listen(channels, onNotify) {
        const unsubscribes = await Promise.all(channels.map((channel) => pglite.listen(channel, onNotify)));
        return async () => {
          for (const unsubscribe of unsubscribes) await unsubscribe();
        };
      },
      async close() {
        await pglite.close();
        releaseLock();
      },
    };
  } catch (error) {
    releaseLock();
    throw error;
  }
}

export class DataDirLockedError extends Error {}

/**
 * The embedded database is single-process: a second process opening the same files would corrupt
 * them. A pid file makes the second one fail with a clear message instead.
 */
function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockFile = path.join(dataDir, 'tranche.pid');
  const holder = readLockHolder(lockFile);
  if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
    throw new DataDirLockedError(
      `The embedded database in ${dataDir} is in use by process ${holder}. ` +
        'Stop that process first, or run against PostgreSQL by setting DATABASE_URL.',
    );
  }
  fs.writeFileSync(lockFile, String(process.pid));
  return () => {
    if (readLockHolder(lockFile) === process.pid) fs.rmSync(lockFile, { force: true });
  };
}

function readLockHolder(lockFile: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10);
    return Number.isFinite(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function openDatabase(config: { databaseUrl: string | undefined; dataDir: string }): Promise<Database> {
  return config.databaseUrl ? openPostgres(config.databaseUrl) : openEmbedded({ dataDir: config.dataDir });
}

export async function ping(db: Executor): Promise<void> {
  await db.execute(sql`select 1`);
}

/** Raw SQL for the few statements the query builder cannot express; both drivers return `rows`. */
export async function queryRows<T>(db: Executor, query: SQL): Promise<T[]> {
  const result: unknown = await db.execute(query);
  return (result as { rows: T[] }).rows;
}
