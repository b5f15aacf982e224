import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresTestDatabase, usingPostgres } from './support/harness.ts';

const root = path.resolve(import.meta.dirname, '..');
let dataDir: string;
let dropDatabase: (() => Promise<void>) | undefined;
let databaseUrl: string | undefined;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-signals-'));
  if (usingPostgres()) {
    const database = await createPostgresTestDatabase();
    databaseUrl = database.url;
    dropDatabase = () => database.drop();
  }
});
afterAll(async () => {
  await dropDatabase?.();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('signals through the README command', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '`npm start` given %s stops the server itself and releases the data dir',
    async (signal) => {
      const port = await freePort();
      const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
      delete env.DATABASE_URL;
      // On PostgreSQL a process never generates keys: give it the deployment's.
      if (databaseUrl) Object.assign(env, { DATABASE_URL: databaseUrl, DEMO_IDP: 'false', ...deploymentKeys() });
      const npm = spawn('npm', ['start'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
      const deadline = Date.now() + 90_000;
      while (!output.includes('listening on') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await accepts(port)).toBe(true);

      npm.kill(signal);
      await exited;
      // npm is gone; the server must be too: nothing listens on the port and the lock is released.
      let stillServing = true;
      for (let i = 0; i < 50 && stillServing; i++) {
        stillServing = await accepts(port);
        if (stillServing) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(stillServing).toBe(false);
      expect(fs.existsSync(path.join(dataDir, 'tranche.lock'))).toBe(false);
    },
    120_000,
  );
});

/** Keys for this file's PostgreSQL deployment (MASTER_KEYS and HASH_SECRET): the same for every process. */
const keys = { MASTER_KEYS: `mk_test:${randomBytes(32).toString('base64')}`, HASH_SECRET: randomBytes(32).toString('base64url') };
function deploymentKeys() {
  return keys;
}
