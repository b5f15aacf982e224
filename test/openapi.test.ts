import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { named, requestExamples } from '../src/openapi-components.ts';
import { crossFieldErrors } from '../src/identity/pii/pii.schemas.ts';
import { startTestApp, type TestApp } from './support/harness.ts';

const root = new URL('..', import.meta.url).pathname;
const committed = JSON.parse(fs.readFileSync(`${root}openapi.json`, 'utf8'));
type Operation = { operationId: string; security?: unknown[]; parameters?: any[]; requestBody?: any; responses: Record<string, any> };
const operations = () =>
  Object.entries(committed.paths as Record<string, Record<string, Operation>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ path, method, operation })),
  );

describe('openapi document', () => {
  let app: TestApp;
  beforeAll(async () => {
    // The settings the committed document is generated with (src/openapi.ts).
    app = await startTestApp({ publicUrl: 'http://localhost:3000', demoIdp: true });
  });
  afterAll(() => app.close());

  it('the served document is the committed openapi.json (run `npm run openapi` after changing a route)', async () => {
    const served = (await app.get('/openapi.json')).body;
    expect(served).toEqual(committed);
  });

  it('Redocly lint (recommended rules, redocly.yaml) reports no problem', async () => {
    const { stdout } = await promisify(execFile)(
      `${root}node_modules/.bin/redocly`,
      ['lint', 'openapi.json', '--format=json', '--max-problems=1000'],
      { cwd: root, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: { message: string }[] };
    expect(report.problems.map((problem) => problem.message)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 120_000);

  it('every operation has a unique operationId, explicit security and a 4xx or 5xx answer', () => {
    const ids = operations().map(({ operation }) => operation.operationId);
    expect(ids.every((id) => /^[a-z][A-Za-z0-9]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { operation } of operations()) {
      expect(operation.security).toBeDefined();
      expect(Object.keys(operation.responses).some((status) => /^[45]/.test(status))).toBe(true);
    }
    expect(ids.length).toBeGreaterThan(100);
  });

  it('names its schemas, and request examples pass the routes own validation, cross-field rules included', () => {
    for (const name of ['Offering', 'Subscription', 'User', 'TokenResponse', 'Error', 'JsonApiDocument', 'JsonApiErrors']) {
      expect(committed.components.schemas).toHaveProperty(name);
    }
    for (const [schema, id] of named) {
      const example = requestExamples[id];
      if (example === undefined) continue;
      const parsed = schema.safeParse(example);
      expect(parsed.error?.issues ?? [], id).toEqual([]);
    }
    expect(crossFieldErrors(requestExamples.CreatePiiRequest as never)).toEqual([]);
    const pii = committed.paths['/identity/user-pii'].post.requestBody.content['application/json'].example;
    expect(pii).toMatchObject({ dobMonth: '07', email: 'ada@example.com' });
  });

  it('every operation with a body or a JSON answer shows an example', () => {
    const missing = operations()
      .filter(({ operation }) => {
        const media = [
          ...Object.values(operation.requestBody?.content ?? {}),
          ...Object.entries(operation.responses)
            .filter(([status]) => status.startsWith('2'))
            .flatMap(([, response]) => Object.values(response.content ?? {})),
        ] as { schema?: unknown; example?: unknown }[];
        return media.some((m) => m.schema && m.example === undefined);
      })
      .map(({ method, path }) => `${method} ${path}`);
    expect(missing).toEqual([]);
  });

  it('key server operations: JSON:API answers and errors, the signature scheme, 429', () => {
    const factors = committed.paths['/wallets/{walletId}/factors'].get as Operation;
    expect(factors.security).toEqual([{ httpSignature: [] }, {}]);
    expect(factors.responses['200'].content['application/vnd.api+json'].schema).toEqual({ $ref: '#/components/schemas/JsonApiDocument' });
    expect(factors.responses['429']).toEqual({ $ref: '#/components/responses/TooManyRequestsJsonApi' });
    expect(committed.components.securitySchemes.httpSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'Signature' });
  });

  it('writes document Idempotency-Key and 422; the token exchange documents 429 with Retry-After', () => {
    const create = committed.paths['/admin/offerings'].post as Operation;
    expect(create.parameters?.some((p) => p.name === 'Idempotency-Key' && p.in === 'header')).toBe(true);
    expect(create.responses['422']).toBeDefined();
    const exchange = committed.paths['/identity/auth/exchange'].post as Operation;
    expect(exchange.parameters ?? []).not.toContainEqual(expect.objectContaining({ name: 'Idempotency-Key' }));
    expect(exchange.responses['429']).toBeDefined();
    expect(committed.paths['/identity/auth/refresh'].post.responses['429']).toBeDefined();
    expect(committed.components.responses.TooManyRequestsJsonApi.headers).toHaveProperty('Retry-After');
    expect(Object.keys(committed.paths).some((path) => path.startsWith('/primary-issuance'))).toBe(false);
  });
});
