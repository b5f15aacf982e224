import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { Agent, request } from 'undici';
import { loadConfig } from '../src/config.ts';
import { createModules } from '../src/app.ts';
import { loadKeyring } from '../src/platform/crypto/keyring.ts';
import { queryRows, type Database } from '../src/platform/db/database.ts';
import { OUTBOX_CHANNEL, publish } from '../src/platform/events/outbox.ts';
import { fromSource, freePort } from '../test/support/process.ts';
import { webhookOrg } from '../test/support/webhook-deployment.ts';
import { benchDatabase, processCpuMs } from './support.ts';

const ENDPOINTS = 10;
/** Sent to all ten endpoints (one subscribes to `*`, nine to this type). */
const TO_TEN = 'kyc.verification.approved';
/** Sent to one endpoint only (the one subscribed to `*`). */
const TO_ONE = 'kyc.verification.rejected';

const wallNow = () => performance.timeOrigin + performance.now();

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/**
 * The receiver child process: how many requests arrived, and when each delivery (`<event id>
 * <path>`) first did; `duplicates` counts requests beyond the first of a delivery.
 */
async function startReceiver() {
  const child = fork(path.join(import.meta.dirname, 'webhook-receiver.ts'), { execArgv: ['--import', 'tsx'] });
  let posts = 0;
  let duplicates = 0;
  const arrivals = new Map<string, number>();
  const port = await new Promise<number>((resolve) =>
    child.on('message', (message: { port?: number; receipts?: [string, number][]; posts?: number }) => {
      if (message.port) resolve(message.port);
      posts += message.posts ?? 0;
      for (const [delivery, at] of message.receipts ?? []) {
        if (arrivals.has(delivery)) duplicates++;
        else arrivals.set(delivery, at);
      }
    }),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    posts: () => posts,
    duplicates: () => duplicates,
    arrivals,
    /** Resolves once every one of `deliveries` (`<event id> <path>`) has arrived. */
    async waitForDeliveries(deliveries: string[], timeoutMs = 600_000) {
      const deadline = Date.now() + timeoutMs;
      while (deliveries.some((delivery) => !arrivals.has(delivery))) {
        if (Date.now() > deadline) throw new Error(`${deliveries.filter((d) => !arrivals.has(d)).length} deliveries never arrived`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    /** Resolves once `count` distinct deliveries have arrived. */
    async waitForUnique(count: number, timeoutMs = 600_000) {
      const deadline = Date.now() + timeoutMs;
      while (arrivals.size < count) {
        if (Date.now() > deadline) throw new Error(`only ${arrivals.size} of ${count} deliveries arrived`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    reset() {
      posts = 0;
      duplicates = 0;
      arrivals.clear();
    },
    close: () => {
      child.kill();
    },
  };
}

/**
 * CPU time (user + system, ms) used so far by the PostgreSQL backends serving the benchmark's
 * database (read from `/proc`, so PostgreSQL on this machine): other databases' work does not count.
 */
async function backendCpuMs(database: Database): Promise<Map<number, number>> {
  if (database.kind !== 'postgres') return new Map();
  const rows = await queryRows<{ pid: number }>(database.db, sql`select pid from pg_stat_activity where datname = current_database()`);
  return new Map(rows.map(({ pid }) => [pid, processCpuMs(pid)]));
}

/** CPU time (user + system, ms) this process and the database's backends used while `work` ran, and its wall time (ms). */
async function measured<T>(
  database: Database,
  work: () => Promise<T>,
): Promise<{ value: T; cpuMs: number; postgresCpuMs: number; wallMs: number }> {
  const before = await backendCpuMs(database);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await work();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  let postgresCpuMs = 0;
  for (const [pid, after] of await backendCpuMs(database)) postgresCpuMs += after - (before.get(pid) ?? 0);
  return { value, cpuMs: (used.user + used.system) / 1000, postgresCpuMs, wallMs };
}

export type WebhookThroughput = { deliveriesPerSecond: number; cpuMsPerThousand: number; postgresCpuMsPerThousand: number };
export type WebhookBenchResult = {
  database: string;
  events: number;
  deliveries: number;
  /** Sends at once, of the dispatcher (`WEBHOOK_CONCURRENCY`) and of the raw loop alike. */
  concurrency: number;
  /** Each of `runs` rounds: the raw POST loop and the in-process dispatcher on a backlog. */
  rounds: { raw: WebhookThroughput; dispatcher: WebhookThroughput }[];
  /** Commit-to-receipt at a fixed rate of events, to one endpoint and to ten. */
  steady: { endpoints: number; eventsPerSecond: number; seconds: number; p50Ms: number; p99Ms: number; maxMs: number }[];
  /** PostgreSQL only: deliveries/s of one and of two `serve --role worker` processes, each round. */
  workerProcesses?: { one: number; two: number }[];
};

/**
 * The dispatcher against a floor measured in the same run: a raw undici POST loop to the same
 * receiver (another process) at the same concurrency, with the same body. Throughput is measured
 * on a backlog: `events` events committed to the outbox in one statement, then the worker started
 * and timed to the last receipt, with its node CPU time. Steady mode commits one event per
 * transaction at `rate` events/s for `steadySeconds` and measures commit to receipt. On
 * PostgreSQL, one and then two worker processes drain the same backlog.
 */
export async function benchWebhooks(options: {
  events: number;
  databaseUrl?: string;
  runs?: number;
  rate?: number;
  steadySeconds?: number;
}) {
  const runs = options.runs ?? 3;
  const rate = options.rate ?? 200;
  const steadySeconds = options.steadySeconds ?? 10;
  const database = await benchDatabase(options.databaseUrl);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    MASTER_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    HASH_SECRET: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'info',
    ALLOW_INSECURE_HTTP: 'true',
    DEMO_IDP: 'false',
    WEBHOOK_EGRESS_ALLOWLIST: '127.0.0.0/8',
    WORKER_POLL_MS: '250',
  };
  const config = { ...loadConfig(env), logLevel: 'info' as const };
  const keyring = loadKeyring({ masterKeys: env.MASTER_KEYS, hashSecret: env.HASH_SECRET });
  const modules = createModules({ config, database, keyring });
  const { org, principal } = await webhookOrg(modules, 'Bench');
  const receiver = await startReceiver();
  await modules.notifications.endpoints.create(principal, { url: `${receiver.url}/e0`, eventTypes: ['*'] });
  for (let i = 1; i < ENDPOINTS; i++) {
    await modules.notifications.endpoints.create(principal, { url: `${receiver.url}/e${i}`, eventTypes: [TO_TEN] });
  }
  const expected = options.events * ENDPOINTS;

  /** Commits `events` events to all ten endpoints in one statement, waking listening workers. */
  const seedBacklog = async () => {
    await database.db.execute(
      sql`insert into outbox_events (org_id, type, data)
          select ${org.id}::uuid, ${TO_TEN}, jsonb_build_object('verification_id', 'v-' || n, 'status', 'approved')
          from generate_series(1, ${options.events}) as n`,
    );
    await database.db.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`);
  };

  const body = JSON.stringify({
    id: crypto.randomUUID(),
    type: TO_TEN,
    created_at: new Date().toISOString(),
    org_id: org.id,
    data: { verification_id: 'v-1', status: 'approved' },
  });
  const rawLoop = async (): Promise<WebhookThroughput> => {
    receiver.reset();
    const agent = new Agent({ connections: 64 });
    let next = 0;
    const { cpuMs, wallMs, postgresCpuMs } = await measured(database, async () => {
      await Promise.all(
        Array.from({ length: config.webhookConcurrency }, async () => {
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
    });
    await agent.close();
    return {
      deliveriesPerSecond: expected / (wallMs / 1000),
      cpuMsPerThousand: (cpuMs / expected) * 1000,
      postgresCpuMsPerThousand: database.kind === 'postgres' ? (postgresCpuMs / expected) * 1000 : 0,
    };
  };

  const dispatcherRun = async (): Promise<WebhookThroughput> => {
    await seedBacklog();
    receiver.reset();
    const { cpuMs, wallMs, postgresCpuMs } = await measured(database, async () => {
      const worker = await modules.notifications.startWorker();
      await receiver.waitForUnique(expected);
      await worker.stop();
    });
    if (receiver.duplicates() > 0) throw new Error(`${receiver.duplicates()} deliveries arrived twice without a crash`);
    return {
      deliveriesPerSecond: expected / (wallMs / 1000),
      cpuMsPerThousand: (cpuMs / expected) * 1000,
      postgresCpuMsPerThousand: database.kind === 'postgres' ? (postgresCpuMs / expected) * 1000 : 0,
    };
  };

  const rounds: WebhookBenchResult['rounds'] = [];
  for (let round = 0; round < runs; round++) {
    const raw = await rawLoop();
    const dispatcher = await dispatcherRun();
    rounds.push({ raw, dispatcher });
  }

  const steady: WebhookBenchResult['steady'] = [];
  const worker = await modules.notifications.startWorker();
  for (const [endpoints, type] of [
    [1, TO_ONE],
    [ENDPOINTS, TO_TEN],
  ] as const) {
    receiver.reset();
    const committedAt = new Map<string, number>();
    const total = rate * steadySeconds;
    const started = wallNow();
    const commits: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - wallNow();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      commits.push(
        database.db
          .transaction((tx) => publish(tx, { orgId: org.id, type, data: { verification_id: `s-${i}`, status: 'approved' } }))
          .then((id) => {
            committedAt.set(id, wallNow());
          }),
      );
    }
    await Promise.all(commits);
    const paths = Array.from({ length: endpoints }, (_, i) => `/e${i}`);
    const deliveries = [...committedAt.keys()].flatMap((id) => paths.map((path) => `${id} ${path}`));
    await receiver.waitForDeliveries(deliveries);
    const latencies = deliveries
      .map((delivery) => receiver.arrivals.get(delivery)! - committedAt.get(delivery.split(' ')[0]!)!)
      .sort((a, b) => a - b);
    steady.push({
      endpoints,
      eventsPerSecond: rate,
      seconds: steadySeconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.at(-1) ?? 0,
    });
  }
  await worker.stop();

  let workerProcesses: WebhookBenchResult['workerProcesses'];
  if (database.kind === 'postgres') {
    workerProcesses = [];
    const processesRun = async (count: number) => {
      const children: ChildProcess[] = [];
      for (let i = 0; i < count; i++) {
        const port = await freePort();
        const [node, ...args] = fromSource;
        const child = spawn(node!, [...args, 'serve', '--role', 'worker'], {
          cwd: path.resolve(import.meta.dirname, '..'),
          env: { ...env, WORKER_HTTP_PORT: String(port), HOST: '127.0.0.1' },
          stdio: 'ignore',
        });
        children.push(child);
        for (;;) {
          if (child.exitCode !== null) throw new Error(`a worker process exited with ${child.exitCode}`);
          if (
            await fetch(`http://127.0.0.1:${port}/health/ready`).then(
              (r) => r.ok,
              () => false,
            )
          )
            break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      receiver.reset();
      const started = performance.now();
      await seedBacklog();
      await receiver.waitForUnique(expected);
      const rate = expected / ((performance.now() - started) / 1000);
      await Promise.all(
        children.map((child) => {
          child.kill('SIGTERM');
          return new Promise((resolve) => child.once('exit', resolve));
        }),
      );
      return rate;
    };
    for (let round = 0; round < runs; round++) workerProcesses.push({ one: await processesRun(1), two: await processesRun(2) });
  }

  receiver.close();
  await modules.notifications.close();
  await database.close();
  const result: WebhookBenchResult = {
    database: database.kind,
    events: options.events,
    deliveries: expected,
    concurrency: config.webhookConcurrency,
    rounds,
    steady,
    workerProcesses,
  };
  return result;
}
