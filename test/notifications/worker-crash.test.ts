import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { fromSource, repoRoot, testDeployment, type Deployment } from '../support/process.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

const EVENTS = 150;
let deployment: Deployment;
let receiver: Receiver;

beforeAll(async () => {
  deployment = await testDeployment('crash', {
    LOG_LEVEL: 'warn',
    ALLOW_INSECURE_HTTP: 'true',
    WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
    WEBHOOK_LEASE_SECONDS: '2',
    WORKER_POLL_MS: '100',
  });
  receiver = await startReceiver();
  receiver.respond(() => ({ status: 200, delayMs: 15 }));

  const config = loadConfig(deployment.env);
  const database = await openDatabase(config);
  await database.migrate();
  const modules = createModules({ config, database, keyring: deployment.keyring() });
  const org = await modules.identity.orgs.createOrg({
    name: 'Crash',
    idpIssuer: 'https://idp.example.com',
    idpJwksUrl: 'https://idp.example.com/jwks',
    idpAudience: 'a',
  });
  await modules.notifications.endpoints.create(
    { kind: 'api_key', orgId: org.id, apiKeyId: 'setup' },
    { url: `${receiver.url}/hook`, eventTypes: ['*'] },
  );
  await database.db.transaction(async (tx) => {
    for (let i = 0; i < EVENTS; i++) await publish(tx, { orgId: org.id, type: 'test.ping', data: { n: i } });
  });
  await modules.notifications.close();
  await database.close();
});

afterAll(async () => {
  await receiver.close();
  await deployment.dispose();
});

function startWorker(): ChildProcess {
  const [node, ...args] = fromSource;
  return spawn(node!, [...args, 'serve', '--role', 'worker'], { cwd: repoRoot, env: deployment.env, stdio: ['ignore', 'pipe', 'pipe'] });
}

const uniqueIds = () => new Set(receiver.received.map((request) => request.headers['webhook-id'])).size;

describe('worker crash', () => {
  it('a worker killed with SIGKILL mid-batch loses nothing: the next worker delivers every event', async () => {
    const first = startWorker();
    await receiver.waitFor(20, 240_000);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const deliveredBeforeCrash = uniqueIds();
    expect(deliveredBeforeCrash).toBeLessThan(EVENTS);

    const second = startWorker();
    try {
      const deadline = Date.now() + 240_000;
      while (uniqueIds() < EVENTS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(uniqueIds()).toBe(EVENTS);
      // Sent twice at most: what the killed worker had in flight, one claim of 32 (not its whole batch).
      expect(receiver.received.length).toBeGreaterThanOrEqual(EVENTS);
      expect(receiver.received.length - EVENTS).toBeLessThanOrEqual(32);
    } finally {
      second.kill('SIGTERM');
      await new Promise((resolve) => second.once('exit', resolve));
    }
  }, 400_000);
});
