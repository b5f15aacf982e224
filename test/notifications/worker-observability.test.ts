import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { EXHAUSTED_MESSAGE, FAILED_ATTEMPT_MESSAGE } from '../../src/notifications/delivery-observer.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { sample } from '../support/metrics.ts';
import { freePort, fromSource, startServer, testDeployment, type Deployment, type Running } from '../support/process.ts';
import { webhookOrg } from '../support/webhook-deployment.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

const METRICS_TOKEN = 'worker-metrics-token-0123456789';
const PAYLOAD_MARKER = 'payload-marker-7f3a9c';
const QUERY_SECRET = 'query-secret-51d0e2';
const EVENTS = 2;
const bearer = { authorization: `Bearer ${METRICS_TOKEN}` };

/** Polls `check` every 200 ms until it holds or `timeoutMs` (generous: the machine may be loaded) passes. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

type LogLine = Record<string, unknown> & { level: number; msg: string };
const logLines = (output: string): LogLine[] =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

describe('worker observability: its own health and metrics port, one log line per failed attempt', () => {
  let deployment: Deployment;
  let ok: Receiver;
  let failing: Receiver;
  let failingEndpointId: string;
  let signingSecret: string;
  let worker: Running | undefined;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    deployment = await testDeployment('observe', {
      LOG_LEVEL: 'info',
      ALLOW_INSECURE_HTTP: 'true',
      WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
      WORKER_POLL_MS: '100',
      // One retry, soon: each failing delivery makes two attempts, the second final.
      WEBHOOK_RETRY_SCHEDULE_SECONDS: '0.2',
      HOST: '127.0.0.1',
      WORKER_HTTP_PORT: String(port),
      METRICS_TOKEN,
    });
    ok = await startReceiver();
    failing = await startReceiver();
    failing.respond(() => ({ status: 500, body: 'receiver is down' }));

    const config = loadConfig(deployment.env);
    const database = await openDatabase(config);
    await database.migrate();
    const modules = createModules({ config, database, keyring: deployment.keyring() });
    const { org, principal } = await webhookOrg(modules, 'Observe');
    await modules.notifications.endpoints.create(principal, { url: `${ok.url}/hook`, eventTypes: ['test.ping'] });
    const created = await modules.notifications.endpoints.create(principal, {
      url: `${failing.url}/hook?token=${QUERY_SECRET}`,
      eventTypes: ['test.ping'],
    });
    failingEndpointId = created.id;
    signingSecret = created.signingSecret;
    await database.db.transaction(async (tx) => {
      for (let n = 0; n < EVENTS; n++) await publish(tx, { orgId: org.id, type: 'test.ping', data: { marker: PAYLOAD_MARKER, n } });
    });
    await modules.notifications.close();
    await database.close();
  }, 240_000);

  afterAll(async () => {
    await worker?.stop();
    await ok?.close();
    await failing?.close();
    await deployment?.dispose();
  });

  it('answers health on WORKER_HTTP_PORT, metrics only with the token, and counts the deliveries there', async () => {
    worker = await startServer([...fromSource, 'serve', '--role', 'worker'], deployment.env, port, '/health/ready');
    const url = worker.url;
    const live = await fetch(`${url}/health/live`);
    expect(live.status).toBe(200);
    expect(await live.json()).toMatchObject({ success: true, data: { status: 'ok' } });
    const ready = await fetch(`${url}/health/ready`);
    expect(await ready.json()).toMatchObject({ data: { status: 'ready', checks: { database: 'ok' } } });
    // The worker serves no API and no docs.
    expect((await fetch(`${url}/notifications/webhooks`)).status).toBe(404);
    expect((await fetch(`${url}/openapi.json`)).status).toBe(404);

    const refused = await fetch(`${url}/metrics`);
    expect(refused.status).toBe(401);
    expect(await refused.text()).not.toContain('tranche_');

    let text = '';
    await eventually(async () => {
      const response = await fetch(`${url}/metrics`, { headers: bearer });
      text = await response.text();
      return (
        response.status === 200 &&
        (sample(text, 'tranche_webhook_attempts_total', { result: 'exhausted', error_kind: 'http' }) ?? 0) >= EVENTS &&
        (sample(text, 'tranche_webhook_attempts_total', { result: 'succeeded', error_kind: 'none' }) ?? 0) >= EVENTS
      );
    });
    expect(sample(text, 'tranche_webhook_attempts_total', { result: 'retrying', error_kind: 'http' })).toBe(EVENTS);
    expect(sample(text, 'tranche_webhook_delivery_latency_seconds_count')).toBe(EVENTS);
    expect(sample(text, 'tranche_webhook_backlog_deliveries', { state: 'due' })).toBe(0);
    expect(sample(text, 'tranche_webhook_backlog_deliveries', { state: 'scheduled' })).toBe(0);
    expect(sample(text, 'tranche_outbox_pending_events')).toBe(0);
    expect(sample(text, 'tranche_job_runs_total', { job: 'webhook_dispatch', result: 'ok' })).toBeGreaterThan(0);
    expect(sample(text, 'tranche_db_pool_max_connections')).toBeGreaterThanOrEqual(1);
    expect(ok.received.length).toBe(EVENTS);
  }, 420_000);

  it('logged each failed attempt once, with its fields and without the payload, the URL query or the secret', async () => {
    expect(worker).toBeDefined();
    const exit = await worker!.stop();
    worker = undefined;
    const output = exit.stdout + exit.stderr;
    expect(output).not.toContain(PAYLOAD_MARKER);
    expect(output).not.toContain(QUERY_SECRET);
    expect(output).not.toContain(signingSecret);
    expect(output).not.toContain(signingSecret.replace(/^whsec_/, ''));

    const failed = logLines(output).filter((line) => line.msg === FAILED_ATTEMPT_MESSAGE || line.msg === EXHAUSTED_MESSAGE);
    expect(failed).toHaveLength(EVENTS * 2);
    const byDelivery = new Map<string, LogLine[]>();
    for (const line of failed) byDelivery.set(line.deliveryId as string, [...(byDelivery.get(line.deliveryId as string) ?? []), line]);
    expect(byDelivery.size).toBe(EVENTS);
    for (const lines of byDelivery.values()) {
      const [first, last] = [...lines].sort((a, b) => (a.attempt as number) - (b.attempt as number));
      const common = {
        endpointId: failingEndpointId,
        endpointHost: new URL(failing.url).host,
        eventType: 'test.ping',
        statusCode: 500,
        errorKind: 'http',
        error: 'HTTP 500',
      };
      expect(first).toMatchObject({ ...common, level: 40, msg: FAILED_ATTEMPT_MESSAGE, attempt: 1, outcome: 'retrying' });
      expect(Date.parse(first!.nextAttemptAt as string)).not.toBeNaN();
      expect(last).toMatchObject({ ...common, level: 50, msg: EXHAUSTED_MESSAGE, attempt: 2, outcome: 'exhausted', nextAttemptAt: null });
      for (const line of [first!, last!]) {
        expect(typeof line.durationMs).toBe('number');
        expect(line.eventId).toEqual(expect.any(String));
        expect(Object.keys(line)).not.toContain('payload');
        expect(Object.keys(line)).not.toContain('url');
      }
    }
    // Successful attempts leave no line.
    expect(logLines(output).filter((line) => line.endpointId && line.endpointId !== failingEndpointId)).toHaveLength(0);
  }, 120_000);
});

describe('metrics security: METRICS_PORT moves /metrics off the API port', () => {
  let deployment: Deployment;
  let api: Running | undefined;

  afterAll(async () => {
    await api?.stop();
    await deployment?.dispose();
  });

  it('the API port answers /metrics 404; the metrics port answers it with the token only', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    deployment = await testDeployment('metrics-port', {
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      DEMO_IDP: 'false',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      METRICS_TOKEN,
    });
    api = await startServer([...fromSource, 'serve', '--role', 'api'], deployment.env, port, '/health/ready');
    expect((await fetch(`${api.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${api.url}/metrics`, { headers: bearer })).status).toBe(404);

    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    expect((await fetch(metricsUrl)).status).toBe(401);
    expect((await fetch(metricsUrl, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const answered = await fetch(metricsUrl, { headers: bearer });
    expect(answered.status).toBe(200);
    const text = await answered.text();
    // The API's own requests are counted in the one registry the metrics port serves.
    expect(sample(text, 'http_request_duration_seconds_count', { method: 'GET', route: '/health/live', status_code: '200' })).toBe(1);
    expect(text).toContain('tranche_outbox_pending_events');
    // The metrics listener serves nothing else.
    expect((await fetch(`http://127.0.0.1:${metricsPort}/health/ready`)).status).toBe(404);
  }, 300_000);
});
