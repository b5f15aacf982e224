import { z } from 'zod';

/** Every machine-readable error code the HTTP API returns, with its HTTP status. */
export const errorStatus = {
  VALIDATION_ERROR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  KYC_REQUIRED: 403,
  ACCREDITATION_REQUIRED: 403,
  INVESTMENT_LIMIT_EXCEEDED: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  INVALID_STATE: 409,
  OFFERING_FULL: 409,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  IDEMPOTENCY_REQUEST_INTERRUPTED: 409,
  IDEMPOTENCY_REQUEST_IN_PROGRESS: 409,
  UPLOAD_FAILED: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  MIGRATIONS_PENDING: 503,
} as const;

/** Retry-After (seconds) on 503 DATABASE_UNAVAILABLE: about how long a failover or reconnect takes. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** The answer to a request the database could not serve in time (see `isDatabaseUnavailable`). */
export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is unavailable; retry later';

export type ErrorCode = keyof typeof errorStatus;

export type FieldError = { field: string; message: string };

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: FieldError[] | undefined;

  constructor(code: ErrorCode, message: string, details?: FieldError[]) {
    super(message);
    this.code = code;
    this.statusCode = errorStatus[code];
    this.details = details;
  }
}

export const notFound = (what: string) => new AppError('NOT_FOUND', `${what} not found`);

export const errorBodySchema = z.object({
  success: z.literal(false),
  error: z.object({
    message: z.string(),
    code: z.string(),
    field: z.string().optional(),
    details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    request_id: z.string().optional(),
  }),
});

export type ErrorBody = z.infer<typeof errorBodySchema>;

export function errorBody(code: string, message: string, requestId?: string, details?: FieldError[]): ErrorBody {
  return {
    success: false,
    error: {
      message,
      code,
      ...(details?.[0] ? { field: details[0].field, details } : {}),
      ...(requestId ? { request_id: requestId } : {}),
    },
  };
}

/** Error responses for a route's OpenAPI document, spread into its `response` schema. */
export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(statuses.map((status) => [status, errorBodySchema])) as Record<number, typeof errorBodySchema>;
}
