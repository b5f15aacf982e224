import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { loadKeyring } from '../../src/platform/crypto/keyring.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { johnSmith } from '../support/fixtures.ts';
import { createPostgresTestDatabase, usingPostgres } from '../support/harness.ts';
import { startIdp } from '../support/idp.ts';

const root = path.resolve(import.meta.dirname, '../..');
const LEASE_SECONDS = 5;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let idp: Awaited<ReturnType<typeof startIdp>>;
let apiKey: string;
let dropDatabase: (() => Promise<void>) | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-kyc-crash-'));
  env = {
    ...process.env,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    // One issuer for both server processes, so the access token outlives the crash.
    PUBLIC_URL: 'http://tranche.test',
    ALLOW_INSECURE_HTTP: 'true',
    DEMO_IDP: 'false',
    IN_PROGRESS_LEASE_SECONDS: String(LEASE_SECONDS),
  };
  delete env.DATABASE_URL;
  if (usingPostgres()) {
    const database = await createPostgresTestDatabase();
    env.DATABASE_URL = database.url;
    // On PostgreSQL every process needs the deployment's keys; it never generates its own.
    env.MASTER_KEYS = `mk_kyc_crash:${randomBytes(32).toString('base64')}`;
    env.HASH_SECRET = randomBytes(32).toString('base64url');
    dropDatabase = () => database.drop();
  }
  idp = await startIdp();
  const config = loadConfig(env);
  const database = await openDatabase(config);
  await database.migrate();
  const modules = createModules({
    config,
    database,
    keyring: loadKeyring({ dataDir, masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET }),
  });
  const org = await modules.identity.orgs.createOrg({ name: 'KYC crash', idpIssuer: idp.issuer, idpAudience: idp.audience });
  apiKey = (await modules.identity.orgs.createApiKey(org.id)).key;
  await modules.notifications.close();
  await database.close();
}, 300_000);

afterAll(async () => {
  await idp.close();
  await dropDatabase?.();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** The real server in its own process; resolves once it listens. */
async function startServer(extraEnv: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--role', 'api'], {
    cwd: root,
    env: { ...env, PORT: String(port), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 240_000);
    child.stdout.on('data', () => output.includes('listening on') && (clearTimeout(timer), resolve()));
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`server exited ${code}: ${output}`))));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kyc crash', () => {
  it('a server killed with SIGKILL mid KYC request leaves nothing stuck: the retry with the same Idempotency-Key succeeds', async () => {
    // The first server's KYC vendor hangs, so the request is certainly in flight when the process dies.
    const first = await startServer({ KYC_SANDBOX_SUBMIT_DELAY_MS: '600000' });
    let second: { child: ChildProcess; url: string } | undefined;
    try {
      const exchange = await fetch(`${first.url}/identity/auth/exchange`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
        body: JSON.stringify({ token: await idp.idToken('crash@example.com') }),
      });
      expect(exchange.status).toBe(200);
      const { access_token: accessToken } = (await exchange.json()) as { access_token: string };
      const auth = { authorization: `Bearer ${accessToken}` };
      const headers = { ...auth, 'content-type': 'application/json', 'idempotency-key': 'kyc-crash-1' };
      const submit = (url: string) =>
        fetch(`${url}/identity/kyc-verifications`, { method: 'POST', headers, body: JSON.stringify(johnSmith) });
      const effective = async (url: string) =>
        (
          (await (await fetch(`${url}/identity/kyc`, { headers: auth })).json()) as {
            data: { status: string; verification_id: string | null };
          }
        ).data;

      const inFlight = submit(first.url).catch((error: unknown) => error);
      let stuckId: string | undefined;
      for (let i = 0; i < 600 && !stuckId; i++) {
        const state = await effective(first.url);
        if (state.status === 'pending') stuckId = state.verification_id!;
        else await sleep(100);
      }
      expect(stuckId).toBeDefined();
      await stop(first.child, 'SIGKILL');
      expect(await inFlight).toBeInstanceOf(Error);

      second = await startServer({});
      // Until the dead request's lease is over, the key is still held (409); then the retry runs.
      let retry = await submit(second.url);
      for (let i = 0; i < 600 && retry.status === 409; i++) {
        await sleep(250);
        retry = await submit(second.url);
      }
      expect(retry.status, await retry.clone().text()).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      const created = ((await retry.json()) as { data: { verification_id: string; status: string } }).data;
      expect(created.status).toBe('approved');
      expect(created.verification_id).not.toBe(stuckId);

      const old = await fetch(`${second.url}/identity/kyc-verifications/${stuckId}`, { headers: auth });
      expect(((await old.json()) as { data: { status: string } }).data.status).toBe('error');
      const replay = await submit(second.url);
      expect(replay.status).toBe(201);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect((await effective(second.url)).status).toBe('approved');
    } finally {
      await stop(first.child, 'SIGKILL');
      if (second) await stop(second.child, 'SIGTERM');
    }
  }, 600_000);
});
