import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, repoRoot, testDeployment, type Deployment } from './support/process.ts';

let deployment: Deployment;

beforeAll(async () => {
  deployment = await testDeployment('signals', { HOST: '127.0.0.1', LOG_LEVEL: 'info', DEMO_IDP: 'false' });
});
afterAll(() => deployment.dispose());

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('signals through the README command', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '`npm start` given %s stops the server itself, says so in the log and releases the data dir',
    async (signal) => {
      const port = await freePort();
      const env = { ...deployment.env, PORT: String(port) };
      const npm = spawn('npm', ['start'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
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
      expect(fs.existsSync(path.join(deployment.dataDir, 'tranche.lock'))).toBe(false);
      // The operator sees why it stopped, and that it finished.
      expect(output).toMatch(new RegExp(`"signal":"${signal}".*"msg":"shutting down`));
      expect(output).toContain('"msg":"stopped"');
    },
    120_000,
  );
});
