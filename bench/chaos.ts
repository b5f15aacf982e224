import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createModules } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { loadKeyring } from '../src/platform/crypto/keyring.ts';
import { openDatabase } from '../src/platform/db/database.ts';
import { freePort, fromSource, startServer } from '../test/support/process.ts';

const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432/test';
const CLIENTS = 8;

export type ChaosResult = {
  seconds: number;
  terminations: number;
  backendsTerminated: number;
  requests: number;
  ok: number;
  unavailable503: number;
  other5xx: number;
  otherStatus: number;
  networkErrors: number;
  eventsCommitted: number;
  eventsDelivered: number;
  deliveredUncommitted: number;
  duplicates: number;
  lost: number;
  recoveryP50Ms: number;
  recoveryMaxMs: number;
  drainSeconds: number;
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Fault injection on PostgreSQL: `tranche serve` (API and worker, a real process) on a fresh
 * database, `CLIENTS` loops of `POST /notifications/webhooks/:id/test` (each commits a delivery to a
 * local receiver) for `seconds`, while every `killEverySeconds` every other backend of the database
 * is terminated (`pg_terminate_backend`). Counts answers by kind, and events committed (2xx),
 * delivered, duplicated and lost (committed, never received within `settleSeconds` after the load).
 * Recovery: for each termination, the time until the next 2xx answer.
 */
export async function benchChaos(options: { serverUrl?: string; seconds: number; killEverySeconds?: number; settleSeconds?: number }) {
  const serverUrl = options.serverUrl ?? DEFAULT_SERVER;
  const name = `tranche_chaos_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;

  const received = new Map<string, number>();
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = req.headers['webhook-id'];
      if (typeof id === 'string') received.set(id, (received.get(id) ?? 0) + 1);
      // A little time on the wire, so a termination finds sends in flight.
      setTimeout(() => res.writeHead(200).end('ok'), 5);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: url.toString(),
    MASTER_KEYS: `chaos:${randomBytes(32).toString('base64')}`,
    HASH_SECRET: randomBytes(32).toString('base64url'),
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    ALLOW_INSECURE_HTTP: 'true',
    DEMO_IDP: 'false',
    WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
    WEBHOOK_TIMEOUT_MS: '5000',
    WEBHOOK_LEASE_SECONDS: '15',
    WORKER_POLL_MS: '250',
  };

  // The org, its API key and the endpoint, before the server starts.
  const config = loadConfig(env);
  const setup = await openDatabase(config);
  await setup.migrate();
  const modules = createModules({
    config,
    database: setup,
    keyring: loadKeyring({ masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET }),
  });
  const org = await modules.identity.orgs.createOrg({
    name: 'Chaos',
    idpIssuer: 'https://idp.example.com',
    idpJwksUrl: 'https://idp.example.com/jwks',
    idpAudience: 'chaos',
  });
  const apiKey = (await modules.identity.orgs.createApiKey(org.id)).key;
  const endpoint = await modules.notifications.endpoints.create(
    { kind: 'api_key', orgId: org.id, apiKeyId: 'chaos' },
    { url: receiverUrl, eventTypes: ['*'] },
  );
  await modules.notifications.close();
  await setup.close();

  const server = await startServer([...fromSource, 'serve'], env, port, '/health/ready');
  const counts = { requests: 0, ok: 0, unavailable503: 0, other5xx: 0, otherStatus: 0, networkErrors: 0 };
  const committed = new Set<string>();
  const successes: number[] = [];
  const kills: number[] = [];
  let backendsTerminated = 0;
  let running = true;

  const client = async () => {
    while (running) {
      counts.requests++;
      try {
        const response = await fetch(`${server.url}/notifications/webhooks/${endpoint.id}/test`, {
          method: 'POST',
          headers: { 'x-api-key': apiKey },
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await response.json().catch(() => ({}))) as { data?: { event_id?: string } };
        if (response.status >= 200 && response.status < 300) {
          counts.ok++;
          successes.push(performance.now());
          if (body.data?.event_id) committed.add(body.data.event_id);
        } else if (response.status === 503) {
          counts.unavailable503++;
          await sleep(100);
        } else if (response.status >= 500) counts.other5xx++;
        else counts.otherStatus++;
      } catch {
        counts.networkErrors++;
        await sleep(100);
      }
    }
  };

  const chaos = (async () => {
    const every = (options.killEverySeconds ?? 3) * 1000;
    await sleep(every);
    while (running) {
      const { rowCount } = await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [name],
      );
      backendsTerminated += rowCount ?? 0;
      kills.push(performance.now());
      await sleep(every);
    }
  })();

  const started = performance.now();
  const clients = Array.from({ length: CLIENTS }, client);
  await sleep(options.seconds * 1000);
  running = false;
  await Promise.all([...clients, chaos]);
  const seconds = (performance.now() - started) / 1000;

  // Everything committed should arrive; wait for it (bounded) before counting what is lost.
  const drainStarted = performance.now();
  const settleMs = (options.settleSeconds ?? 120) * 1000;
  while ([...committed].some((id) => !received.has(id)) && performance.now() - drainStarted < settleMs) await sleep(250);
  const drainSeconds = (performance.now() - drainStarted) / 1000;
  await sleep(2000); // late duplicates, if any

  const recoveries = kills
    .map((at) => successes.find((success) => success > at))
    .map((next, index) => (next === undefined ? Number.POSITIVE_INFINITY : next - kills[index]!))
    .sort((a, b) => a - b);

  const exit = await server.stop('SIGTERM');
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();

  const result: ChaosResult = {
    seconds,
    terminations: kills.length,
    backendsTerminated,
    ...counts,
    eventsCommitted: committed.size,
    eventsDelivered: [...committed].filter((id) => received.has(id)).length,
    deliveredUncommitted: [...received.keys()].filter((id) => !committed.has(id)).length,
    duplicates: [...received.values()].reduce((sum, count) => sum + count - 1, 0),
    lost: [...committed].filter((id) => !received.has(id)).length,
    recoveryP50Ms: percentile(recoveries, 50),
    recoveryMaxMs: recoveries.at(-1) ?? 0,
    drainSeconds,
  };
  return { ...result, serverExitCode: exit.code };
}
