import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookAttempts, webhookDeliveries } from '../../src/notifications/notifications.tables.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { fromSource, repoRoot, testDeployment, type Deployment, type Exit } from '../support/process.ts';
import { seedWebhookBacklog } from '../support/webhook-deployment.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

// More than one claim (a worker claims as many as it sends at once, 32), so some are never claimed.
const EVENTS = 40;
let deployment: Deployment;
let receiver: Receiver;

beforeAll(async () => {
  deployment = await testDeployment('drain', {
    LOG_LEVEL: 'warn',
    ALLOW_INSECURE_HTTP: 'true',
    WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
    // Nothing but the drain can free a claim here: the lease outlives the test, and the receiver
    // would be waited on for a minute.
    WEBHOOK_LEASE_SECONDS: '3600',
    WEBHOOK_TIMEOUT_MS: '60000',
    WORKER_DRAIN_SECONDS: '1',
    WORKER_POLL_MS: '100',
  });
  receiver = await startReceiver();
  receiver.respond(() => ({ status: 200, delayMs: 3_600_000 }));

  await seedWebhookBacklog(deployment, { name: 'Drain', url: `${receiver.url}/hook`, events: EVENTS });
});

afterAll(async () => {
  await receiver.close();
  await deployment.dispose();
});

function startWorker(): { child: ChildProcess; exited: Promise<Exit> } {
  const [node, ...args] = fromSource;
  const child = spawn(node!, [...args, 'serve', '--role', 'worker'], {
    cwd: repoRoot,
    env: deployment.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

/** The deployment's deliveries and attempts, read with the workers stopped (the embedded database has one process). */
async function snapshot() {
  const database = await openDatabase(loadConfig(deployment.env));
  try {
    return { deliveries: await database.db.select().from(webhookDeliveries), attempts: await database.db.select().from(webhookAttempts) };
  } finally {
    await database.close();
  }
}

/** Event ids received since request number `from` (a request counts when it arrives, answered or not). */
const uniqueIdsSince = (from: number) => new Set(receiver.received.slice(from).map((request) => request.headers['webhook-id'])).size;

describe('worker drain', () => {
  it('on SIGTERM a worker whose receiver never answers exits 0, gives its claims back, and the next worker delivers everything', async () => {
    const first = startWorker();
    await receiver.waitFor(1, 240_000);
    first.child.kill('SIGTERM');
    const exit = await first.exited;
    expect({ code: exit.code, signal: exit.signal }, exit.stdout + exit.stderr).toEqual({ code: 0, signal: null });

    const afterDrain = await snapshot();
    expect(afterDrain.deliveries).toHaveLength(EVENTS);
    expect(afterDrain.deliveries.filter((delivery) => delivery.status !== 'pending')).toEqual([]);
    expect(afterDrain.deliveries.filter((delivery) => delivery.leaseUntil !== null)).toEqual([]);
    // Every send that was cut short is on record, and did not use up a step of the schedule.
    const interrupted = afterDrain.attempts.filter((attempt) => attempt.errorKind === 'interrupted');
    expect(interrupted.length).toBe(afterDrain.attempts.length);
    expect(interrupted.length).toBeGreaterThanOrEqual(1);
    expect(new Set(interrupted.map((attempt) => attempt.deliveryId)).size).toBe(interrupted.length);
    expect(afterDrain.deliveries.every((delivery) => delivery.attemptCount === 0)).toBe(true);

    receiver.respond(() => ({ status: 200 }));
    const answeredFrom = receiver.received.length;
    const uniqueIds = () => uniqueIdsSince(answeredFrom);
    const second = startWorker();
    try {
      const deadline = Date.now() + 240_000;
      while (uniqueIds() < EVENTS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(uniqueIds()).toBe(EVENTS);
    } finally {
      second.child.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    }
    const delivered = await snapshot();
    expect(delivered.deliveries.filter((delivery) => delivery.status !== 'succeeded')).toEqual([]);
  }, 600_000);
});
