import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { constantTimeEqual } from '../crypto/compare.ts';
import type { Database, Executor } from '../db/database.ts';
import { outboxBacklog } from '../events/outbox.ts';
import { AppError } from '../http/errors.ts';
import { boundedCheck } from '../http/health.ts';

export { Registry };

/** The process's one metrics registry: process metrics (CPU, memory, event loop, GC) included. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The metric `config.name` in `registry`, created there (a `Counter`, `Gauge` or `Histogram` of
 * `config`) the first time: several listeners or module instances of one process may ask for the
 * same metric, which prom-client registers once.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any metric class: Counter, Gauge, Histogram, Summary
type MetricClass = new (config: any) => Metric;

export function metricIn<K extends MetricClass>(
  registry: Registry,
  Kind: K,
  config: Omit<ConstructorParameters<K>[0], 'registers'> & { name: string },
): InstanceType<K> {
  return (
    (registry.getSingleMetric(config.name) as InstanceType<K> | undefined) ??
    (new Kind({ ...config, registers: [registry] }) as InstanceType<K>)
  );
}

/**
 * A value read at scrape time through `read` (a database query), bounded by `timeoutMs` and shared
 * by the gauges a scrape reads at once; `undefined` when the read failed or took too long, so the
 * scrape still answers (with NaN for those gauges) while the database is away.
 */
export function scrapeSample<T>(read: () => Promise<T>, timeoutMs: number): () => Promise<T | undefined> {
  const bounded = boundedCheck(read, timeoutMs);
  return () => bounded().catch(() => undefined);
}

export type JobMetrics = {
  /** Runs `run` as one run of `job`: counted by result (`ok`, `failed`) and timed in seconds; rethrows. */
  track<T>(job: string, run: () => Promise<T>): Promise<T>;
};

/**
 * Periodic work of the process (`tranche_job_runs_total{job,result}`, `tranche_job_duration_seconds{job}`):
 * the webhook worker's passes, the expired Idempotency-Key sweep.
 */
export function jobMetrics(registry: Registry): JobMetrics {
  const runs = metricIn(registry, Counter, {
    name: 'tranche_job_runs_total',
    help: 'Runs of periodic jobs (worker passes, sweeps) by job and result (ok, failed)',
    labelNames: ['job', 'result'] as const,
  });
  const duration = metricIn(registry, Histogram, {
    name: 'tranche_job_duration_seconds',
    help: 'Duration of one run of a periodic job in seconds',
    labelNames: ['job'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
  });
  return {
    async track<T>(job: string, run: () => Promise<T>): Promise<T> {
      const stop = duration.startTimer({ job });
      try {
        const value = await run();
        runs.inc({ job, result: 'ok' });
        return value;
      } catch (error) {
        runs.inc({ job, result: 'failed' });
        throw error;
      } finally {
        stop();
      }
    },
  };
}

/**
 * Database metrics, read at scrape time: the connection pool (`tranche_db_pool_*`; the embedded
 * database has one connection and reports only its maximum and total) and the outbox lag (events
 * committed but not yet turned into deliveries, and the age of the oldest in seconds).
 */
export function databaseMetrics(registry: Registry, database: Pick<Database, 'connections'> & { db: Executor }, timeoutMs: number) {
  metricIn(registry, Gauge, {
    name: 'tranche_db_pool_max_connections',
    help: 'Most database connections this process opens (DB_POOL_SIZE; 1 on the embedded database)',
    collect() {
      this.set(database.connections().max);
    },
  });
  metricIn(registry, Gauge, {
    name: 'tranche_db_pool_connections',
    help: 'Open database connections of this process: in_use (checked out), idle, total',
    labelNames: ['state'] as const,
    collect() {
      const { total, idle } = database.connections();
      this.set({ state: 'total' }, total);
      if (idle === undefined) return;
      this.set({ state: 'idle' }, idle);
      this.set({ state: 'in_use' }, total - idle);
    },
  });
  if (database.connections().waiting !== undefined) {
    metricIn(registry, Gauge, {
      name: 'tranche_db_pool_waiting_queries',
      help: 'Queries of this process waiting for a free database connection',
      collect() {
        this.set(database.connections().waiting ?? 0);
      },
    });
  }

  const outbox = scrapeSample(() => outboxBacklog(database.db), timeoutMs);
  metricIn(registry, Gauge, {
    name: 'tranche_outbox_pending_events',
    help: 'Outbox events committed but not yet dispatched to webhook deliveries (the same in every process)',
    async collect() {
      this.set((await outbox())?.pending ?? Number.NaN);
    },
  });
  metricIn(registry, Gauge, {
    name: 'tranche_outbox_oldest_pending_age_seconds',
    help: 'Age in seconds of the oldest outbox event not yet dispatched; 0 when none (the same in every process)',
    async collect() {
      this.set((await outbox())?.oldestAgeSeconds ?? Number.NaN);
    },
  });
}

const digest = (value: string) => createHash('sha256').update(value).digest('hex');

/** Whether the request carries `Authorization: Bearer <token>`; digests are compared so neither length nor content leaks. */
function presentsToken(request: FastifyRequest, token: string): boolean {
  const header = request.headers.authorization;
  const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
  return constantTimeEqual(digest(presented), digest(token));
}

export type MetricsPluginOptions = {
  registry: Registry;
  /** Serve `GET /metrics` on this server (false when METRICS_PORT moves it to its own listener). */
  serve: boolean;
  /** METRICS_TOKEN: `/metrics` then requires `Authorization: Bearer <token>`, else 401. */
  token?: string;
};

/** Request durations by method, route pattern and status into `registry`, and `GET /metrics` when `serve`. */
export const metricsPlugin = fp(async (app: FastifyInstance, options: MetricsPluginOptions) => {
  const { registry, token } = options;
  const duration = metricIn(registry, Histogram, {
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });

  app.addHook('onResponse', async (request, reply) => {
    duration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  if (!options.serve) return;
  app.get(
    '/metrics',
    {
      schema: { hide: true },
      onRequest: async (request, reply) => {
        if (token === undefined || presentsToken(request, token)) return;
        reply.header('www-authenticate', 'Bearer realm="metrics"');
        throw new AppError('UNAUTHORIZED', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>');
      },
    },
    async (_request, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.metrics();
    },
  );
});
