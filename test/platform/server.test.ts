import { Writable } from 'node:stream';
import { count, sql } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../../src/platform/events/outbox.ts';
import { loggerOptions } from '../../src/platform/observability/logging.ts';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('service info, health and docs', () => {
  it('GET /identity/ describes the service', async () => {
    const response = await t.get('/identity/');
    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ service: 'identity', version: '0.1.0', docs_url: '/docs' });
  });

  it('GET /identity/health checks the database', async () => {
    expect((await t.get('/identity/health')).body).toEqual({ success: true, data: { status: 'ok', checks: { database: 'ok' } } });
  });

  it('publishes an OpenAPI 3.1 document listing the identity routes and a docs page', async () => {
    const document = await t.get('/openapi.json');
    expect(document.body.openapi).toBe('3.1.0');
    expect(Object.keys(document.body.paths)).toEqual(
      expect.arrayContaining(['/identity/auth/exchange', '/identity/users/{userId}', '/identity/user-pii', '/identity/user-pii/{userId}']),
    );
    const docs = await fetch(`${t.url}/docs`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger');
  });

  it('exposes Prometheus metrics with per-route durations', async () => {
    await t.get('/identity/health');
    const metrics = await t.get('/metrics');
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(metrics.text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/identity\/health",status_code="200"\} \d+/);
    expect(metrics.text).toContain('process_cpu_user_seconds_total');
  });
});

describe('conventions', () => {
  it('echoes a valid x-request-id and makes one up otherwise', async () => {
    expect((await t.get('/identity/health', { 'x-request-id': 'trace-123' })).headers.get('x-request-id')).toBe('trace-123');
    expect((await t.get('/identity/health', { 'x-request-id': 'bad id with spaces' })).headers.get('x-request-id')).toMatch(
      /^[0-9a-f-]{36}$/,
    );
  });

  it('answers unknown routes with the error envelope', async () => {
    const response = await t.get('/identity/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ success: false, error: { code: 'NOT_FOUND' } });
  });

  it('answers malformed JSON and wrong content types with clear errors', async () => {
    const me = await t.signIn('conventions@example.com');
    const malformed = await t.request('PATCH', `/identity/users/${me.userId}`, {
      rawBody: '{',
      headers: { ...me.auth, 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'body' });
    const wrongType = await t.request('PATCH', `/identity/users/${me.userId}`, {
      rawBody: 'a=b',
      headers: { ...me.auth, 'content-type': 'text/csv' },
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses bodies over the limit with 413', async () => {
    const me = await t.signIn('big@example.com');
    const response = await t.post('/identity/user-pii', { firstName: 'x'.repeat(1_100_000), lastName: 'y' }, me.auth);
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });
});

describe('outbox', () => {
  it('keeps an event only when the publishing transaction commits', async () => {
    const countEvents = async () => (await t.db.select({ n: count() }).from(outboxEvents))[0]!.n;
    const before = await countEvents();
    await t.db
      .transaction(async (tx) => {
        await publish(tx, { orgId: t.org.id, type: 'test.ping', data: { n: 1 } });
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(await countEvents()).toBe(before);
    const id = await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'test.ping', data: { n: 2 } }));
    const [row] = await t.db
      .select()
      .from(outboxEvents)
      .where(sql`${outboxEvents.id} = ${id}`);
    expect(row).toMatchObject({ type: 'test.ping', orgId: t.org.id, data: { n: 2 } });
  });
});

describe('log redaction', () => {
  it('censors PII and credentials wherever they sit in a log object', () => {
    const lines: string[] = [];
    const logger = pino(
      loggerOptions('info'),
      new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }),
    );
    logger.info({
      ssn: '111223333',
      body: { firstName: 'Zed', nested: { lastName: 'Ox' } },
      req: { headers: { authorization: 'Bearer abc', 'x-api-key': 'rialto_ak_x' } },
    });
    const line = lines.join('');
    for (const secret of ['111223333', 'Zed', 'Bearer abc', 'rialto_ak_x']) expect(line).not.toContain(secret);
    expect(line).toContain('[redacted]');
  });
});
