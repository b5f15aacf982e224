import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { loggerOptions } from '../observability/logging.ts';
import { createMetricsRegistry, metricsPlugin, type MetricsPluginOptions } from '../observability/metrics.ts';
import { isDatabaseUnavailable, isTransactionConflict } from '../db/errors.ts';
import { AppError, DATABASE_RETRY_AFTER_SECONDS, DATABASE_UNAVAILABLE_MESSAGE, errorBody, type FieldError } from './errors.ts';
import { findUnstorableText } from './input-guard.ts';

/** Renders a thrown error as a response (the platform's `sendError`, or a module's own format). */
export type ErrorSender = (error: Error, request: FastifyRequest, reply: FastifyReply) => FastifyReply;
import { finishOpenApiDocument } from './openapi-document.ts';

export type ServerOptions = {
  logLevel: string;
  logStream?: Writable;
  /** The process's logger (`createLogger`); without it the server makes its own from `logLevel` and `logStream`. */
  logger?: FastifyBaseLogger;
  /**
   * The registry request durations go to and whether this server answers `/metrics` (and with
   * which token); default: a registry of its own, served openly.
   */
  metrics?: MetricsPluginOptions;
  /** Serve the OpenAPI document and `/docs` (default); false for the worker's and the metrics listener. */
  docs?: boolean;
  bodyLimitBytes: number;
  publicUrl: string;
  version: string;
  /** Origins allowed by CORS (exact match); empty: no cross-origin access. */
  corsOrigins?: string[];
  /** Proxies whose X-Forwarded-For is believed (IPs or CIDRs); empty: `request.ip` is the socket's. */
  trustProxy?: string[];
  /**
   * The error format of a path no route answers (unknown route, bad percent-encoding, over-long
   * parameter): a module serving its own format under some paths (the key server's JSON:API at the
   * root) returns its sender for them; undefined means our envelope.
   */
  errorSenderFor?: (path: string) => ErrorSender | undefined;
};

/**
 * Every response gets this: the API serves JSON, so a page that somehow renders from our origin may
 * load nothing, be framed by nobody, and post forms only to us (the sandbox KYC scan page does).
 * The API docs at /docs get swagger-ui's own, relaxed policy.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;

/** Adds `method path` (OpenAPI style) to `optionalBodies` when the route's body schema accepts no body at all. */
function noteOptionalBody(optionalBodies: Set<string>, body: unknown, methods: string | string[], url: string) {
  if (!(body instanceof z.ZodType) || !body.safeParse(undefined).success) return;
  for (const method of [methods].flat()) optionalBodies.add(`${method.toLowerCase()} ${url.replace(/:(\w+)/g, '{$1}')}`);
}

/** Fastify with our conventions: zod schemas, the error envelope, request ids, OpenAPI, metrics. */
export async function createServer(options: ServerOptions) {
  const optionalBodies = new Set<string>();
  const senderFor = (request: FastifyRequest): ErrorSender => options.errorSenderFor?.(request.url.split('?')[0]!) ?? sendError;
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: options.logger }
      : { logger: { ...loggerOptions(options.logLevel), ...(options.logStream ? { stream: options.logStream } : {}) } }),
    bodyLimit: options.bodyLimitBytes,
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    // Only the configured proxies' X-Forwarded-For is believed; anyone else could name any address.
    trustProxy: options.trustProxy && options.trustProxy.length > 0 ? options.trustProxy : false,
    // Router-level errors (bad percent-encoding, over-long parameters) in the path's own format.
    frameworkErrors: (error, request, reply) => {
      void senderFor(request)(error, request, reply);
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error, request, reply) => senderFor(request)(error as Error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    senderFor(request)(new AppError('NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`), request, reply),
  );
  acceptEmptyJsonBodies(app);
  app.addHook('preValidation', async (request) => {
    const found =
      findUnstorableText(request.params, 'params') ??
      findUnstorableText(request.query, 'query') ??
      findUnstorableText(request.body, 'body');
    if (found !== undefined) throw new AppError('VALIDATION_ERROR', `${found.field}: ${found.message}`, [found]);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    // Tokens, PII and key-server secrets must not sit in a browser or proxy cache; a route that
    // may be cached (the JWKS) says so itself.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: cspDirectives(CONTENT_SECURITY_POLICY) },
  });
  const allowedOrigins = new Set(options.corsOrigins ?? []);
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowedOrigins.has(origin) ? origin : false),
    exposedHeaders: ['x-request-id', 'idempotent-replayed'],
  });
  if (options.docs !== false) await registerDocs(app, options, optionalBodies);
  await app.register(metricsPlugin, options.metrics ?? { registry: createMetricsRegistry(), serve: true });
  return app;
}

async function registerDocs(app: FastifyInstance, options: ServerOptions, optionalBodies: Set<string>) {
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
    transform: (input) => {
      noteOptionalBody(optionalBodies, input.schema?.body, input.route.method, input.url);
      return jsonSchemaTransform(input);
    },
    transformObject: (documents) => {
      const document = jsonSchemaTransformObject(documents) as {
        paths?: Record<string, Record<string, { requestBody?: { required?: boolean } }>>;
      };
      // @fastify/swagger marks every request body required; action routes take none.
      for (const [path, operations] of Object.entries(document.paths ?? {})) {
        for (const [method, operation] of Object.entries(operations)) {
          if (operation.requestBody && optionalBodies.has(`${method} ${path}`)) operation.requestBody.required = false;
        }
      }
      return finishOpenApiDocument(document as Record<string, unknown>);
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

function cspDirectives(policy: string): Record<string, string[]> {
  return Object.fromEntries(
    policy.split(';').map((directive) => {
      const [name, ...values] = directive.trim().split(/\s+/);
      return [name!, values];
    }),
  );
}

/**
 * `content-type: application/json` with an empty body (as curl and most clients send a bodiless
 * POST) parses as no body, so action routes work with or without the header; anything else is
 * parsed by Fastify's own JSON parser (prototype-poisoning protection included).
 */
function acceptEmptyJsonBodies(app: FastifyInstance) {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parse(request, text, done);
  });
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
  logFailure(request, error, code);
  if (status === 429) reply.header('retry-after', reply.getHeader('retry-after') ?? '60');
  if (code === 'DATABASE_UNAVAILABLE') reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
  return reply.code(status).send(errorBody(code, message, request.id, details));
}

/** Server-side failures are logged: a database outage as a warning without the stack, anything else as an error. */
export function logFailure(request: FastifyRequest, error: unknown, code: string) {
  if (code === 'DATABASE_UNAVAILABLE') request.log.warn({ reason: (error as Error).cause ?? error }, 'database unavailable');
  else if (code === 'INTERNAL_ERROR') request.log.error({ err: error }, 'request failed');
}

/**
 * The status, code and message any thrown error answers with, for every error renderer (envelope,
 * JSON:API, OAuth): `AppError`s as declared, validation and body errors as 4xx, a database that
 * cannot serve, or a transaction it rolled back on a deadlock or serialization failure, as 503
 * DATABASE_UNAVAILABLE (with Retry-After), anything else as 500.
 */
export function classifyError(error: FastifyError | AppError): {
  status: number;
  code: string;
  message: string;
  details?: FieldError[];
} {
  // A deadlock or serialization failure rolled the whole transaction back: nothing changed, and a retry may succeed.
  if (isDatabaseUnavailable(error) || isTransactionConflict(error))
    return { status: 503, code: 'DATABASE_UNAVAILABLE', message: DATABASE_UNAVAILABLE_MESSAGE };
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
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status: 414, code: 'URI_TOO_LONG', message: 'A path parameter is too long' };
    case 'FST_ERR_BAD_URL':
      return {
        status: 400,
        code: 'VALIDATION_ERROR',
        message: 'The URL is not validly percent-encoded',
        details: [{ field: 'url', message: 'is not validly percent-encoded' }],
      };
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
