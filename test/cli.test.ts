import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { userPii } from '../src/identity/identity.tables.ts';
import { unseal } from '../src/platform/crypto/envelope.ts';
import { loadKeyring } from '../src/platform/crypto/keyring.ts';
import { openDatabase } from '../src/platform/db/database.ts';
import { usingPostgres } from './support/harness.ts';
import { freePort, testDeployment, type Deployment } from './support/process.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
let deployment: Deployment;
let dataDir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  deployment = await testDeployment('cli', { LOG_LEVEL: 'warn' });
  ({ dataDir, env } = deployment);
});
afterAll(() => deployment.dispose());

async function tranche(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: root, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

async function withModules<T>(
  work: (modules: ReturnType<typeof createModules>, database: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>,
) {
  const config = loadConfig(env);
  const database = await openDatabase(config);
  try {
    const keyring = cliKeyring();
    return await work(createModules({ config, database, keyring }), database);
  } finally {
    await database.close();
  }
}

/** The keyring the CLI processes use: the environment's on PostgreSQL, else the data-dir one. */
function cliKeyring() {
  return loadKeyring({ dataDir: env.DATABASE_URL ? undefined : dataDir, masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET });
}

// Every test here starts cold CLI processes (several each); how long they take depends on the
// machine and the Node version, so the budget is generous and no test waits on a clock of its own.
describe('tranche CLI', { timeout: 900_000 }, () => {
  it('migrates, creates an org and API keys, revokes a key, and refuses bad input', async () => {
    expect((await tranche('migrate')).stdout).toContain('Migrations applied.');

    const bad = await tranche('org', 'create', '--name', 'Acme', '--audience', 'client');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/VALIDATION_ERROR: idpIssuer: register the identity provider/);

    const org = await tranche(
      'org',
      'create',
      '--name',
      'Acme',
      '--issuer',
      'https://idp.acme.example',
      '--audience',
      'client',
      '--admin-email',
      'ops@acme.example',
    );
    const orgId = /Created org ([0-9a-f-]{36})/.exec(org.stdout)![1]!;

    const created = await tranche('api-key', 'create', '--org', orgId, '--label', 'ci');
    const key = /(rialto_ak_[0-9a-f-]{36}_[0-9A-Za-z]{32})/.exec(created.stdout)![1]!;
    const keyId = /API key ([0-9a-f-]{36})/.exec(created.stdout)![1]!;
    expect(key).toContain(orgId);

    expect((await withModules((m) => m.identity.orgs.authenticateApiKey(key)))?.orgId).toBe(orgId);
    expect((await tranche('api-key', 'revoke', '--id', keyId)).stdout).toContain('Revoked');
    expect(await withModules((m) => m.identity.orgs.authenticateApiKey(key))).toBeNull();
    expect((await tranche('api-key', 'revoke', '--id', keyId)).code).toBe(1);

    const admin = await tranche('admin-key', 'create', '--label', 'ops');
    const adminKey = /(tranche_admin_[0-9A-Za-z]{40})/.exec(admin.stdout)![1]!;
    expect(await withModules((m) => m.identity.orgs.authenticateAdminKey(adminKey))).not.toBeNull();

    const unknown = await tranche('frobnicate');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Unknown command');
    const group = await tranche('totals');
    expect(group.code).toBe(1);
    expect(group.stderr.split('\n')[0]).toBe('"totals" needs a subcommand: totals check, totals repair.');

    const orgs = await tranche('org', 'list');
    expect(orgs.stdout).toMatch(new RegExp(`^${orgId}  Acme  https://idp.acme.example  audience=client  created `, 'm'));
    const keys = await tranche('api-key', 'list', '--org', orgId);
    expect(keys.stdout).toMatch(new RegExp(`^${keyId}  rialto_ak_${orgId}_…\\w{4}  ci  created \\S+  revoked `, 'm'));
    expect(keys.stdout).not.toContain(key);
    expect((await tranche('api-key', 'list', '--org', 'nope')).stderr).toMatch(/^VALIDATION_ERROR: org: must be an org id/);

    // Redirect origins: set (normalised), listed, refused when not an origin, cleared.
    const updated = await tranche(
      'org',
      'update',
      '--org',
      orgId,
      '--redirect-origin',
      'https://invest.acme.example/',
      '--redirect-origin',
      'https://app.acme.example',
    );
    expect(updated.stdout).toContain('redirect origins https://invest.acme.example, https://app.acme.example');
    expect((await tranche('org', 'list')).stdout).toContain('redirect-origins=https://invest.acme.example,https://app.acme.example');
    const notOrigin = await tranche('org', 'update', '--org', orgId, '--redirect-origin', 'https://app.acme.example/path');
    expect(notOrigin.code).toBe(1);
    expect(notOrigin.stderr).toMatch(/VALIDATION_ERROR: redirectOrigins.0: must be an origin only/);
    expect((await tranche('org', 'update', '--org', orgId)).code).toBe(1);
    expect((await tranche('org', 'update', '--org', orgId, '--redirect-origin', '')).stdout).toContain('redirect origins (none)');
    expect(await withModules(async (m) => (await m.identity.orgs.getOrg(orgId))!.redirectOrigins)).toEqual([]);
  });

  it('prints its version and a help that names every command', async () => {
    const version = await tranche('--version');
    expect(version.stdout.trim()).toBe(
      (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version,
    );
    const help = await tranche('--help');
    for (const command of [
      'serve',
      'migrate',
      'org create',
      'org update',
      'org list',
      'api-key list',
      'keys generate',
      'keys rotate',
      'totals check',
      'totals repair',
    ])
      expect(help.stdout).toContain(command);
  });

  it('keys generate writes key files that *_FILE variables read', async () => {
    const out = path.join(dataDir, 'secrets');
    const written = await tranche('keys', 'generate', '--out', out);
    expect(written.code).toBe(0);
    expect(fs.statSync(path.join(out, 'master_keys')).mode & 0o777).toBe(0o600);
    const config = loadConfig({ MASTER_KEYS_FILE: path.join(out, 'master_keys'), HASH_SECRET_FILE: path.join(out, 'hash_secret') });
    expect(config.masterKeys).toMatch(/^mk_\d{8}_[0-9a-f]{8}:[A-Za-z0-9+/]{43}=$/);
    expect(loadKeyring({ masterKeys: config.masterKeys, hashSecret: config.hashSecret }).masterKeys.size).toBe(1);
    expect(() => loadConfig({ MASTER_KEYS: config.masterKeys, MASTER_KEYS_FILE: path.join(out, 'master_keys') })).toThrow(
      'Invalid configuration: set MASTER_KEYS or MASTER_KEYS_FILE, not both',
    );
    expect(() => loadConfig({ HASH_SECRET_FILE: path.join(out, 'missing') })).toThrow(/HASH_SECRET_FILE: cannot read .* \(ENOENT\)/);
    // The files exist now: a second run refuses to overwrite them.
    expect((await tranche('keys', 'generate', '--out', out)).code).toBe(1);
  });

  it('keys rotate re-wraps PII data keys under a new master key', async () => {
    const userId = await withModules(async (modules) => {
      const demo = await modules.identity.orgs.createOrg({
        name: 'Rotate',
        idpIssuer: 'https://idp.example',
        idpJwksUrl: 'https://idp.example/jwks',
        idpAudience: 'a',
      });
      const user = await modules.identity.users.upsertFromIdentity(
        { id: demo.id, adminEmailDigests: [] },
        { subject: 's', email: 'r@example.com', emailVerified: true },
      );
      await modules.identity.pii.create({ kind: 'user', orgId: demo.id, userId: user.id, role: 'user', email: user.email }, undefined, {
        firstName: 'Rot',
        lastName: 'Ate',
        ssn: '111223333',
      });
      return user.id;
    });
    const before = cliKeyring().activeKeyId;
    // With MASTER_KEYS the operator puts the new key first; the data-dir keyring gets one added.
    if (env.MASTER_KEYS) env.MASTER_KEYS = `mk_cli2:${randomBytes(32).toString('base64')},${env.MASTER_KEYS}`;
    const rotated = await tranche('keys', 'rotate');
    expect(rotated.stdout).toMatch(/Re-wrapped: \d+ pii/);
    const keyring = cliKeyring();
    expect(keyring.activeKeyId).not.toBe(before);
    await withModules(async (_modules, database) => {
      const [row] = await database.db.select().from(userPii).where(eq(userPii.userId, userId));
      expect(row!.keyId).toBe(keyring.activeKeyId);
      expect(JSON.parse(unseal(keyring, row!, `user_pii:${userId}`))).toMatchObject({ firstName: 'Rot', ssn: '111223333' });
    });
  });

  it('demo prints an API key and a ready-to-paste exchange curl', async () => {
    if (usingPostgres()) {
      // PostgreSQL: the same demo as the embedded first start, and how to serve its IdP.
      const first = await tranche('demo');
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/API key \(shown once\): rialto_ak_/);
      expect(first.stdout).toContain('DEMO_IDP=true ALLOW_INSECURE_HTTP=true npm start');
      env = { ...env, DEMO_IDP: 'true', ALLOW_INSECURE_HTTP: 'true' };
    }
    const demo = await tranche('demo');
    expect(demo.stdout).not.toContain('does not serve the demo IdP');
    expect(demo.stdout).toMatch(/API key \(shown once\): rialto_ak_/);
    expect(demo.stdout).toMatch(/curl -s -X POST http:\/\/localhost:3000\/identity\/auth\/exchange/);
    expect(demo.stdout).toMatch(/"token":"eyJ/);
    expect(demo.stdout).toMatch(/curl -s http:\/\/localhost:3000\/admin\/mail -H 'x-admin-key: tranche_admin_\w+'/);
  });

  it('serve answers on PORT and prints the URL and the docs URL', async () => {
    const port = await freePort();
    const server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      cwd: root,
      env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.on('data', () => output.includes('API docs:') && resolve());
        server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${output}`)));
      });
      expect(output).toContain(`listening on http://localhost:${port}`);
      expect(output).toContain(`API docs: http://localhost:${port}/docs`);
      if (usingPostgres()) expect(output).not.toContain('Development mode: webhooks may be delivered to loopback');
      else expect(output).toContain('Development mode: webhooks may be delivered to loopback addresses (127.0.0.0/8,::1/128)');
      const health = await fetch(`http://127.0.0.1:${port}/identity/health`);
      expect(health.status).toBe(200);

      if (!usingPostgres()) {
        const second = await tranche('migrate');
        expect(second.code).toBe(1);
        expect(second.stderr).toMatch(/in use by process \d+/);
      }
    } finally {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
    }
  });
});
