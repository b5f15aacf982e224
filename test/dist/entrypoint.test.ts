import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresTestDatabase, usingPostgres } from '../support/harness.ts';
import { freePort, repoRoot, startServer } from '../support/process.ts';

/** The container's command (Dockerfile ENTRYPOINT + CMD), run from the compiled build. */
const entrypoint = [process.execPath, 'dist/main.js', 'serve'];

let env: NodeJS.ProcessEnv;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  if (!fs.existsSync(path.join(repoRoot, 'dist/main.js'))) throw new Error('no dist/main.js: run `npm run build` first');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-dist-'));
  const keysDir = path.join(dataDir, 'secrets');
  fs.mkdirSync(keysDir);
  fs.writeFileSync(path.join(keysDir, 'master_keys'), `mk_dist:${randomBytes(32).toString('base64')}\n`);
  fs.writeFileSync(path.join(keysDir, 'hash_secret'), `${randomBytes(32).toString('base64url')}\n`);
  env = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    HOST: '0.0.0.0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    MASTER_KEYS_FILE: path.join(keysDir, 'master_keys'),
    HASH_SECRET_FILE: path.join(keysDir, 'hash_secret'),
  };
  let drop: () => Promise<void> = async () => undefined;
  if (usingPostgres()) {
    const database = await createPostgresTestDatabase();
    env.DATABASE_URL = database.url;
    drop = () => database.drop();
  }
  cleanup = async () => {
    await drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
});
afterAll(async () => cleanup());

describe('compiled entrypoint', () => {
  it('node dist/main.js serve migrates, answers health, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    // The image's HEALTHCHECK asks /health/ready: the database answers and migrations are current.
    const server = await startServer(entrypoint, { ...env, PORT: String(port) }, port, '/health/ready');
    const exit = await server.stop('SIGTERM');
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(0);
    expect(exit.stderr).toBe('');
  });
});
