import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { LISTENER_APPLICATION_NAME } from '../../src/platform/db/database.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, usingPostgres, type ApiResponse, type TestApp } from '../support/harness.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns true or `timeoutMs` passes; returns whether it did. */
async function eventually(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return true;
    await sleep(100);
  }
  return false;
}

/** Terminates every backend of the app's own test database (never another helper's, never the server). */
async function terminateBackends(databaseUrl: string, where = 'true'): Promise<number> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and ${where}`,
    );
    return rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

function expectDatabaseUnavailable(response: ApiResponse) {
  expect(response.status).toBe(503);
  expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(response.body).toMatchObject({ success: false, error: { code: 'DATABASE_UNAVAILABLE' } });
}

describe('health happy', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('liveness answers without the database, readiness checks it and the migrations', async () => {
    expect((await t.get('/health/live')).body).toEqual({ success: true, data: { status: 'ok' } });
    expect((await t.get('/health/ready')).body).toEqual({
      success: true,
      data: { status: 'ready', checks: { database: 'ok', migrations: 'ok' } },
    });
  });
});

describe.runIf(usingPostgres())('database faults: backends terminated under load', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('keeps serving: failed requests get 503 DATABASE_UNAVAILABLE, every other answer is a success, service is back within seconds', async () => {
    const user = await t.signIn('load@example.com');
    const statuses = new Map<number, number>();
    let stop = false;
    const unavailable: ApiResponse[] = [];
    const client = async (n: number) => {
      for (let i = 0; !stop; i++) {
        const response =
          i % 3 === 0
            ? await t.patch(`/identity/users/${user.userId}`, { onboardingCompleted: (n + i) % 2 === 0 }, user.auth)
            : await t.get(`/identity/users/${user.userId}`, user.auth);
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 503) unavailable.push(response);
      }
    };
    const load = Promise.all([1, 2, 3, 4].map(client));
    let terminated = 0;
    for (let round = 0; round < 5; round++) {
      await sleep(300);
      terminated += await terminateBackends(t.database.url!, `application_name = 'tranche'`);
    }
    stop = true;
    await load;

    expect(terminated).toBeGreaterThan(0);
    expect([...statuses.keys()].filter((status) => status !== 200 && status !== 503)).toEqual([]);
    for (const response of unavailable) expectDatabaseUnavailable(response);
    expect(await eventually(async () => (await t.get(`/identity/users/${user.userId}`, user.auth)).status === 200, 10_000)).toBe(true);
    expect((await t.get('/health/ready')).status).toBe(200);
  }, 60_000);
});

describe.runIf(usingPostgres())('database faults: network partition through a TCP proxy', () => {
  let t: TestApp;
  let proxy: TcpProxy;
  const queryTimeoutMs = 1500;
  beforeAll(async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
    t = await startTestApp(
      {
        healthTimeoutMs: 800,
        postgres: {
          poolSize: 5,
          connectTimeoutMs: 1000,
          statementTimeoutMs: 1000,
          lockTimeoutMs: 1000,
          idleInTransactionTimeoutMs: 5000,
          queryTimeoutMs,
        },
      },
      { connectThrough: (url) => proxy.through(url) },
    );
  });
  afterAll(async () => {
    proxy.restore();
    await t.close();
    await proxy.close();
  });

  it('readiness and reads answer 503 while the database is cut off, and recover without a restart', async () => {
    const user = await t.signIn('partition@example.com');
    expect((await t.get(`/identity/users/${user.userId}`, user.auth)).status).toBe(200);
    expect((await t.get('/health/ready')).status).toBe(200);

    proxy.cut();
    // Every answer has to arrive at all: a hung request would hit the abort signal and fail the test.
    const bounded = (path: string, headers?: Record<string, string>) =>
      fetch(`${t.url}${path}`, { headers, signal: AbortSignal.timeout(queryTimeoutMs + 5000) });

    const ready = await bounded('/health/ready');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ success: false, error: { code: 'DATABASE_UNAVAILABLE' } });
    expect((await bounded('/health/live')).status).toBe(200);
    expect((await bounded('/identity/health')).status).toBe(503);

    const read = await bounded(`/identity/users/${user.userId}`, user.auth);
    expectDatabaseUnavailable({ status: read.status, headers: read.headers, body: await read.json(), text: '' });

    const exchange = await fetch(`${t.url}/identity/auth/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': t.apiKey },
      body: JSON.stringify({ token: await t.idp.idToken('partition@example.com') }),
      signal: AbortSignal.timeout(queryTimeoutMs + 5000),
    });
    expect(exchange.status).toBe(503);
    expect(exchange.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await exchange.json()).toMatchObject({ error: 'temporarily_unavailable' });

    const keyserver = await bounded('/kdf?email=partition%40example.com');
    expect(keyserver.status).toBe(503);
    expect(keyserver.headers.get('content-type')).toContain('application/vnd.api+json');
    expect(keyserver.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await keyserver.json()).toMatchObject({ errors: [{ status: '503', code: 'database_unavailable' }] });

    proxy.restore();
    expect(await eventually(async () => (await t.get('/health/ready')).status === 200, 15_000)).toBe(true);
    expect((await t.get(`/identity/users/${user.userId}`, user.auth)).status).toBe(200);
  }, 60_000);
});

describe.runIf(usingPostgres())('database faults: a transaction whose BEGIN fails', () => {
  it('gives its connection back to the pool, so the pool keeps its slots and closes', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
    const t = await startTestApp(
      { postgres: { ...loadConfig({}).postgres, poolSize: 1, queryTimeoutMs: 500, connectTimeoutMs: 1000 } },
      {
        connectThrough: (url) => proxy.through(url),
      },
    );
    try {
      // The pool's one client is idle and connected; the link goes silent, so its BEGIN never answers.
      await t.db.transaction(async (tx) => tx.execute(sql`select 1`));
      proxy.cut();
      await expect(t.db.transaction(async (tx) => tx.execute(sql`select 1`))).rejects.toThrow();
      proxy.restore();
      // The failed client went back (and was dropped): the next transaction gets a fresh one.
      await expect(t.db.transaction(async (tx) => tx.execute(sql`select 1`))).resolves.toBeDefined();
      expect(t.database.connections?.()).toMatchObject({ max: 1, waiting: 0 });
    } finally {
      proxy.restore();
      await t.close(); // before the fix, the leaked client kept pool.end() waiting forever
      await proxy.close();
    }
  }, 60_000);
});

describe.runIf(usingPostgres())('database faults: the worker listener', () => {
  let t: TestApp;
  let receiver: Receiver;
  let worker: { stop(): Promise<void> };
  beforeAll(async () => {
    receiver = await startReceiver();
    // Polling is off in practice: only a NOTIFY can wake the worker within the test.
    t = await startTestApp({ workerPollMs: 600_000 });
    worker = await t.modules.notifications.startWorker();
    const principal = { kind: 'api_key' as const, orgId: t.org.id, apiKeyId: t.apiKeyId };
    await t.modules.notifications.endpoints.create(principal, { url: `${receiver.url}/hook`, eventTypes: ['*'] });
  });
  afterAll(async () => {
    await worker.stop();
    await t.close();
    await receiver.close();
  });

  const listenerPids = async () => {
    const admin = new pg.Client({ connectionString: t.database.url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ pid: number }>(
        `select pid from pg_stat_activity where datname = current_database() and application_name = $1 and query ilike 'listen%'`,
        [LISTENER_APPLICATION_NAME],
      );
      return rows.map((row) => row.pid);
    } finally {
      await admin.end();
    }
  };

  it('re-subscribes after its connection is terminated: a NOTIFY wakes the worker again', async () => {
    await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'test.ping', data: { n: 1 } }));
    await receiver.waitFor(1, 10_000);

    const [before] = await listenerPids();
    expect(before).toBeDefined();
    expect(await terminateBackends(t.database.url!, `application_name = '${LISTENER_APPLICATION_NAME}'`)).toBe(1);
    expect(await eventually(async () => (await listenerPids()).some((pid) => pid !== before), 15_000)).toBe(true);
    // The reconnect's catch-up pass runs now; give it time so the next delivery can only come from a NOTIFY.
    await sleep(500);

    await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'test.ping', data: { n: 2 } }));
    await receiver.waitFor(2, 10_000);
    expect(receiver.received.map((request) => JSON.parse(request.body).data.n)).toEqual([1, 2]);
  }, 60_000);
});
