import type { LoggerOptions } from 'pino';

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

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
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
