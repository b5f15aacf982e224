import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { startBenchServer } from './support.ts';
import { publish } from '../src/platform/events/outbox.ts';

const ENDPOINTS = 10;
const CONCURRENCY = 32;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** A receiver on one port with ten paths; it notes when each delivery arrived. */
async function startReceiver(onReceive: (eventId: string) => void) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = req.headers['webhook-id'];
      if (typeof id === 'string') onReceive(id);
      res.writeHead(200).end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * The dispatcher (outbox → fan-out → signed POSTs, every attempt recorded) against the floor: a
 * raw undici POST loop to the same receiver at the same concurrency, with the same body size.
 */
export async function benchWebhooks(options: { events: number; databaseUrl?: string }) {
  const server = await startBenchServer({
    databaseUrl: options.databaseUrl,
    config: { webhookEgressAllowlist: '127.0.0.0/8', workerPollMs: 50 },
  });
  const { database, modules, org } = server;

  const committedAt = new Map<string, number>();
  const latencies: number[] = [];
  let received = 0;
  let lastReceipt = 0;
  let floorMode = false;
  const receiver = await startReceiver((eventId) => {
    if (floorMode) return;
    const now = performance.now();
    received++;
    lastReceipt = now;
    const committed = committedAt.get(eventId);
    if (committed !== undefined) latencies.push(now - committed);
  });

  for (let i = 0; i < ENDPOINTS; i++) {
    await modules.notifications.endpoints.create(
      { kind: 'api_key', orgId: org.id, apiKeyId: 'bench' },
      { url: `${receiver.url}/e${i}`, eventTypes: ['*'] },
    );
  }

  const expected = options.events * ENDPOINTS;
  const worker = await modules.notifications.startWorker();
  const started = performance.now();
  for (let batch = 0; batch < options.events; batch += 100) {
    const ids = await database.db.transaction(async (tx) => {
      const inserted: string[] = [];
      for (let i = batch; i < Math.min(batch + 100, options.events); i++) {
        inserted.push(
          await publish(tx, { orgId: org.id, type: 'kyc.verification.approved', data: { verification_id: `v-${i}`, status: 'approved' } }),
        );
      }
      return inserted;
    });
    const now = performance.now();
    for (const id of ids) committedAt.set(id, now);
  }
  while (received < expected) await new Promise((resolve) => setTimeout(resolve, 20));
  await worker.stop();
  const dispatcherSeconds = (lastReceipt - started) / 1000;
  latencies.sort((a, b) => a - b);

  floorMode = true;
  const body = JSON.stringify({
    id: crypto.randomUUID(),
    type: 'kyc.verification.approved',
    created_at: new Date().toISOString(),
    org_id: org.id,
    data: { verification_id: 'v-1', status: 'approved' },
  });
  const agent = new Agent({ connections: 64 });
  let next = 0;
  const floorStarted = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < expected) {
        const n = next++;
        const response = await request(`${receiver.url}/e${n % ENDPOINTS}`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
          dispatcher: agent,
        });
        await response.body.dump();
      }
    }),
  );
  const floorSeconds = (performance.now() - floorStarted) / 1000;
  await agent.close();

  await receiver.close();
  await server.close();
  return {
    database: database.kind,
    events: options.events,
    deliveries: expected,
    dispatcher: {
      seconds: dispatcherSeconds,
      eventsPerSecond: options.events / dispatcherSeconds,
      deliveriesPerSecond: expected / dispatcherSeconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
    },
    floor: { seconds: floorSeconds, postsPerSecond: expected / floorSeconds },
    ratio: expected / dispatcherSeconds / (expected / floorSeconds),
  };
}
