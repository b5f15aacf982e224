import { AsyncLocalStorage } from 'node:async_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQL } from 'drizzle-orm';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { lockDataDir } from './data-dir-lock.ts';
import { embeddedStartParams, seedFromTemplate } from './embedded-template.ts';
import { markDatabaseError } from './errors.ts';

export { DataDirLockedError } from './data-dir-lock.ts';

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
  /** This process's connections right now (for metrics); see `ConnectionStats`. */
  connections(): ConnectionStats;
  /** See `RunPrepared`. */
  runPrepared: RunPrepared;
  close(): Promise<void>;
};

/**
 * Runs a hot statement outside any transaction and answers its rows: on PostgreSQL as a named
 * prepared statement (`name`, unique per statement text), so each connection parses it once
 * instead of on every run, and plans it on each run for the tables as they are then (see
 * `connectionConfig`); the embedded database runs it as is. For the webhook dispatcher's claim
 * and result statements, run many times a second.
 */
export type RunPrepared = <T>(name: string, query: SQL) => Promise<T[]>;

const pgDialect = new PgDialect();

/**
 * Connection counts: `max` the pool may open, `total` open now, `idle` of those free, `waiting`
 * queries queued for a free one. The embedded database is one connection, which serializes its
 * queries itself: it reports `max` and `total` (1) and no `idle` or `waiting`.
 */
export type ConnectionStats = { max: number; total: number; idle?: number; waiting?: number };

const insideTransaction = new AsyncLocalStorage<boolean>();

/**
 * Work that must commit or roll back with whatever transaction the current request opens, set for
 * the duration of one request (the Idempotency-Key record says, in the request's own transaction,
 * that its writes happened). `beforeCommit` runs inside each top-level `db.transaction(fn)` after
 * `fn` resolves and before the commit; if it throws, the transaction rolls back.
 */
export type CommitParticipant = { beforeCommit?: (tx: Tx) => Promise<void> };
export const commitParticipant = new AsyncLocalStorage<CommitParticipant>();

/** Work registered on an open top-level transaction by `beforeCommit`, run in order when its body has resolved. */
const commitHooks = new WeakMap<object, ((tx: Tx) => Promise<void>)[]>();

/**
 * Runs `hook` inside `tx` after the transaction's body resolves and before it commits (if it
 * throws, the transaction rolls back). Answers false when `tx` is not a top-level
 * `db.transaction` (the plain database, or a nested transaction): the caller then does the work
 * at once. Writers that take a contended lock use it to take that lock last, for the shortest time.
 */
export function beforeCommit(tx: Executor, hook: (tx: Tx) => Promise<void>): boolean {
  const hooks = commitHooks.get(tx);
  if (!hooks) return false;
  hooks.push(hook);
  return true;
}

async function runInTransaction<T>(tx: Tx, run: (tx: Tx) => Promise<T>): Promise<T> {
  const hooks: ((tx: Tx) => Promise<void>)[] = [];
  commitHooks.set(tx, hooks);
  const result = await run(tx);
  // A hook may register another (it runs too, after the ones before it).
  for (let i = 0; i < hooks.length; i++) await hooks[i]!(tx);
  commitHooks.delete(tx);
  const participant = commitParticipant.getStore();
  if (participant?.beforeCommit) await participant.beforeCommit(tx);
  return result;
}
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
          (value as (...args: unknown[]) => unknown).call(
            target,
            (tx: Tx) => insideTransaction.run(true, () => runInTransaction(tx, run)),
            ...rest,
          );
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

/** Bounds on every wait for PostgreSQL (milliseconds; 0 turns a bound off). See the README configuration table. */
export type PostgresOptions = {
  poolSize: number;
  /** Opening a connection, or waiting for a free one in the pool. */
  connectTimeoutMs: number;
  /** Server side: a statement running longer is cancelled (`statement_timeout`). */
  statementTimeoutMs: number;
  /** Server side: waiting longer for a row or table lock fails the statement (`lock_timeout`). */
  lockTimeoutMs: number;
  /** Server side: a transaction left idle longer is ended (`idle_in_transaction_session_timeout`). */
  idleInTransactionTimeoutMs: number;
  /** Client side: no answer within this long (a network partition) fails the query and drops its connection. */
  queryTimeoutMs: number;
};

export const defaultPostgresOptions: PostgresOptions = {
  poolSize: 10,
  connectTimeoutMs: 5000,
  statementTimeoutMs: 10_000,
  lockTimeoutMs: 5000,
  idleInTransactionTimeoutMs: 30_000,
  queryTimeoutMs: 12_000,
};

/** `application_name` of the LISTEN connection, to find it in `pg_stat_activity`. */
export const LISTENER_APPLICATION_NAME = 'tranche-listener';
/** Longest wait between two attempts to re-open the LISTEN connection. */
const LISTEN_BACKOFF_CAP_MS = 5000;
/** How often the LISTEN connection is checked: a partition shows no error until something is sent. */
const LISTEN_HEARTBEAT_MS = 5000;

/**
 * A pg client that never takes the process down and never goes back to the pool wedged: it always
 * has an `error` listener (pg-pool removes its own while a client is checked out, so a backend
 * terminated mid-transaction would otherwise be an unhandled `'error'` event), and a query that
 * timed out on the client side destroys the connection, so the pool discards it instead of
 * handing out a connection with a lost query still pending on it.
 */
class GuardedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => undefined);
  }

  // pg's overloads cannot be restated in a subclass either.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pass-through of pg's overloaded result
  override connect(...args: unknown[]): any {
    const callback = args[0];
    if (typeof callback === 'function') {
      return super.connect((error: Error | undefined) => {
        markDatabaseError(error);
        (callback as (error: Error | undefined) => void)(error);
      });
    }
    return super.connect().catch((error: unknown) => {
      markDatabaseError(error);
      throw error;
    });
  }

  // pg's overloads cannot be restated in a subclass; the arguments pass through unchanged.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pass-through of pg's overloaded result
  override query(...args: unknown[]): any {
    const last = args.at(-1);
    if (typeof last === 'function') {
      args[args.length - 1] = (error: Error | null, result: unknown) => {
        if (isReadTimeout(error)) this.dropConnection();
        (last as (error: Error | null, result: unknown) => void)(error, result);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (result instanceof Promise) {
      result.catch((error: unknown) => {
        if (isReadTimeout(error)) this.dropConnection();
      });
    }
    return result;
  }

  private dropConnection() {
    (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}

const isReadTimeout = (error: unknown) => error instanceof Error && error.message === 'Query read timeout';

/** What every connection adds to the `options` of `DATABASE_URL` (see `connectionConfig`). */
export const SERVER_OPTIONS = '-c plan_cache_mode=force_custom_plan';

/**
 * The connection settings of `connectionString` read by pg's own parser (`pg-connection-string`, as
 * pg reads a `connectionString`: user, password, host or socket, database, `sslmode`, any other
 * parameter), with `SERVER_OPTIONS` after the URL's own `options`.
 * `plan_cache_mode=force_custom_plan`: the named prepared statements (`runPrepared`) are planned
 * on each run with the tables as they are then. PostgreSQL's default switches a statement to a
 * generic plan after five runs and keeps it until the table's statistics change, which without a
 * recent ANALYZE (autovacuum off, or the minute before it runs) freezes the plan a queue got when
 * it was nearly empty: measured, the webhook result statement then scanned the whole deliveries
 * table at every batch (four times the database CPU per delivery). Other statements are unnamed
 * and always planned for their parameters, so this changes nothing else.
 */
export function connectionConfig(connectionString: string): pg.ClientConfig {
  const parsed = parseConnectionString(connectionString);
  return { ...(parsed as pg.ClientConfig), options: [parsed.options, SERVER_OPTIONS].filter(Boolean).join(' ') };
}

function clientConfig(connectionString: string, options: PostgresOptions, applicationName = 'tranche'): pg.ClientConfig {
  return {
    application_name: applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    lock_timeout: options.lockTimeoutMs,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    query_timeout: options.queryTimeoutMs || undefined,
    keepAlive: true,
    // After the fields above: the URL's parameters win over them, as in pg's own `connectionString`.
    ...connectionConfig(connectionString),
  };
}

/**
 * PostgreSQL through a pool whose every wait is bounded (`options`). Database faults never crash
 * the process: they fail the queries that met them (see `isDatabaseUnavailable`) and the pool
 * opens fresh connections on the next use.
 */
/**
 * The pool drizzle runs transactions on. drizzle's `transaction` checks a client out and sends
 * `BEGIN` before its try/finally, so when `BEGIN` fails (the backend was terminated, a failover)
 * the client is never released: the pool loses a slot for good and `end()` waits forever. Here a
 * client checked out with the promise form (drizzle's transactions only; `pool.query` uses the
 * callback form) is released, and destroyed, when its first query fails. Later failures are
 * drizzle's to release, as it does in its `finally`.
 */
class TransactionPool extends pg.Pool {
  // @ts-expect-error pg's overloads: the callback form passes through untouched.
  override connect(callback?: Parameters<pg.Pool['connect']>[0]) {
    if (callback) return super.connect(callback);
    return super.connect().then((client) => {
      const query: typeof client.query = client.query.bind(client);
      client.query = ((...args: Parameters<typeof query>) => {
        client.query = query;
        const result = (query as (...a: unknown[]) => unknown)(...args);
        if (result instanceof Promise)
          return result.catch((error: unknown) => {
            client.release(error instanceof Error ? error : true);
            throw error;
          });
        return result;
      }) as typeof query;
      return client;
    });
  }
}

export function openPostgres(connectionString: string, overrides: Partial<PostgresOptions> | number = {}): Database {
  const options = { ...defaultPostgresOptions, ...(typeof overrides === 'number' ? { poolSize: overrides } : overrides) };
  const pool = new TransactionPool({ ...clientConfig(connectionString, options), max: options.poolSize, Client: GuardedClient });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  const db = guardTransactions(drizzlePg(pool as unknown as pg.Pool));
  return {
    db,
    kind: 'postgres',
    async runPrepared<T>(name: string, query: SQL) {
      const { sql: text, params } = pgDialect.sqlToQuery(query);
      const result = await pool.query({ name, text, values: params });
      return result.rows as T[];
    },
    async migrate() {
      // Its own connection without statement or query timeouts: a migration, or the wait for
      // another process's migration, may take longer than any request should.
      const client = new pg.Client({ connectionString, connectionTimeoutMillis: options.connectTimeoutMs || undefined });
      client.on('error', () => undefined);
      await client.connect();
      try {
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
        await migratePg(drizzlePg(client), { migrationsFolder });
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
        await client.end().catch(() => undefined);
      }
    },
    listen: (channels, onNotify) =>
      listenWithReconnect(() => new GuardedClient(clientConfig(connectionString, options, LISTENER_APPLICATION_NAME)), channels, onNotify),
    connections: () => ({ max: options.poolSize, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end(),
  };
}

/**
 * LISTEN on a dedicated connection that survives losing it: a heartbeat finds a silent partition,
 * an error or end reconnects with capped exponential backoff (100 ms doubling to 5 s) and
 * re-subscribes, and `onNotify` is called once after each reconnect, since notifications sent
 * while disconnected are lost.
 */
async function listenWithReconnect(createClient: () => pg.Client, channels: string[], onNotify: () => void): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;

  const subscribe = async () => {
    const next = createClient();
    try {
      await next.connect();
      next.on('notification', onNotify);
      for (const channel of channels) await next.query(`listen ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      await next.end().catch(() => undefined);
      throw error;
    }
    next.on('error', () => lost(next));
    next.on('end', () => lost(next));
    client = next;
    failures = 0;
  };

  const lost = (which: pg.Client) => {
    if (stopped || which !== client) return;
    client = undefined;
    void which.end().catch(() => undefined);
    scheduleReconnect();
  };

  const scheduleReconnect = () => {
    if (stopped || retry) return;
    const delay = Math.min(LISTEN_BACKOFF_CAP_MS, 100 * 2 ** failures);
    retry = setTimeout(() => {
      retry = undefined;
      subscribe().then(
        () => {
          if (!stopped) onNotify();
        },
        () => {
          failures++;
          scheduleReconnect();
        },
      );
    }, delay);
    retry.unref();
  };

  await subscribe();
  heartbeat = setInterval(() => {
    const current = client;
    if (!current) return;
    current.query('select 1').catch(() => lost(current));
  }, LISTEN_HEARTBEAT_MS);
  heartbeat.unref();

  return async () => {
    stopped = true;
    clearInterval(heartbeat);
    clearTimeout(retry);
    heartbeat = undefined;
    await client?.end().catch(() => undefined);
  };
}

export type EmbeddedOptions = { dataDir?: string; loadDataDir?: Blob };

/**
 * The embedded database: in memory, or in `dataDir/pgdata` (locked to this process). A new data
 * directory starts as a copy of the cached pre-migrated template (see `embedded-template.ts`)
 * instead of running initdb in this process; `loadDataDir` (a `dumpDataDir` tarball) fills a new
 * database from that instead.
 */
export async function openEmbedded(options: EmbeddedOptions = {}): Promise<Database & { pglite: PGlite }> {
  const releaseLock = options.dataDir ? lockDataDir(options.dataDir) : () => undefined;
  try {
    const pgdata = options.dataDir ? path.join(options.dataDir, 'pgdata') : undefined;
    if (pgdata && !options.loadDataDir) await seedFromTemplate(pgdata);
    const pglite = await PGlite.create({
      ...(pgdata ? { dataDir: pgdata } : {}),
      ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
      startParams: embeddedStartParams,
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
      connections: () => ({ max: 1, total: 1 }),
      runPrepared: <T>(_name: string, query: SQL) => queryRows<T>(db, query),
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

/** PostgreSQL when `databaseUrl` is set, else the embedded database in `dataDir` (locked to this process). */
export async function openDatabase(config: {
  databaseUrl: string | undefined;
  dataDir: string;
  postgres?: Partial<PostgresOptions>;
}): Promise<Database> {
  return config.databaseUrl ? openPostgres(config.databaseUrl, config.postgres) : openEmbedded({ dataDir: config.dataDir });
}

export async function ping(db: Executor): Promise<void> {
  await db.execute(sql`select 1`);
}

/** Raw SQL for the few statements the query builder cannot express; both drivers return `rows`. */
export async function queryRows<T>(db: Executor, query: SQL): Promise<T[]> {
  const result: unknown = await db.execute(query);
  return (result as { rows: T[] }).rows;
}
