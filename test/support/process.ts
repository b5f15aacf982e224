import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadKeyring, type Keyring } from '../../src/platform/crypto/keyring.ts';
import { createPostgresTestDatabase, usingPostgres } from './harness.ts';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

/** How to start the CLI from source: the same node, with tsx. */
export const fromSource = [process.execPath, '--import', 'tsx', 'src/main.ts'];

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export type Deployment = {
  dataDir: string;
  /** The environment for every process of the deployment (server, worker, CLI). */
  env: NodeJS.ProcessEnv;
  /** The keyring those processes load: the environment's on PostgreSQL, else the data dir's. */
  keyring(): Keyring;
  /** Drops the database (PostgreSQL runs) and removes the data dir. */
  dispose(): Promise<void>;
};

/**
 * A deployment for real server and CLI processes: a data dir of its own and, on a PostgreSQL test
 * run, a database of its own and the deployment's keys (a PostgreSQL process never generates keys,
 * and every process of one deployment must hold the same). A worker's HTTP port is a free one, not
 * the fixed default that concurrent test files would contend for. `settings` are added to the environment.
 */
export async function testDeployment(name: string, settings: NodeJS.ProcessEnv = {}): Promise<Deployment> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `tranche-${name}-`));
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, WORKER_HTTP_PORT: String(await freePort()), ...settings };
  delete env.DATABASE_URL;
  let drop: () => Promise<void> = () => Promise.resolve();
  if (usingPostgres()) {
    const database = await createPostgresTestDatabase();
    env.DATABASE_URL = database.url;
    env.MASTER_KEYS = `mk_${name.replaceAll('-', '_')}:${randomBytes(32).toString('base64')}`;
    env.HASH_SECRET = randomBytes(32).toString('base64url');
    drop = () => database.drop();
  }
  return {
    dataDir,
    env,
    keyring: () =>
      loadKeyring({ dataDir: env.DATABASE_URL ? undefined : dataDir, masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET }),
    async dispose() {
      await drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };

/** Runs a command to its end; never throws for a non-zero exit. */
export function runCommand(command: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export type Running = { url: string; child: ChildProcess; output: () => string; stop(signal?: NodeJS.Signals): Promise<Exit> };

/**
 * Starts a long-running command listening on `port` and resolves once `readyPath` answers 200,
 * or rejects with the output if the process exits first (or within 240 s: a loaded machine starts slowly).
 */
export function startServer(command: string[], env: NodeJS.ProcessEnv, port: number, readyPath: string): Promise<Running> {
  const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const url = `http://127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    let done = false;
    void exited.then((exit) => {
      if (!done) reject(new Error(`exited ${exit.code} before it was ready:\n${exit.stdout}\n${exit.stderr}`));
      done = true;
    });
    const deadline = Date.now() + 240_000;
    const poll = async () => {
      if (done) return;
      const status = await fetch(`${url}${readyPath}`).then(
        (response) => response.status,
        () => 0,
      );
      if (status === 200) {
        done = true;
        return resolve({
          url,
          child,
          output: () => stdout + stderr,
          async stop(signal = 'SIGTERM') {
            child.kill(signal);
            return exited;
          },
        });
      }
      if (Date.now() > deadline) {
        done = true;
        child.kill('SIGKILL');
        return reject(new Error(`not ready after 240 s:\n${stdout}\n${stderr}`));
      }
      setTimeout(() => void poll(), 200);
    };
    void poll();
  });
}
