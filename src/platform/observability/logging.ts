import type { Writable } from 'node:stream';
import { pino, stdSerializers, type Logger, type LoggerOptions } from 'pino';

/** Field names whose values must never reach a log line, wherever they appear. */
export const sensitiveFields = [
  'ssn',
  'ssnLast4',
  'firstName',
  'lastName',
  'first_name',
  'last_name',
  'address',
  'telephone',
  'idNumber',
  'id_number',
  'dob',
  'dobDay',
  'dobMonth',
  'dobYear',
  'email',
  'phone',
  'phoneNumber',
  'phone_number',
  'passport',
  'recipient',
  'walletId',
  'wallet_id',
  'encryptionKey',
  'encryption_key',
  'password',
  'secret',
  'token',
  'refreshToken',
  'refresh_token',
  'access_token',
  'id_token',
  'apiKey',
  'api_key',
];

/**
 * Query parameters whose values are credentials or PII (`/kdf?email=`, `/admin/mail?to=`, identity
 * lookups, signed storage URLs); their values are replaced in logged URLs.
 */
export const sensitiveQueryNames = new Set([
  'email',
  'to',
  'phone',
  'identifier',
  'filter[email]',
  'filter[phone]',
  'filter[identifier]',
  'filter[passport]',
  'filter[telegram_username]',
  'token',
  'code',
  'signature',
  'x-amz-signature',
  'x-amz-credential',
  'public_ip',
  'location_lat',
  'location_long',
]);

/**
 * Path segments that are credentials or PII, by route: a wallet id is the TokenD login credential,
 * a session id a bearer secret, and identities may be deleted by email.
 */
const sensitivePaths: RegExp[] = [
  /^(\/wallets\/)(?!kdf(?:$|\/))[^/]+/,
  /^(\/sessions\/)[^/]+/,
  /^(\/identities\/)[^/]*(?:@|%40)[^/]*/i,
  /^(\/verify\/)[^/]+/,
];

/** An email, or anything else with an `@` (sent as is or percent-encoded), is treated as PII wherever it appears. */
const looksLikeEmail = /@|%40/i;

/**
 * The URL as it may be logged: sensitive path segments (by route, and any segment holding an `@`)
 * and query values (by name, and any value holding an `@`) replaced.
 */
export function redactUrl(url: string): string {
  const queryAt = url.indexOf('?');
  let pathname = queryAt === -1 ? url : url.slice(0, queryAt);
  for (const pattern of sensitivePaths) pathname = pathname.replace(pattern, '$1[redacted]');
  pathname = pathname
    .split('/')
    .map((segment) => (looksLikeEmail.test(segment) ? '[redacted]' : segment))
    .join('/');
  if (queryAt === -1) return pathname;
  const query = url
    .slice(queryAt + 1)
    .split('&')
    .map((pair) => {
      const name = pair.split('=')[0]!;
      let decoded: string;
      try {
        decoded = decodeURIComponent(name).toLowerCase();
      } catch {
        return `${name}=[redacted]`;
      }
      // Control characters (`email%00=`) do not hide a sensitive name.
      const bare = [...decoded].filter((char) => char >= ' ' && char !== '\u007f').join('');
      return sensitiveQueryNames.has(bare) || looksLikeEmail.test(pair) ? `${name}=[redacted]` : pair;
    })
    .join('&');
  return `${pathname}?${query}`;
}

/**
 * Errors without what they may carry of the data: a failed query's parameters (Drizzle puts them
 * in `params` and in the message), and PostgreSQL's `detail` ("Key (email)=(...) already exists").
 */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const serialized = stdSerializers.err(error) as unknown as Record<string, unknown>;
  return scrubError(serialized);
}

function scrubError(value: Record<string, unknown>): Record<string, unknown> {
  const { params: _params, parameters: _parameters, detail: _detail, ...rest } = value;
  if (typeof rest.message === 'string') rest.message = rest.message.replace(/\nparams: [\s\S]*$/, '');
  if (typeof rest.stack === 'string') rest.stack = rest.stack.replace(/\nparams: [\s\S]*?(?=\n\s+at |$)/, '');
  if (rest.cause && typeof rest.cause === 'object') rest.cause = scrubError(rest.cause as Record<string, unknown>);
  return rest;
}

type LoggedRequest = { method?: string; url?: string; headers?: Record<string, unknown>; socket?: { remoteAddress?: string }; ip?: string };
type LoggedReply = { statusCode?: number; request?: { method?: string; routeOptions?: { url?: string } } };

/**
 * pino options for every log line of the process: the request line (`req`: method, redacted URL,
 * client address), the completed line (`res`: method, route pattern such as
 * `/notifications/webhooks/:id` or `unmatched`, status code), errors without query parameters,
 * and the sensitive fields censored.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    serializers: {
      req: (request: LoggedRequest) => ({
        method: request.method,
        url: redactUrl(request.url ?? ''),
        remoteAddress: request.ip ?? request.socket?.remoteAddress,
      }),
      res: (reply: LoggedReply) => ({
        method: reply.request?.method,
        route: reply.request?.routeOptions?.url ?? 'unmatched',
        statusCode: reply.statusCode,
      }),
      err: serializeError,
    },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'req.headers.cookie',
        'res.headers["set-cookie"]',
        ...sensitiveFields.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
      ],
      censor: '[redacted]',
    },
  };
}

/** The process's logger (JSON lines on stdout, or on `stream`), shared by its HTTP servers and the webhook worker. */
export function createLogger(level: string, stream?: Writable): Logger {
  return stream ? pino(loggerOptions(level), stream) : pino(loggerOptions(level));
}
