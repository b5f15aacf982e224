import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { loggerOptions } from '../observability/logging.ts';
import { metricsPlugin } from '../observability/metrics.ts';
import { AppError, errorBody, type FieldError } from './errors.ts';
import { finishOpenApiDocument } from './openapi-document.ts';

export type ServerOptions = {
  logLevel: string;
  logStream?: Writable;
  bodyLimitBytes: number;
  publicUrl: string;
  version: string;
};

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;

/** Fastify with our conventions: zod schemas, the error envelope, request ids, OpenAPI, metrics. */
export async function createServer(options: ServerOptions) {
  const app = Fastify({
    logger: { ...loggerOptions(options.logLevel), ...(options.logStream ? { stream: options.logStream } : {}) },
    bodyLimit: options.bodyLimitBytes,
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(sendError);
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody('NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`, request.id)),
  );
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    return payload;
  });

  await app.register(helmet, { contentSecurityPolicy: false });
  await app.register(cors, { origin: true, exposedHeaders: ['x-request-id', 'idempotent-replayed'] });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tranche API',
        version: options.version,
        description:
          'Identity, notifications, primary issuance and key server. Success bodies are `{ success: true, data }`, errors `{ success: false, error: { message, code, field? } }`; key server routes speak JSON:API. `/primary-issuance/...` serves the same operations as `/issuance/...`.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      servers: [{ url: options.publicUrl }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          adminKey: { type: 'apiKey', in: 'header', name: 'X-Admin-Key' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => finishOpenApiDocument(jsonSchemaTransformObject(document) as Record<string, unknown>) as never,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(metricsPlugin);
  return app;
}

function fieldName(instancePath: string, context: string | undefined): string {
  const field = instancePath.replace(/^\//, '').replaceAll('/', '.');
  if (field) return field;
  return context === 'body' ? 'body' : (context ?? 'request');
}

export function validationDetails(error: FastifyError): FieldError[] {
  if (!hasZodFastifySchemaValidationErrors(error)) return [];
  return error.validation.map((issue) => ({
    field: fieldName(issue.instancePath, error.validationContext),
    message: issue.message ?? 'is invalid',
  }));
}

/** Maps any thrown error to the `{ success: false, error: { message, code } }` envelope. */
export function sendError(error: FastifyError | AppError | Error, request: FastifyRequest, reply: FastifyReply) {
  const { status, code, message, details } = classifyError(error as FastifyError);
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  if (status === 429) reply.header('retry-after', reply.getHeader('retry-after') ?? '60');
  return reply.code(status).send(errorBody(code, message, request.id, details));
}

export function classifyError(error: FastifyError | AppError): {
  status: number;
  code: string;
  message: string;
  details?: FieldError[];
} {
  if (error instanceof AppError) return { status: error.statusCode, code: error.code, message: error.message, details: error.details };
  if (hasZodFastifySchemaValidationErrors(error)) {
    const details = validationDetails(error);
    return { status: 400, code: 'VALIDATION_ERROR', message: details.map((d) => `${d.field}: ${d.message}`).join('; '), details };
  }
  if (isResponseSerializationError(error)) return { status: 500, code: 'INTERNAL_ERROR', message: 'Internal server error' };
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'Request body is too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'VALIDATION_ERROR', message: 'Request body is empty', details: [{ field: 'body', message: 'is empty' }] };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        status: 400,
        code: 'VALIDATION_ERROR',
        message: 'Request body is not valid JSON',
        details: [{ field: 'body', message: 'is not valid JSON' }],
      };
    default:
      break;
  }
  const status = error.statusCode ?? 500;
  if (status === 429) return { status, code: 'RATE_LIMITED', message: 'Too many requests; retry later' };
  if (error instanceof SyntaxError && status === 400) {
    return {
      status: 400,
      code: 'VALIDATION_ERROR',
      message: 'Request body is not valid JSON',
      details: [{ field: 'body', message: 'is not valid JSON' }],
    };
  }
  if (status >= 400 && status < 500) {
    const code =
      status === 401
        ? 'UNAUTHORIZED'
        : status === 403
          ? 'FORBIDDEN'
          : status === 404
            ? 'NOT_FOUND'
            : status === 405
              ? 'METHOD_NOT_ALLOWED'
              : 'VALIDATION_ERROR';
    return { status, code, message: error.message };
  }
  return { status: 500, code: 'INTERNAL_ERROR', message: 'Internal server error' };
}
