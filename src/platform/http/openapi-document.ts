/**
 * Completes the OpenAPI document that @fastify/swagger builds from the route schemas, with what
 * every operation shares and no single route should have to repeat: a stable `operationId`,
 * explicit security (public operations say so), the error responses of the platform (our envelope
 * or JSON:API on the key server), `Idempotency-Key` on writes, 429 where a rate limit applies, and
 * an example for each request body and success response, built from the schema (its `examples`,
 * `default`, `enum`, `format` and bounds) so it always validates. The `/primary-issuance` alias of
 * `/issuance` is left out: it serves the same operations.
 */

type Json = Record<string, unknown>;
type Schema = Json & {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  examples?: unknown[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  additionalProperties?: boolean | Schema;
};
type Operation = Json & {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: Json[];
  requestBody?: { content?: Record<string, { schema?: Schema; example?: unknown }> };
  responses?: Record<string, Json & { content?: Record<string, { schema?: Schema; example?: unknown }> }>;
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const WRITE_METHODS = new Set(['post', 'put', 'patch', 'delete']);
const JSONAPI = 'application/vnd.api+json';
export const KEYSERVER_TAG = 'key server';

/** Operations that answer 429 (`Retry-After` set) when a rate limit applies, beyond all key server ones. */
const RATE_LIMITED = new Set(['post /identity/auth/exchange', 'post /identity/auth/refresh']);
/** Writes whose answers are never stored for replay (they issue tokens). */
const NOT_IDEMPOTENT = new Set(['post /identity/auth/exchange', 'post /identity/auth/refresh']);

/** Strings for formats and well-known fields, so that examples look like real values and validate. */
const FORMAT_EXAMPLES: Record<string, string> = {
  uuid: '3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70',
  email: 'investor@example.com',
  'date-time': '2026-01-15T09:30:00.000Z',
  date: '1990-07-14',
  uri: 'https://app.example.com/return',
  url: 'https://app.example.com/return',
};

function resolve(document: Json, schema: Schema | undefined): Schema | undefined {
  if (!schema?.$ref) return schema;
  const name = schema.$ref.replace('#/components/schemas/', '');
  return resolve(document, ((document.components as Json | undefined)?.schemas as Record<string, Schema> | undefined)?.[name]);
}

/** Candidates tried, in order, against a string's `pattern`: the first that matches is the example. */
const PATTERN_CANDIDATES = ['1000.00', 'USA', 'US', 'CA', '+14155550123', '94105', 'X1234567', 'JVBERi0xLjQK', 'a'.repeat(64), 'investor'];

function matches(pattern: string, value: string): boolean {
  try {
    return new RegExp(pattern, 'u').test(value);
  } catch {
    return false;
  }
}

function stringExample(schema: Schema, name: string | undefined): string {
  if (schema.format === 'byte') return 'JVBERi0xLjQK';
  if (schema.format && FORMAT_EXAMPLES[schema.format]) return FORMAT_EXAMPLES[schema.format]!;
  const byName: Record<string, string> = {
    currency: 'USD',
    email: 'investor@example.com',
    token: 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl',
    refreshToken: 'rt_5Jc0n7dG2Qm8xYvB3kLw',
    url: 'https://hooks.example.com/tranche',
    dobMonth: '07',
    dobDay: '14',
    dobYear: '1990',
    firstName: 'Ada',
    lastName: 'Lovelace',
    address: '1 Market St',
    city: 'San Francisco',
    state: 'CA',
    zip: '94105',
    country: 'USA',
    idIssuer: 'CA',
    idNumber: 'D1234567',
    legalName: 'Acme Holdings Inc.',
    name: 'Series A Preferred',
    signerName: 'Ada Lovelace',
  };
  let value = (name && byName[name]) ?? (name ? name.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`).trim() : 'string');
  if (/amount|price|total|minimum|maximum|valuation|income|worth|investments/i.test(name ?? '')) value = '1000.00';
  if (schema.pattern && !matches(schema.pattern, value)) {
    const digits = /^\^\\d\{(\d+)\}\$$/.exec(schema.pattern);
    if (digits) value = '1'.padStart(Number(digits[1]), '0');
    else value = PATTERN_CANDIDATES.find((candidate) => matches(schema.pattern!, candidate)) ?? value;
  }
  if (schema.minLength && value.length < schema.minLength) value = value.padEnd(schema.minLength, 'x');
  if (schema.maxLength !== undefined && value.length > schema.maxLength) value = value.slice(0, schema.maxLength);
  return value;
}

/**
 * A value that satisfies `schema` (for the shapes our zod schemas produce), preferring an explicit
 * example, then the default, the first enum member, a format's typical value and the lower bound.
 */
export function sampleValue(document: Json, input: Schema | undefined, name?: string, depth = 0): unknown {
  const schema = resolve(document, input);
  if (!schema || depth > 12) return {};
  if (schema.examples?.length) return schema.examples[0];
  if (schema.const !== undefined) return schema.const;
  if (schema.default !== undefined) return schema.default;
  if (schema.enum?.length) return schema.enum[0];
  const union = schema.anyOf ?? schema.oneOf;
  if (union?.length) {
    const branch = union.find((s) => resolve(document, s)?.type !== 'null') ?? union[0];
    return sampleValue(document, branch, name, depth + 1);
  }
  if (schema.allOf?.length) {
    return Object.assign({}, ...schema.allOf.map((part) => sampleValue(document, part, name, depth + 1)));
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const result: Json = {};
      for (const [key, property] of Object.entries(schema.properties ?? {})) {
        result[key] = sampleValue(document, property, key, depth + 1);
      }
      return result;
    }
    case 'array': {
      const count = Math.max(1, schema.minItems ?? 1);
      return Array.from({ length: count }, () => sampleValue(document, schema.items, name, depth + 1));
    }
    case 'string':
      return stringExample(schema, name);
    case 'integer':
    case 'number': {
      if (schema.minimum !== undefined) return schema.minimum;
      if (schema.exclusiveMinimum !== undefined) return schema.exclusiveMinimum + 1;
      return schema.maximum !== undefined ? Math.min(1, schema.maximum) : 1;
    }
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return {};
  }
}

function operationIdFor(method: string, path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((segment) => (segment.startsWith('{') ? `by-${segment.slice(1, -1)}` : segment))
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+|(?=[A-Z])/))
    .filter(Boolean)
    .map((word) => word[0]!.toUpperCase() + word.slice(1).toLowerCase());
  return `${method}${words.join('') || 'Root'}`;
}

const errorRef = (name: string) => ({ $ref: `#/components/responses/${name}` });

function errorResponses(keyserver: boolean): Record<string, Json> {
  const content = (schemaName: string, example: unknown) =>
    keyserver
      ? { [JSONAPI]: { schema: { $ref: '#/components/schemas/JsonApiErrors' }, example } }
      : { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName}` }, example } };
  const describe = (status: number, title: string, code: string, message: string) => ({
    description: title,
    ...(status === 429
      ? { headers: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 0 } } } }
      : {}),
    content: keyserver
      ? content('JsonApiErrors', { errors: [{ title, status: String(status), detail: message }] })
      : content('Error', { success: false, error: { message, code, request_id: 'c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41' } }),
  });
  const suffix = keyserver ? 'JsonApi' : '';
  return {
    [`BadRequest${suffix}`]: describe(400, 'Bad Request', 'VALIDATION_ERROR', 'email: Invalid email address'),
    [`Unauthorized${suffix}`]: describe(401, 'Unauthorized', 'UNAUTHORIZED', 'Missing or invalid credentials'),
    [`Forbidden${suffix}`]: describe(403, 'Forbidden', 'FORBIDDEN', 'Not allowed for this principal'),
    [`NotFound${suffix}`]: describe(404, 'Not Found', 'NOT_FOUND', 'Resource not found'),
    [`Conflict${suffix}`]: describe(409, 'Conflict', 'CONFLICT', 'The resource is not in a state that allows this'),
    [`UnprocessableEntity${suffix}`]: describe(
      422,
      'Unprocessable Entity',
      'IDEMPOTENCY_KEY_REUSED',
      'Idempotency-Key was used with another request body',
    ),
    [`TooManyRequests${suffix}`]: describe(429, 'Too Many Requests', 'RATE_LIMITED', 'Too many requests; retry later'),
    [`ServiceUnavailable${suffix}`]: describe(
      503,
      'Service Unavailable',
      'SERVICE_UNAVAILABLE',
      'The database is unavailable; retry later',
    ),
  };
}

const jsonApiErrorsSchema: Schema = {
  type: 'object',
  description: 'JSON:API error document, as TokenD renders it: the first error sets the HTTP status.',
  required: ['errors'],
  properties: {
    errors: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['title', 'status'],
        properties: {
          title: { type: 'string', examples: ['Bad Request'] },
          status: { type: 'string', examples: ['400'] },
          code: { type: 'string' },
          detail: { type: 'string' },
          meta: { type: 'object', additionalProperties: true },
        },
      },
    },
  },
};

const jsonApiDocumentSchema: Schema = {
  type: 'object',
  description: 'JSON:API document: one resource or a page of them, with links and included resources.',
  properties: {
    data: {
      anyOf: [
        { $ref: '#/components/schemas/JsonApiResource' },
        { type: 'array', items: { $ref: '#/components/schemas/JsonApiResource' } },
        { type: 'null' },
      ],
    },
    included: { type: 'array', items: { $ref: '#/components/schemas/JsonApiResource' } },
    links: { type: 'object', additionalProperties: { type: 'string' } },
    meta: { type: 'object', additionalProperties: true },
  },
};

const jsonApiResourceSchema: Schema = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', examples: ['wallet'] },
    id: { type: 'string', examples: ['a'.repeat(64)] },
    attributes: { type: 'object', additionalProperties: true, examples: [{ email: 'investor@example.com', verified: true }] },
    relationships: { type: 'object', additionalProperties: true },
    links: { type: 'object', additionalProperties: true },
  },
};

const idempotencyKeyParameter = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
  example: '5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94',
};

/** A plausible JSON:API answer for a key server path: its resource type is the path's last noun. */
function jsonApiExample(path: string) {
  const nouns = path.split('/').filter((segment) => segment && !segment.startsWith('{') && segment !== 'v3');
  const type = (nouns.at(-1) ?? 'key_server').replace(/ies$/, 'y').replace(/s$/, '');
  return { data: { type, id: '1', attributes: {} } };
}

function addExample(document: Json, media: { schema?: Schema; example?: unknown; examples?: unknown } | undefined) {
  if (!media?.schema || media.example !== undefined || media.examples !== undefined) return;
  media.example = sampleValue(document, media.schema);
}

/** Drops component schemas nothing refers to (zod's registry holds every named schema, twice: input and output). */
function pruneUnusedSchemas(document: Json, schemas: Record<string, Schema>) {
  for (;;) {
    const text = JSON.stringify({ ...document, components: { ...(document.components as Json), schemas: {} } });
    const referenced = new Set([...text.matchAll(/#\/components\/schemas\/([\w.-]+)/g)].map((m) => m[1]));
    for (const schema of Object.values(schemas)) {
      for (const m of JSON.stringify(schema).matchAll(/#\/components\/schemas\/([\w.-]+)/g)) referenced.add(m[1]);
    }
    const unused = Object.keys(schemas).filter((name) => !referenced.has(name));
    if (unused.length === 0) return;
    for (const name of unused) delete schemas[name];
  }
}

/** Adds everything described at the top of this file to `document` (mutating and returning it). */
export function finishOpenApiDocument<T extends Json>(document: T): T {
  const paths = document.paths as Record<string, Record<string, Operation>>;
  const components = ((document as Json).components ??= {}) as Json & {
    schemas?: Record<string, Schema>;
    responses?: Record<string, Json>;
    securitySchemes?: Record<string, Json>;
  };
  components.schemas = {
    ...components.schemas,
    JsonApiErrors: jsonApiErrorsSchema,
    JsonApiDocument: jsonApiDocumentSchema,
    JsonApiResource: jsonApiResourceSchema,
  };
  const available = { ...errorResponses(false), ...errorResponses(true) };
  const used = new Set<string>();
  components.securitySchemes = {
    ...components.securitySchemes,
    httpSignature: {
      type: 'apiKey',
      in: 'header',
      name: 'Signature',
      description:
        'Key server request signature (draft-cavage HTTP signatures, `algorithm="ed25519-sha256"`, keyId a TokenD account id `G...`) over `(request-target) date digest`; also accepted in `Authorization: Signature ...`. The owner of a resource is a signer of its account, an admin a signer of the master account. Operations that need no signature ignore it.',
    },
  };

  for (const path of Object.keys(paths)) {
    if (path === '/primary-issuance' || path.startsWith('/primary-issuance/')) delete paths[path];
  }
  const seen = new Set<string>();
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const keyserver = operation.tags?.includes(KEYSERVER_TAG) ?? false;
      operation.operationId ??= operationIdFor(method, path);
      if (seen.has(operation.operationId)) operation.operationId = operationIdFor(method, path);
      seen.add(operation.operationId);
      if (keyserver) operation.security ??= [{ httpSignature: [] }, {}];
      else operation.security ??= [];

      if (keyserver && operation.requestBody?.content?.['application/json']) {
        const json = operation.requestBody.content['application/json'];
        operation.requestBody.content = { [JSONAPI]: { ...json }, 'application/json': json };
      }
      for (const media of Object.values(operation.requestBody?.content ?? {})) addExample(document, media);

      const responses = (operation.responses ??= {});
      if (keyserver) {
        if (!Object.keys(responses).some((status) => status.startsWith('2'))) {
          responses['200'] = { description: 'A JSON:API document' };
        }
        for (const [status, response] of Object.entries(responses)) {
          if (!status.startsWith('2') || status === '204' || response.content) continue;
          response.content = {
            [JSONAPI]: { schema: { $ref: '#/components/schemas/JsonApiDocument' }, example: jsonApiExample(path) },
          };
        }
      }
      for (const [status, response] of Object.entries(responses)) {
        if (!status.startsWith('2')) continue;
        for (const media of Object.values(response.content ?? {})) addExample(document, media);
      }

      const suffix = keyserver ? 'JsonApi' : '';
      const secured = keyserver || (operation.security?.length ?? 0) > 0;
      const hasInput = Boolean(operation.requestBody) || (operation.parameters?.length ?? 0) > 0 || method !== 'get';
      const add = (status: string, name: string) => {
        if (responses[status]) return;
        responses[status] = errorRef(`${name}${suffix}`);
        used.add(`${name}${suffix}`);
      };
      if (hasInput) add('400', 'BadRequest');
      if (secured) add('401', 'Unauthorized');
      if (secured) add('403', 'Forbidden');
      if (path.includes('{')) add('404', 'NotFound');
      if (keyserver || RATE_LIMITED.has(`${method} ${path}`)) add('429', 'TooManyRequests');
      add('503', 'ServiceUnavailable');

      if (!keyserver && WRITE_METHODS.has(method) && (operation.security?.length ?? 0) > 0 && !NOT_IDEMPOTENT.has(`${method} ${path}`)) {
        const parameters = (operation.parameters ??= []);
        if (!parameters.some((p) => String(p.name).toLowerCase() === 'idempotency-key')) parameters.push(idempotencyKeyParameter);
        add('422', 'UnprocessableEntity');
      }
    }
  }
  components.responses = {
    ...components.responses,
    ...Object.fromEntries(Object.entries(available).filter(([name]) => used.has(name))),
  };
  pruneUnusedSchemas(document, components.schemas);
  return document;
}
