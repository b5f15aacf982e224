import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { keyChecksOf, verifyDeploymentKeys } from '../../src/platform/crypto/key-check.ts';
import { loadKeyring } from '../../src/platform/crypto/keyring.ts';
import { openPostgres } from '../../src/platform/db/database.ts';
import { keyChecks } from '../../src/platform/platform.tables.ts';
import { createPostgresTestDatabase, openTestDatabase, usingPostgres } from '../support/harness.ts';
import { startIdp, type TestIdp } from '../support/idp.ts';
import { freePort, fromSource, runCommand, startServer, type Running } from '../support/process.ts';

const newMasterKey = (kid: string) => `${kid}:${randomBytes(32).toString('base64')}`;
const newHashSecret = () => randomBytes(32).toString('base64url');

describe('key custody happy', () => {
  it('records the keys on first use, accepts the same keys again and a rotation that keeps the old key', async () => {
    const database = await openTestDatabase();
    try {
      const old = newMasterKey('old');
      const hashSecret = newHashSecret();
      const first = loadKeyring({ masterKeys: old, hashSecret });
      await verifyDeploymentKeys(database.db, first);
      await verifyDeploymentKeys(database.db, loadKeyring({ masterKeys: old, hashSecret }));
      await verifyDeploymentKeys(database.db, loadKeyring({ masterKeys: `${newMasterKey('new')},${old}`, hashSecret }));
      const rows = await database.db.select().from(keyChecks);
      expect(rows.map((row) => `${row.kind}:${row.keyId}`).sort()).toEqual(['hash_secret:', 'master_key:new', 'master_key:old']);
      // The check values are HMACs of a constant: no row holds key material.
      expect(rows.map((row) => row.checkValue)).not.toContain(old.split(':')[1]);
      expect(rows.find((row) => row.keyId === 'old')!.checkValue).toBe(keyChecksOf(first)[1]!.checkValue);
    } finally {
      await database.close();
    }
  });
});

describe('key custody error', () => {
  it('refuses another hash secret, other material under a known key id, and wholly different master keys', async () => {
    const database = await openTestDatabase();
    try {
      const masterKeys = newMasterKey('k1');
      const hashSecret = newHashSecret();
      await verifyDeploymentKeys(database.db, loadKeyring({ masterKeys, hashSecret }));
      await expect(verifyDeploymentKeys(database.db, loadKeyring({ masterKeys, hashSecret: newHashSecret() }))).rejects.toThrow(
        /^HASH_SECRET is not the one this deployment uses/,
      );
      await expect(verifyDeploymentKeys(database.db, loadKeyring({ masterKeys: newMasterKey('k1'), hashSecret }))).rejects.toThrow(
        /MASTER_KEYS: key k1 is not the key this deployment uses/,
      );
      await expect(verifyDeploymentKeys(database.db, loadKeyring({ masterKeys: newMasterKey('k2'), hashSecret }))).rejects.toThrow(
        /none of this process's master keys \(k2\) is one this deployment uses \(k1\)/,
      );
      // Refusals record nothing.
      expect((await database.db.select().from(keyChecks)).map((row) => row.keyId).sort()).toEqual(['', 'k1']);
    } finally {
      await database.close();
    }
  });

  it('never invents keys without a data directory, and wants both variables or neither', () => {
    expect(() => loadKeyring({})).toThrow(/MASTER_KEYS and HASH_SECRET are not set.*tranche keys generate/);
    expect(() => loadKeyring({ hashSecret: newHashSecret(), dataDir: '/nonexistent' })).toThrow(/MASTER_KEYS must be set when HASH_SECRET/);
  });
});

/** Processes of one deployment: API servers started from the CLI the way an operator would. */
describe('key custody across processes', () => {
  let idp: TestIdp;
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;
  const running: Running[] = [];

  beforeAll(async () => {
    idp = await startIdp();
    // One PUBLIC_URL for the deployment: it names the access-token issuer every process checks.
    env = { ...process.env, LOG_LEVEL: 'warn', ALLOW_INSECURE_HTTP: 'true', HOST: '127.0.0.1', PUBLIC_URL: 'http://tranche.test' };
    for (const name of ['DATABASE_URL', 'MASTER_KEYS', 'HASH_SECRET', 'DATA_DIR']) delete env[name];
    if (usingPostgres()) {
      const created = await createPostgresTestDatabase();
      env.DATABASE_URL = created.url;
      cleanup = () => created.drop();
    } else {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-keys-'));
      env.DATA_DIR = dataDir;
      cleanup = async () => fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
  afterAll(async () => {
    for (const server of running) await server.stop('SIGKILL');
    await idp.close();
    await cleanup();
  });

  async function serve(extra: NodeJS.ProcessEnv = {}) {
    const port = await freePort();
    const server = await startServer(
      [...fromSource, 'serve', '--role', 'api'],
      { ...env, ...extra, PORT: String(port) },
      port,
      '/identity/health',
    );
    running.push(server);
    return server;
  }

  async function exchange(server: Running, apiKey: string, email: string) {
    const response = await fetch(`${server.url}/identity/auth/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify({ token: await idp.idToken(email) }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { access_token: string; refresh_token: string };
  }

  it('on PostgreSQL refuses to start without keys; with keys two processes accept each other’s tokens; other keys are refused', async () => {
    if (!usingPostgres()) {
      // The embedded database is one process with its own keyring; losing that keyring while
      // keeping the data must stop the start, not answer 401 and 500 for everything.
      const server = await serve();
      await server.stop();
      fs.rmSync(path.join(env.DATA_DIR!, 'keyring.json'));
      const refused = await runCommand([...fromSource, 'serve'], { ...env, PORT: String(await freePort()) });
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toMatch(/^HASH_SECRET is not the one this deployment uses \(refusing to start\)/);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      return;
    }

    const withoutKeys = await Promise.all([1, 2].map(async () => runCommand([...fromSource, 'serve', '--role', 'api'], env)));
    for (const refused of withoutKeys) {
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe(
        'MASTER_KEYS and HASH_SECRET are not set; on PostgreSQL every process must use the same keys: generate them once with `tranche keys generate` and give them to every process.',
      );
    }

    const generated = await runCommand([...fromSource, 'keys', 'generate'], env);
    expect(generated.code).toBe(0);
    const keys = Object.fromEntries(
      generated.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(/=(.*)/s).slice(0, 2)),
    ) as Record<string, string>;
    expect(Object.keys(keys)).toEqual(['MASTER_KEYS', 'HASH_SECRET']);
    const [first, second] = await Promise.all([serve(keys), serve(keys)]);

    const keyring = loadKeyring({ masterKeys: keys.MASTER_KEYS, hashSecret: keys.HASH_SECRET });
    const database = openPostgres(env.DATABASE_URL!, 1);
    const { org, apiKey } = await (async () => {
      try {
        const { identity } = createModules({ config: { ...loadConfig(env), allowInsecureHttp: true }, database, keyring });
        const created = await identity.orgs.createOrg({ name: 'Shared', idpIssuer: idp.issuer, idpAudience: idp.audience });
        return { org: created, apiKey: (await identity.orgs.createApiKey(created.id)).key };
      } finally {
        await database.close();
      }
    })();
    expect(org.id).toBeTruthy();

    const fromFirst = await exchange(first, apiKey, 'shared@example.com');
    const userId = (JSON.parse(Buffer.from(fromFirst.access_token.split('.')[1]!, 'base64url').toString()) as { user_id: string }).user_id;
    const readOnSecond = await fetch(`${second.url}/identity/users/${userId}`, {
      headers: { authorization: `Bearer ${fromFirst.access_token}` },
    });
    expect(readOnSecond.status).toBe(200);
    const refreshedOnSecond = await fetch(`${second.url}/identity/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: fromFirst.refresh_token }),
    });
    expect(refreshedOnSecond.status).toBe(200);
    const fromSecond = await exchange(second, apiKey, 'shared@example.com');
    expect(
      (await fetch(`${first.url}/identity/users/${userId}`, { headers: { authorization: `Bearer ${fromSecond.access_token}` } })).status,
    ).toBe(200);

    const other = await runCommand([...fromSource, 'serve', '--role', 'api'], {
      ...env,
      PORT: String(await freePort()),
      MASTER_KEYS: newMasterKey('mk_other'),
      HASH_SECRET: newHashSecret(),
    });
    expect(other.code).toBe(1);
    expect(other.stderr.trim()).toMatch(/^HASH_SECRET is not the one this deployment uses \(refusing to start\)/);
    expect(other.stderr.trim().split('\n')).toHaveLength(1);
  }, 600_000);
});
