/** Node and PostgreSQL error codes that mean "the database cannot be reached or refuses us". */
const DATABASE_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const DATABASE_SERVER_CODES: Record<string, string> = {
  '28P01': 'password authentication failed',
  '28000': 'the server rejected the role',
  '3D000': 'the database does not exist',
  '57P03': 'the server is starting up or shutting down',
  '53300': 'too many connections',
};

type ErrorWithCode = Error & { code?: string; errors?: unknown[]; address?: string; port?: number; syscall?: string };

function codeOf(error: ErrorWithCode): string | undefined {
  if (error.code) return error.code;
  const first = error.errors?.[0] as ErrorWithCode | undefined;
  return first?.code;
}

/**
 * One line for the start-up failures an operator causes and fixes (port taken, database down or
 * refusing us), or undefined for anything else (a bug, whose stack trace is worth printing).
 */
export function describeStartupError(error: unknown, where: { host: string; port: number; databaseUrl?: string }): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const failure = error as ErrorWithCode;
  const code = codeOf(failure);
  // The failed listener's own port: PORT, WORKER_HTTP_PORT or METRICS_PORT.
  const port = failure.port ?? where.port;
  const setting = port === where.port ? 'PORT' : 'WORKER_HTTP_PORT or METRICS_PORT';
  if (failure.syscall === 'listen' && code === 'EADDRINUSE')
    return `Port ${port} on ${where.host} is already in use: stop what holds it or set ${setting} (or HOST).`;
  if (failure.syscall === 'listen' && code === 'EACCES')
    return `Not allowed to listen on ${where.host}:${port}: choose another ${setting} (ports below 1024 need privileges).`;
  const database = where.databaseUrl ? `the database at ${databaseHost(where.databaseUrl)}` : 'the database';
  if (code && DATABASE_CONNECTION_CODES.has(code)) return `Cannot reach ${database} (${code}): is it running, and is DATABASE_URL right?`;
  if (code && DATABASE_SERVER_CODES[code]) return `Cannot use ${database}: ${DATABASE_SERVER_CODES[code]} (${code}). Check DATABASE_URL.`;
  return undefined;
}

/** host:port/name of a postgres:// URL, without the credentials. */
function databaseHost(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}
