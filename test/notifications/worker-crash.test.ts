import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { loadKeyring } from '../../src/platform/crypto/keyring.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { createPostgresTestDatabase, usingPostgres } from '../support/harness.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

const EVENTS = 150;
const root = path.resolve(import.meta.dirname, '../..');
let dataDir: string;
let env: NodeJS.ProcessEnv;
let receiver: Receiver;
let dropDatabase: (() => Promise<void>) | undefined;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-crash-'));
  env = {
    ...process.env,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    ALLOW_INSECURE_HTTP: 'true',
    WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
    WEBHOOK_LEASE_SECONDS: '2',
    WORKER_POLL_MS: '100',
  };
  delete env.DATABASE_URL;
  if (usingPostgres()) {
    const database = await createPostgresTestDatabase();
    env.DATABASE_URL = database.url;
    // Every process of a PostgreSQL deployment is given the same keys.
    env.MASTER_KEYS = `mk_crash:${randomBytes(32).toString('base64')}`;
    env.HASH_SECRET = randomBytes(32).toString('base64url');
    dropDatabase = () => database.drop();
  }
  receiver = await startReceiver();
  receiver.respond(() => ({ status: 200, delayMs: 15 }));

  const config = loadConfig(env);
  const database = await openDatabase(config);
  await database.migrate();
  const modules = createModules({
    config,
    database,
    keyring: loadKeyring({ dataDir, masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET }),
  });
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
  await dropDatabase?.();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function startWorker(): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--role', 'worker'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
      expect(receiver.received.length).toBeGreaterThanOrEqual(EVENTS);
    } finally {
      second.kill('SIGTERM');
      await new Promise((resolve) => second.once('exit', resolve));
    }
  }, 400_000);
});
