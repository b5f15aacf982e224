import { auditWriter, type AuditWriter } from '../platform/audit/audit.service.ts';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Clock } from '../platform/clock.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { ping, type Database } from '../platform/db/database.ts';
import { OUTBOX_CHANNEL, pruneDispatched } from '../platform/events/outbox.ts';
import { registerServiceInfo } from '../platform/http/service-info.ts';
import { jobMetrics, Registry } from '../platform/observability/metrics.ts';
import { throttled } from '../platform/throttle.ts';
import { deliveriesRepo } from './deliveries/deliveries.repo.ts';
import { deliveriesRoutes } from './deliveries/deliveries.routes.ts';
import { deliveryObserver } from './delivery-observer.ts';
import { DELIVERIES_CHANNEL, dispatcher as createDispatcher } from './dispatcher.ts';
import { egressPolicy } from './egress-guard.ts';
import { endpointsRepo } from './endpoints/endpoints.repo.ts';
import { endpointsRoutes } from './endpoints/endpoints.routes.ts';
import { endpointsService } from './endpoints/endpoints.service.ts';
import { httpSender } from './http-sender.ts';

export type NotificationsDeps = {
  database: Database;
  keyring: Keyring;
  clock: Clock;
  config: Pick<
    Config,
    | 'allowInsecureHttp'
    | 'webhookEgressAllowlist'
    | 'webhookTimeoutMs'
    | 'webhookRetryScheduleSeconds'
    | 'webhookSecretGraceSeconds'
    | 'webhookDisableAfterHours'
    | 'workerPollMs'
    | 'webhookLeaseSeconds'
    | 'workerDrainSeconds'
    | 'webhookRetentionDays'
    | 'healthTimeoutMs'
  >;
  version: string;
  /** Where consequential changes are recorded; default a writer on the database. */
  audit?: AuditWriter;
  /** The process's metrics registry (webhook metrics, worker passes); default: one of its own, unserved. */
  metrics?: Registry;
  /** Where the worker logs failed attempts and failed passes. */
  log?: FastifyBaseLogger;
};

/** Rows deleted per retention statement, and statements per table per run. */
const PRUNE_BATCH = 1000;
const PRUNE_MAX_BATCHES = 20;

export function createNotifications(deps: NotificationsDeps) {
  const { database, keyring, clock, config } = deps;
  const metrics = deps.metrics ?? new Registry();
  const jobs = jobMetrics(metrics);
  const db = database.db;
  const endpoints = endpointsRepo(db);
  const deliveries = deliveriesRepo(db);
  const egress = egressPolicy(config.webhookEgressAllowlist);
  const sender = httpSender({ policy: egress, timeoutMs: config.webhookTimeoutMs });
  const wake = async () => {
    await db.execute(sql`select pg_notify(${DELIVERIES_CHANNEL}, '')`);
  };
  const audit = deps.audit ?? auditWriter(db, keyring);
  const service = endpointsService({
    db,
    repo: endpoints,
    deliveries,
    keyring,
    clock,
    allowInsecureHttp: config.allowInsecureHttp,
    egress,
    secretGraceSeconds: config.webhookSecretGraceSeconds,
    wake,
    audit,
  });
  const observer = deliveryObserver({
    registry: metrics,
    log: deps.log,
    backlog: () => deliveries.backlog(clock.now()),
    timeoutMs: config.healthTimeoutMs,
  });
  const dispatcher = createDispatcher({
    db,
    audit,
    endpoints,
    deliveries,
    sender,
    keyring,
    clock,
    retryScheduleSeconds: config.webhookRetryScheduleSeconds,
    disableAfterMs: config.webhookDisableAfterHours * 3_600_000,
    leaseSeconds: config.webhookLeaseSeconds,
    log: deps.log,
    onAttempt: observer.onAttempt,
    sendTimeoutMs: config.webhookTimeoutMs,
  });

  /**
   * Retention (`WEBHOOK_RETENTION_DAYS`): deletes finished deliveries with their attempts, then
   * dispatched outbox events, created before the cutoff, in batches of `PRUNE_BATCH` (each its own
   * statement, so no long lock), at most `PRUNE_MAX_BATCHES` of each per call; the worker calls it
   * at most once a minute. Returns how many rows of each it deleted.
   */
  async function pruneExpired(): Promise<{ deliveries: number; events: number }> {
    const pruned = { deliveries: 0, events: 0 };
    if (config.webhookRetentionDays === 0) return pruned;
    const before = new Date(clock.now().getTime() - config.webhookRetentionDays * 86_400_000);
    for (let batch = 0; batch < PRUNE_MAX_BATCHES; batch++) {
      const deleted = await deliveries.prune(before, PRUNE_BATCH);
      pruned.deliveries += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    for (let batch = 0; batch < PRUNE_MAX_BATCHES; batch++) {
      const deleted = await pruneDispatched(db, before, PRUNE_BATCH);
      pruned.events += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    return pruned;
  }
  const pruneInBackground = throttled(() => jobs.track('webhook_retention', pruneExpired), 60_000);

  return {
    endpoints: service,
    deliveries,
    dispatcher,
    pruneExpired,
    async routes(app: FastifyInstance) {
      registerServiceInfo(app, {
        name: 'notifications',
        description: 'Webhook endpoints, signed and retried deliveries',
        version: deps.version,
        checkDatabase: () => ping(db),
        healthTimeoutMs: config.healthTimeoutMs,
      });
      await app.register(endpointsRoutes, { endpoints: service });
      await app.register(deliveriesRoutes, { deliveries, dispatcher });
    },

    /**
     * The delivery worker: woken by NOTIFY on commit, polling as a fallback. `stop()` drains it:
     * nothing more is claimed, claims not yet sent are released at once for another worker, sends
     * in flight get `drainMs` (default `WORKER_DRAIN_SECONDS`) to finish, then are cut short and
     * recorded as `interrupted` (due again at once). It resolves when the worker is idle, or
     * `drainMs` + 5 s after the call if recording hangs (a database outage): the leases of what
     * is left then end by themselves.
     */
    async startWorker(log: FastifyBaseLogger | undefined = deps.log) {
      let running = true;
      let wakeUp: (() => void) | undefined;
      const stopping = new AbortController();
      const interrupting = new AbortController();
      const signals = { stop: stopping.signal, interrupt: interrupting.signal };
      const nudge = () => wakeUp?.();
      const unlisten = await database.listen([OUTBOX_CHANNEL, DELIVERIES_CHANNEL], nudge);
      const loop = (async () => {
        while (running) {
          let busy = false;
          try {
            busy = await jobs.track('webhook_dispatch', () => dispatcher.runOnce(signals));
          } catch (error) {
            log?.error({ err: error }, 'dispatcher pass failed');
          }
          pruneInBackground();
          if (busy || !running) continue;
          await new Promise<void>((resolve) => {
            wakeUp = resolve;
            setTimeout(resolve, config.workerPollMs).unref();
          });
          wakeUp = undefined;
        }
      })();
      return {
        async stop(drainMs = config.workerDrainSeconds * 1000) {
          running = false;
          stopping.abort();
          nudge();
          const deadline = setTimeout(() => interrupting.abort(), drainMs);
          let giveUp: NodeJS.Timeout | undefined;
          const hung = new Promise<'hung'>((resolve) => (giveUp = setTimeout(() => resolve('hung'), drainMs + 5000)));
          try {
            if ((await Promise.race([loop, hung])) === 'hung') log?.warn('the worker did not finish draining; its leases will expire');
          } finally {
            clearTimeout(deadline);
            clearTimeout(giveUp);
          }
          await unlisten();
        },
      };
    },
    close: () => sender.close(),
  };
}

export type Notifications = ReturnType<typeof createNotifications>;
