import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, usingPostgres, type TestApp } from '../support/harness.ts';
import { sample } from '../support/metrics.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

let t: TestApp;
let ok: Receiver;
let failing: Receiver;
const bearer = { authorization: `Bearer ${METRICS_TOKEN}` };

beforeAll(async () => {
  t = await startTestApp({ workerPollMs: 60_000, metricsToken: METRICS_TOKEN });
  ok = await startReceiver();
  failing = await startReceiver();
  failing.respond(() => ({ status: 503, body: 'down' }));
  for (const receiver of [ok, failing]) {
    const created = await t.post('/notifications/webhooks', { url: receiver.url, eventTypes: ['test.ping'] }, { 'x-api-key': t.apiKey });
    expect(created.status).toBe(201);
  }
});
afterAll(async () => {
  await ok.close();
  await failing.close();
  await t.close();
});

const scrape = async () => {
  const response = await t.get('/metrics', bearer);
  expect(response.status).toBe(200);
  return response.text;
};

describe('metrics security: METRICS_TOKEN', () => {
  it('refuses /metrics without the bearer token or with another one, and answers with it', async () => {
    const missing = await t.get('/metrics');
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ success: false, error: { code: 'UNAUTHORIZED' } });
    expect(missing.headers.get('www-authenticate')).toContain('Bearer');
    expect(missing.text).not.toContain('http_request_duration_seconds');
    expect((await t.get('/metrics', { authorization: `Bearer ${METRICS_TOKEN}x` })).status).toBe(401);
    expect((await t.get('/metrics', { authorization: METRICS_TOKEN })).status).toBe(401);
    const answered = await t.get('/metrics', bearer);
    expect(answered.status).toBe(200);
    expect(answered.headers.get('content-type')).toContain('text/plain');
    expect(answered.text).toContain('process_cpu_user_seconds_total');
  });
});

describe('metrics happy: the worker in the same process reports on the server /metrics', () => {
  it('shows the outbox lag, the backlog and the outcomes changing as events are dispatched and delivered', async () => {
    const before = await scrape();
    const succeededBefore = sample(before, 'tranche_webhook_attempts_total', { result: 'succeeded', error_kind: 'none' }) ?? 0;
    const retryingBefore = sample(before, 'tranche_webhook_attempts_total', { result: 'retrying', error_kind: 'http' }) ?? 0;
    const latencyBefore = sample(before, 'tranche_webhook_delivery_latency_seconds_count') ?? 0;

    await t.db.transaction(async (tx) => {
      for (let n = 0; n < 3; n++) await publish(tx, { orgId: t.org.id, type: 'test.ping', data: { n } });
    });
    const committed = await scrape();
    expect(sample(committed, 'tranche_outbox_pending_events')).toBeGreaterThanOrEqual(3);
    expect(sample(committed, 'tranche_outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);

    await t.modules.notifications.dispatcher.fanOut();
    const queued = await scrape();
    expect(sample(queued, 'tranche_outbox_pending_events')).toBe(0);
    expect(sample(queued, 'tranche_outbox_oldest_pending_age_seconds')).toBe(0);
    expect(sample(queued, 'tranche_webhook_backlog_deliveries', { state: 'due' })).toBe(6);
    expect(sample(queued, 'tranche_webhook_backlog_oldest_due_age_seconds')).toBeGreaterThanOrEqual(0);

    while ((await t.modules.notifications.dispatcher.deliverDue()) > 0);
    const delivered = await scrape();
    expect(sample(delivered, 'tranche_webhook_backlog_deliveries', { state: 'due' })).toBe(0);
    expect(sample(delivered, 'tranche_webhook_backlog_deliveries', { state: 'sending' })).toBe(0);
    expect(sample(delivered, 'tranche_webhook_backlog_deliveries', { state: 'scheduled' })).toBe(3);
    expect(sample(delivered, 'tranche_webhook_backlog_oldest_due_age_seconds')).toBe(0);
    expect(sample(delivered, 'tranche_webhook_attempts_total', { result: 'succeeded', error_kind: 'none' })).toBe(succeededBefore + 3);
    expect(sample(delivered, 'tranche_webhook_attempts_total', { result: 'retrying', error_kind: 'http' })).toBe(retryingBefore + 3);
    expect(sample(delivered, 'tranche_webhook_delivery_latency_seconds_count')).toBe(latencyBefore + 3);
    expect(sample(delivered, 'tranche_webhook_attempt_duration_seconds_count')).toBeGreaterThanOrEqual(6);

    // The failed attempts are logged (by the process's one logger), the successful ones are not.
    const failedLines = t.logs
      .join('')
      .split('\n')
      .filter((line) => line.includes('"msg":"webhook attempt failed"'));
    expect(failedLines.length).toBeGreaterThanOrEqual(3);
    expect(failedLines.join('\n')).not.toContain('"n":');
  });

  it('reports the database pool of the process', async () => {
    const text = await scrape();
    if (usingPostgres()) {
      expect(sample(text, 'tranche_db_pool_max_connections')).toBe(t.database.connections().max);
      expect(sample(text, 'tranche_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'tranche_db_pool_connections', { state: 'idle' })).toBeGreaterThanOrEqual(0);
      expect(sample(text, 'tranche_db_pool_connections', { state: 'in_use' })).toBeGreaterThanOrEqual(0);
      expect(sample(text, 'tranche_db_pool_waiting_queries')).toBe(0);
    } else {
      expect(sample(text, 'tranche_db_pool_max_connections')).toBe(1);
      expect(sample(text, 'tranche_db_pool_connections', { state: 'total' })).toBe(1);
      expect(sample(text, 'tranche_db_pool_waiting_queries')).toBeUndefined();
    }
  });
});

describe('request log happy: the completed line names method, route pattern and status', () => {
  it('logs the route pattern, not the URL with its ids, and `unmatched` for unknown routes', async () => {
    const id = randomUUID();
    const found = await t.get(`/notifications/webhooks/${id}?limit=5`, { 'x-api-key': t.apiKey });
    expect(found.status).toBe(404);
    const missing = await t.get('/no/such/route');
    expect(missing.status).toBe(404);

    const completed = t.logs
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string; reqId: string; res?: Record<string, unknown>; responseTime?: number })
      .filter((line) => line.msg === 'request completed');
    const forRoute = completed.find((line) => line.reqId === found.headers.get('x-request-id'));
    expect(forRoute?.res).toEqual({ method: 'GET', route: '/notifications/webhooks/:id', statusCode: 404 });
    expect(typeof forRoute?.responseTime).toBe('number');
    expect(JSON.stringify(forRoute)).not.toContain(id);
    const forMissing = completed.find((line) => line.reqId === missing.headers.get('x-request-id'));
    expect(forMissing?.res).toEqual({ method: 'GET', route: 'unmatched', statusCode: 404 });
  });
});
