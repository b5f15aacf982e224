import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { DATABASE_RETRY_AFTER_SECONDS } from '../platform/http/errors.ts';
import { classifyError, logFailure } from '../platform/http/server.ts';

/** JSON:API error objects as TokenD renders them (research/tokend.md §4): the first one sets the status. */
export type ErrorObject = { title: string; status: string; code?: string; detail?: string; meta?: Record<string, unknown> };

export const JSONAPI_MEDIA_TYPE = 'application/vnd.api+json';

export class JsonApiError extends Error {
  constructor(
    readonly status: number,
    readonly errors: ErrorObject[],
  ) {
    super(errors[0]?.detail ?? STATUS_CODES[status] ?? 'Error');
  }
}

const problem = (status: number, extra: Omit<ErrorObject, 'title' | 'status'> = {}) =>
  new JsonApiError(status, [{ title: STATUS_CODES[status] ?? 'Error', status: String(status), ...extra }]);

export const badRequest = (field: string, error: string) => problem(400, { meta: { field, error } });
export const badRequestDetail = (detail: string) => problem(400, { detail });
export const unauthorized = (detail?: string) => problem(401, detail ? { detail } : {});
export const forbidden = (extra: Omit<ErrorObject, 'title' | 'status'> = {}) => problem(403, extra);
export const notFound = (detail?: string) => problem(404, detail ? { detail } : {});
export const conflict = (detail?: string) => problem(409, detail ? { detail } : {});
export const tooManyRequests = (detail: string) => problem(429, { detail });
export const transactionFailed = (detail: string, transaction: string) =>
  problem(400, { code: 'tx_failed', detail, meta: { result_codes: { transaction, operations: [] } } });

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received: second-factor challenges are bound to it. */
    rawBody?: string;
  }
}

/** Validation issues become one error per field, each with a JSON pointer (`/data/attributes/email`). */
function fromValidation(error: FastifyError): JsonApiError | undefined {
  if (!hasZodFastifySchemaValidationErrors(error)) return undefined;
  const context = error.validationContext;
  return new JsonApiError(
    400,
    error.validation.map((issue) => ({
      title: 'Bad Request',
      status: '400',
      meta: {
        field: context === 'body' ? issue.instancePath || '/data' : `${context}${issue.instancePath.replaceAll('/', '.')}`,
        error: issue.message ?? 'is invalid',
      },
    })),
  );
}

/** Anything else is classified as everywhere else (platform/http/server.ts), then rendered as JSON:API. */
function toJsonApi(error: Error): JsonApiError {
  if (error instanceof JsonApiError) return error;
  const validation = fromValidation(error as FastifyError);
  if (validation) return validation;
  const { status, code, message } = classifyError(error as FastifyError);
  if (code === 'DATABASE_UNAVAILABLE') return problem(503, { code: 'database_unavailable', detail: message });
  return status >= 500 ? problem(500) : problem(status, { detail: message });
}

/** Renders any thrown error as a JSON:API error document (the key server's format). */
export function sendJsonApiError(error: Error, request: FastifyRequest, reply: FastifyReply) {
  const rendered = toJsonApi(error);
  const unavailable = rendered.errors[0]?.code === 'database_unavailable';
  if (rendered.status >= 500) logFailure(request, error, unavailable ? 'DATABASE_UNAVAILABLE' : 'INTERNAL_ERROR');
  if (rendered.status === 429) reply.header('retry-after', reply.getHeader('retry-after') ?? '60');
  if (unavailable) reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
  return reply.code(rendered.status).type(JSONAPI_MEDIA_TYPE).send({ errors: rendered.errors });
}

/** JSON:API conventions for every key server route: media type in and out, error objects, raw body kept. */
export function useJsonApi(scope: FastifyInstance) {
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser(['application/json', JSONAPI_MEDIA_TYPE], { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(badRequestDetail('Your request was invalid in some way'), undefined);
    }
  });
  scope.setErrorHandler(sendJsonApiError);
  scope.addHook('onSend', async (_request, reply, payload) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('application/json')) reply.type(JSONAPI_MEDIA_TYPE);
    return payload;
  });
}
