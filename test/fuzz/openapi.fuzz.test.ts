import http from 'node:http';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedOffering } from '../support/issuance.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

/**
 * Walks every operation of the served OpenAPI document with a generated corpus (bad types, NUL,
 * huge integers, over-long strings, bad percent-encoding, missing, empty and null bodies, plus
 * values built from each operation's own schema), as every kind of caller. Fails on any answer of
 * 500 or more, and on any error body outside the route's documented envelope: ours
 * (`{ success: false, error: { code, message } }`) for Rialto routes, OAuth2 for the token routes,
 * JSON:API (`{ errors: [{ status, title }] }`) for the key server at the root.
 *
 * Reproduce a failure with the printed seed: FUZZ_SEED=<seed> npx vitest run test/fuzz
 * (FUZZ_RUNS sets the requests per operation).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_130);
const RUNS = Number(process.env.FUZZ_RUNS ?? 12);

type Schema = {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  default?: unknown;
};
type Parameter = { in: 'path' | 'query' | 'header'; name: string; required?: boolean; schema?: Schema };
type Operation = { method: string; path: string; parameters: Parameter[]; body?: Schema; security: string[] };
type Caller = 'none' | 'investor' | 'orgAdmin' | 'platformAdmin' | 'apiKey' | 'signer' | 'owner';
type BodyMode = 'none' | 'emptyJson' | 'invalidJson' | 'null' | 'array';
type Fault = 'none' | 'caller' | 'path' | 'query' | 'body' | 'field';
type Sample = {
  fault: Fault;
  caller: Caller;
  anyCaller: Caller;
  params: Record<string, string>;
  badParam: [string, string];
  query: [string, string][];
  badQuery: [string, string];
  badBody: BodyMode;
  body: unknown;
  mutation: [string, unknown];
};
type HeadersFor = (caller: Caller, method: string, target: string) => Record<string, string>;

const KEY_SERVER_PREFIXES = ['/identity', '/notifications', '/issuance', '/primary-issuance', '/admin', '/demo-idp', '/storage'];
const isKeyServer = (path: string) => !KEY_SERVER_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
const isTokenRoute = (path: string) => path.startsWith('/identity/auth/');

/** Strings that have broken servers: NUL, huge numbers, dots, over-long and oddly encoded text. */
const nastyStrings = [
  '\u0000',
  'a\u0000b',
  '2147483648',
  '9223372036854775808',
  '99999999999999999999999',
  '-1',
  '0',
  '1.5',
  '1e309',
  'NaN',
  '..',
  '.',
  '',
  ' ',
  'x'.repeat(600),
  'null',
  'true',
  '[]',
  '{}',
  '😀\ud800',
  "' or 1=1 --",
  '00000000-0000-0000-0000-000000000000',
  'GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF',
];
const nastyJson: unknown[] = [
  null,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53 + 2,
  -(2 ** 31) - 1,
  -1,
  0,
  1.5,
  1e308,
  true,
  {},
  [],
  [null],
  { a: { b: { c: null } } },
  'x'.repeat(20_000),
  ...nastyStrings,
];
/** Raw (unencoded) path and query pieces: bad percent-encoding. */
const rawBadEncodings = ['%', '%zz', '%E0%A4%A', '%C0%AE%C0%AE', '%00', '%ff%fe'];

/** Percent-encodes the UTF-8 bytes of any string (lone surrogates included, as U+FFFD). */
const encode = (value: string) =>
  [...Buffer.from(value, 'utf8')]
    .map((byte) =>
      /[\w.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0').toUpperCase()}`,
    )
    .join('');

function pick<T>(values: readonly T[]): fc.Arbitrary<T> {
  return fc.constantFrom(...values);
}

/** A value the schema accepts (mostly), to reach the code behind validation. */
function fromSchema(schema: Schema | undefined, pools: Pools, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 6) return fc.constant('x');
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return pick(schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union?.length) return fc.oneof(...union.map((part) => fromSchema(part, pools, depth + 1)));
  if (schema.allOf?.length) return fromSchema(schema.allOf[0], pools, depth + 1);
  const type = Array.isArray(schema.type) ? (schema.type.find((entry) => entry !== 'null') ?? 'null') : schema.type;
  switch (type) {
    case 'object': {
      const properties = Object.entries(schema.properties ?? {});
      if (properties.length === 0) return fc.constant({});
      return fc.record(Object.fromEntries(properties.map(([name, part]) => [name, fromSchema(part, pools, depth + 1)])));
    }
    case 'array':
      return fc.array(fromSchema(schema.items, pools, depth + 1), { minLength: 1, maxLength: 2 });
    case 'integer':
    case 'number':
      return fc.integer({
        min: Math.max(schema.minimum ?? 0, -(2 ** 31)),
        max: Math.min(schema.maximum ?? 1_000, 2 ** 31 - 1),
      });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'string':
      return stringFor(schema, pools);
    default:
      return fc.oneof(fc.string(), fc.integer(), fc.constant({}));
  }
}

function stringFor(schema: Schema, pools: Pools): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return fc.oneof(pick(pools.uuids), fc.uuid({ version: 4 }));
  if (schema.format === 'email')
    return fc.oneof(pick(['fuzz@example.com', 'admin@example.com', 'Investor@Example.com']), fc.emailAddress());
  if (schema.format === 'uri') return pick(['https://example.com/hook', 'http://127.0.0.1:9/hook', 'ftp://x']);
  if (schema.format === 'date-time') return pick(['2026-01-01T00:00:00Z', new Date().toISOString()]);
  if (schema.format === 'date') return pick(['2027-12-31', '2026-02-30']);
  if (schema.pattern) {
    return fc.oneof(
      { weight: 3, arbitrary: fc.stringMatching(new RegExp(schema.pattern)).filter((value) => value.length <= (schema.maxLength ?? 300)) },
      { weight: 1, arbitrary: pick(pools.patterned) },
    );
  }
  const min = schema.minLength ?? 0;
  const max = Math.min(schema.maxLength ?? 40, 60);
  return fc.oneof(pick(pools.strings), fc.string({ minLength: min, maxLength: Math.max(min, max) }));
}

type Pools = { uuids: string[]; strings: string[]; patterned: string[]; pathValues: Record<string, string[]> };

/** Dotted paths of every property the body schema names, for targeted mutation. */
function fieldPaths(schema: Schema | undefined, prefix: string[] = [], depth = 0): string[][] {
  if (!schema || depth > 6) return [];
  const union = schema.anyOf ?? schema.oneOf;
  const parts = [schema, ...(union ?? [])];
  return parts.flatMap((part) =>
    Object.entries(part.properties ?? {}).flatMap(([name, child]) => [
      [...prefix, name],
      ...fieldPaths(child, [...prefix, name], depth + 1),
    ]),
  );
}

function mutate(body: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy: Record<string, unknown> = body && typeof body === 'object' && !Array.isArray(body) ? { ...body } : {};
  copy[path[0]!] = mutate(copy[path[0]!], path.slice(1), value);
  return copy;
}

function operationsOf(document: { paths: Record<string, Record<string, any>> }): Operation[] {
  const order = ['get', 'head', 'post', 'put', 'patch', 'delete'];
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!order.includes(method)) continue;
      operations.push({
        method: method.toUpperCase(),
        path,
        parameters: (operation.parameters ?? []) as Parameter[],
        body: operation.requestBody?.content?.['application/json']?.schema as Schema | undefined,
        security: ((operation.security ?? []) as Record<string, string[]>[]).flatMap((entry) => Object.keys(entry)),
      });
    }
  }
  // Deletions last, so the rest run against live data.
  return operations.sort((a, b) => order.indexOf(a.method.toLowerCase()) - order.indexOf(b.method.toLowerCase()));
}

/** One request: valid-ish everywhere but (usually) one fault, so faults reach the code behind the others. */
function sampleArbitrary(operation: Operation, pools: Pools): fc.Arbitrary<Sample> {
  const keyServer = isKeyServer(operation.path);
  const documented: Caller[] = operation.security.flatMap((scheme): Caller[] =>
    scheme === 'bearer' ? ['investor', 'orgAdmin'] : scheme === 'adminKey' ? ['platformAdmin'] : scheme === 'apiKey' ? ['apiKey'] : [],
  );
  const anyCaller: Caller[] = keyServer ? ['none', 'signer', 'owner'] : ['none', 'investor', 'orgAdmin', 'platformAdmin', 'apiKey'];
  const usual: Caller[] = keyServer ? ['signer', 'signer', 'owner'] : documented.length ? documented : anyCaller;
  const pathParams = operation.parameters.filter((parameter) => parameter.in === 'path');
  const queryParams = operation.parameters.filter((parameter) => parameter.in === 'query');
  const fields = fieldPaths(operation.body);
  const faults: Fault[] = ['none', 'none', 'caller', 'query', 'query'];
  if (pathParams.length) faults.push('path', 'path');
  if (operation.body) faults.push('body', 'field', 'field', 'field', 'field');
  else faults.push('body');
  const badPathValue = fc.oneof(
    { weight: 4, arbitrary: pick(nastyStrings).map(encode) },
    { weight: 2, arbitrary: pick(rawBadEncodings) },
    { weight: 1, arbitrary: fc.constant('9'.repeat(700)) },
    { weight: 1, arbitrary: fc.uuid({ version: 4 }) },
  );
  return fc.record({
    fault: pick(faults),
    caller: pick(usual),
    anyCaller: pick(anyCaller),
    params: fc.record(
      Object.fromEntries(
        pathParams.map((parameter) => [parameter.name, pick(pools.pathValues[parameter.name] ?? pools.pathValues.default!)]),
      ),
    ),
    badParam: fc.tuple(pathParams.length ? pick(pathParams.map((parameter) => parameter.name)) : fc.constant(''), badPathValue),
    query: fc
      .tuple(
        ...queryParams.map((parameter) =>
          fc.option(
            fromSchema(parameter.schema, pools).map((value) => [parameter.name, String(value)] as [string, string]),
            { nil: undefined, freq: 2 },
          ),
        ),
      )
      .map((entries) => entries.filter((entry): entry is [string, string] => entry !== undefined)),
    badQuery: fc.tuple(
      pick([...queryParams.map((parameter) => parameter.name), 'q']),
      fc.oneof(pick(nastyStrings).map(encode), pick(rawBadEncodings)),
    ),
    badBody: pick<BodyMode>(operation.body ? ['none', 'emptyJson', 'invalidJson', 'null', 'array'] : ['emptyJson', 'invalidJson', 'null']),
    body: operation.body ? fromSchema(operation.body, pools) : fc.constant(undefined),
    mutation: fc.tuple(
      fields.length ? pick(fields.map((path) => path.join('\u0001'))) : fc.constant(''),
      fc.oneof(pick(nastyJson), fc.string({ unit: 'binary', maxLength: 30 })),
    ),
  });
}

/** The method, target (path and query, already encoded), headers and body a sample stands for. */
function requestOf(operation: Operation, sample: Sample, headersFor: HeadersFor) {
  const params = { ...sample.params };
  if (sample.fault === 'path' && sample.badParam[0]) params[sample.badParam[0]] = sample.badParam[1];
  const path = operation.path.replace(/\{(\w+)\}/g, (_match, name: string) => params[name] ?? 'x');
  const pieces = sample.query.map(([name, value]) => `${encode(name)}=${encode(value)}`);
  if (sample.fault === 'query') pieces.push(`${encode(sample.badQuery[0])}=${sample.badQuery[1]}`);
  const target = pieces.length ? `${path}?${pieces.join('&')}` : path;
  const caller = sample.fault === 'caller' ? sample.anyCaller : sample.caller;
  const headers: Record<string, string> = { ...headersFor(caller, operation.method, target) };
  let body: string | undefined = sample.body === undefined ? undefined : JSON.stringify(sample.body);
  if (sample.fault === 'field') {
    const [field, value] = sample.mutation;
    body = JSON.stringify(mutate(sample.body, field ? field.split('\u0001') : [], value));
  }
  if (sample.fault === 'body') body = { none: undefined, emptyJson: '', invalidJson: '{"a":', null: 'null', array: '[]' }[sample.badBody];
  if (body !== undefined) headers['content-type'] = 'application/json';
  return { target, caller, headers, body };
}

type Sent = { status: number; text: string; contentType: string };

function send(base: URL, method: string, target: string, headers: Record<string, string>, body?: string): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: target,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            text: Buffer.concat(chunks).toString(),
            contentType: String(response.headers['content-type'] ?? ''),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** Why an error body is outside the route's documented envelope, or undefined when it is inside. */
function envelopeProblem(path: string, sent: Sent): string | undefined {
  if (sent.status < 400) return undefined;
  let body: any;
  try {
    body = JSON.parse(sent.text);
  } catch {
    return 'error body is not JSON';
  }
  if (isKeyServer(path)) {
    const first = Array.isArray(body?.errors) ? body.errors[0] : undefined;
    if (!first || typeof first.title !== 'string' || first.status !== String(sent.status)) return 'not a JSON:API error document';
    return undefined;
  }
  if (isTokenRoute(path) && typeof body?.error === 'string' && typeof body?.error_description === 'string') return undefined;
  if (body?.success !== false || typeof body?.error?.code !== 'string' || typeof body?.error?.message !== 'string') {
    return 'not the { success: false, error: { code, message } } envelope';
  }
  return undefined;
}

let t: TestApp;
let operations: Operation[];
let pools: Pools;
let headersFor: HeadersFor;

beforeAll(async () => {
  const defaults = loadConfig({});
  t = await startTestApp({
    exchangeRateLimitPerMinute: 1_000_000,
    keyserver: { ...defaults.keyserver, rateLimitPerMinute: 1_000_000 },
  });
  const client = await tokendClient(t);
  const investor = await t.signIn('investor@example.com');
  const orgAdmin = await t.signIn('admin@example.com');
  const adminKey = await t.modules.identity.orgs.createAdminKey();
  const platform = { 'x-admin-key': adminKey.key };
  const kyc = await t.post('/identity/kyc-verifications', johnSmith, investor.auth);
  const accreditation = await t.get('/identity/accreditations', investor.auth);
  const offering = await seedOffering(t, orgAdmin.auth);
  const webhook = await t.post('/notifications/webhooks', { url: 'https://example.com/hook' }, orgAdmin.auth);
  const wallet = await client.signUp('wallet@example.com', 'correct horse');

  const uuids = [
    investor.userId,
    orgAdmin.userId,
    kyc.body.data.verification_id,
    accreditation.body.data.id,
    offering.offeringId,
    offering.securityId,
    offering.issuerId,
    webhook.body.data.id,
    randomUUID(),
  ].filter((id): id is string => typeof id === 'string');
  pools = {
    uuids,
    strings: ['fuzz', 'Acme', 'income', 'wallet@example.com', wallet.accountId, wallet.id, client.admin.accountId()],
    patterned: [
      'GA',
      'USA',
      '30318',
      '112223333',
      '3333',
      '02',
      '28',
      '1975',
      '4045551212',
      '+14045551212',
      '100.00',
      '0123456789',
      wallet.accountId,
      wallet.id,
    ],
    pathValues: {
      default: [...uuids, wallet.id, wallet.accountId, '1', 'tfa'],
      userId: [investor.userId, orgAdmin.userId],
      walletId: [wallet.id],
      address: [wallet.accountId, client.admin.accountId()],
      accountId: [wallet.accountId, client.admin.accountId()],
      factorId: ['1', '2', '3'],
      identifier: [wallet.accountId, 'wallet@example.com'],
      sessionId: uuids,
      blobId: ['1', wallet.id],
    },
  };
  headersFor = (caller, method, target) => {
    switch (caller) {
      case 'investor':
        return investor.auth;
      case 'orgAdmin':
        return orgAdmin.auth;
      case 'platformAdmin':
        return platform;
      case 'apiKey':
        return { 'x-api-key': t.apiKey };
      case 'signer':
        return signedHeaders(client.admin, method, target);
      case 'owner':
        return { ...signedHeaders(wallet.keypair, method, target), 'account-id': wallet.accountId };
      default:
        return {};
    }
  };
  operations = operationsOf((await t.get('/openapi.json')).body);
}, 120_000);
afterAll(() => t?.close());

describe('fuzz: every operation of the OpenAPI document', () => {
  it('answers generated requests below 500 and in the documented envelope', { timeout: 600_000 }, async () => {
    console.info(`fuzz seed ${SEED}, ${RUNS} requests per operation (FUZZ_SEED, FUZZ_RUNS to change)`);
    expect(operations.length).toBeGreaterThan(60);
    const base = new URL(t.url);
    const failures = new Map<string, string>();
    const statuses = new Map<number, number>();
    for (const [index, operation] of operations.entries()) {
      const samples = fc.sample(sampleArbitrary(operation, pools), { seed: SEED + index, numRuns: RUNS });
      for (const sample of samples) {
        const { target, caller, headers, body } = requestOf(operation, sample, headersFor);
        const sent = await send(base, operation.method, target, headers, body);
        statuses.set(sent.status, (statuses.get(sent.status) ?? 0) + 1);
        const problem = sent.status >= 500 ? `answered ${sent.status}` : envelopeProblem(operation.path, sent);
        if (problem) {
          const key = `${operation.method} ${operation.path}: ${problem}`;
          const shown = target.length > 160 ? `${target.slice(0, 160)}…` : target;
          if (!failures.has(key))
            failures.set(
              key,
              `${operation.method} ${shown} as ${caller}, body ${body?.slice(0, 200)} -> ${sent.status} ${sent.text.slice(0, 200)}`,
            );
        }
      }
    }
    console.info(`fuzz: ${operations.length} operations, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    const report = [...failures.entries()].map(([key, example]) => `${key}\n    e.g. ${example}`);
    expect(report, `fuzz seed ${SEED}: ${report.length} kinds of failure`).toEqual([]);
  });
});
