import { DrizzleQueryError } from 'drizzle-orm';

/** Whether a query failed on a unique constraint (pg puts the code on the error, PGlite/drizzle on its cause). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string; cause?: { code?: string } }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  return code === '23505';
}

/** Whether a query failed on the NOT NULL of `table.column` (23502; pg puts the fields on the error, drizzle wraps it in `cause`). */
export function isNotNullViolation(error: unknown, table: string, column: string): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 3; current = current.cause, depth++) {
    const fields = current as { code?: string; table?: string; column?: string };
    if (fields.code === '23502') return fields.table === table && fields.column === column;
  }
  return false;
}

/**
 * SQLSTATEs that mean "the database could not serve this now", not "this request is wrong":
 * connection exceptions (class 08), operator intervention (57P01 terminated, 57P02 crash,
 * 57P03 starting up), 57014 statement_timeout, 55P03 lock_timeout, 25P03 idle-in-transaction
 * timeout and 53300 too many connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57014', '55P03', '25P03', '53300']);

/** What node-postgres and pg-pool say when a connection is lost, refused or timed out. */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
];

/** Marks an error raised while connecting to the database (see `markDatabaseError`). */
const DATABASE_ERROR = Symbol.for('tranche.databaseError');

/** Tags an error as coming from the database connection, so its socket code counts as unavailability. */
export function markDatabaseError(error: unknown): void {
  if (error instanceof Error) Object.defineProperty(error, DATABASE_ERROR, { value: true });
}

const UNAVAILABLE_SYSCALL_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Whether `error` (or one of its causes) says the database is unreachable or too slow, as opposed
 * to a bug or a rejected statement. Such errors answer 503 DATABASE_UNAVAILABLE with Retry-After.
 * Socket error codes (ECONNREFUSED...) count only under an error the database layer raised
 * (drizzle's `DrizzleQueryError`, or a pg error), so a failed IdP fetch is not mistaken for one.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let fromDatabase = false;
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const { code } = current as { code?: unknown };
    if (current instanceof DrizzleQueryError || 'severity' in current || DATABASE_ERROR in current) fromDatabase = true;
    if (typeof code === 'string') {
      if (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08')) return true;
      if (fromDatabase && UNAVAILABLE_SYSCALL_CODES.has(code)) return true;
    }
    if (UNAVAILABLE_MESSAGES.some((message) => current.message.startsWith(message))) return true;
  }
  return false;
}

/** SQLSTATEs of a transaction the database aborted to resolve a conflict: 40P01 deadlock_detected, 40001 serialization_failure. */
const CONFLICT_SQLSTATES = new Set(['40P01', '40001']);

/**
 * Whether `error` (or one of its causes: drizzle wraps the driver's error) is a deadlock or a
 * serialization failure: the transaction was rolled back whole and running it again may succeed.
 */
export function isTransactionConflict(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string' && CONFLICT_SQLSTATES.has(code)) return true;
  }
  return false;
}
