import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromSource, repoRoot, testDeployment, type Deployment } from '../support/process.ts';
import { seedWebhookBacklog } from '../support/webhook-deployment.ts';
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
    // Under half the lease (a send must end within it); the receiver answers in 15 ms.
    WEBHOOK_TIMEOUT_MS: '900',
    WORKER_POLL_MS: '100',
    // 8 sends in flight: the worker holds at most 32 deliveries claimed and not yet recorded.
    WEBHOOK_CONCURRENCY: '8',
  });
  receiver = await startReceiver();
  receiver.respond(() => ({ status: 200, delayMs: 15 }));

  await seedWebhookBacklog(deployment, { name: 'Crash', url: `${receiver.url}/hook`, events: EVENTS });
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
      // Sent twice at most: what the killed worker held (4 x WEBHOOK_CONCURRENCY = 32), not its backlog.
      expect(receiver.received.length).toBeGreaterThanOrEqual(EVENTS);
      expect(receiver.received.length - EVENTS).toBeLessThanOrEqual(32);
    } finally {
      second.kill('SIGTERM');
      await new Promise((resolve) => second.once('exit', resolve));
    }
  }, 400_000);
});
