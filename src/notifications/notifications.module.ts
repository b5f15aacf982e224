import { auditWriter, type AuditWriter } from '../platform/audit/audit.service.ts';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Clock } from '../platform/clock.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { ping, queryRows, type Database } from '../platform/db/database.ts';
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
    | 'webhookConcurrency'
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

/**
 * The embedded database has no autovacuum (PGlite runs PostgreSQL in single-user mode), and a
 * PostgreSQL server may have it turned off (`autovacuum = off`): then the queue tables' statistics
 * and dead rows are the worker's to look after. Without statistics the planner takes the queue for
 * empty and sorts every due delivery at each claim; without vacuum every claim and result leaves a
 * dead row version behind for good. `ANALYZE` once this many rows changed (events fanned out plus
 * deliveries claimed) since the last; `VACUUM (ANALYZE)` at most once a minute while any did.
 */
const QUEUE_ANALYZE_AFTER = 2000;
const QUEUE_VACUUM_EVERY_MS = 60_000;
const QUEUE_TABLES = sql.raw('outbox_events, webhook_messages, webhook_deliveries, webhook_attempts');

/** Rows deleted per retention statement, and statements per table per run. */
const PRUNE_BATCH = 1000;
const PRUNE_MAX_BATCHES = 20;

export function createNotifications(deps: NotificationsDeps) {
  const { database, keyring, clock, config } = deps;
  const metrics = deps.metrics ?? new Registry();
  const jobs = jobMetrics(metrics);
  const db = database.db;
  const endpoints = endpointsRepo(db);
  const deliveries = deliveriesRepo(db, database.runPrepared);
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
    concurrency: config.webhookConcurrency,
    log: deps.log,
    onAttempt: observer.onAttempt,
    sendTimeoutMs: config.webhookTimeoutMs,
  });

  /**
   * Retention (`WEBHOOK_RETENTION_DAYS`): deletes finished deliveries with their attempts, then
   * messages no delivery is left of, then dispatched outbox events, created before the cutoff, in batches of `PRUNE_BATCH` (each its own
   * statement, so no long lock), at most `PRUNE_MAX_BATCHES` of each per call; the worker calls it
   * at most once a minute. Returns how many rows of each it deleted.
   */
  async function pruneExpired(): Promise<{ deliveries: number; messages: number; events: number }> {
    const pruned = { deliveries: 0, messages: 0, events: 0 };
    if (config.webhookRetentionDays === 0) return pruned;
    const before = new Date(clock.now().getTime() - config.webhookRetentionDays * 86_400_000);
    for (let batch = 0; batch < PRUNE_MAX_BATCHES; batch++) {
      const deleted = await deliveries.prune(before, PRUNE_BATCH);
      pruned.deliveries += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    for (let batch = 0; batch < PRUNE_MAX_BATCHES; batch++) {
      const deleted = await deliveries.pruneMessages(before, PRUNE_BATCH);
      pruned.messages += deleted;
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

  /**
   * See `QUEUE_ANALYZE_AFTER`: on the embedded database, and on a PostgreSQL server whose
   * autovacuum is off (read once, with a warning); otherwise a no-op. Never throws.
   */
  const upkeep = (() => {
    let changed = 0;
    let changedSinceVacuum = false;
    let lastVacuum = Date.now();
    let needed: Promise<boolean> | undefined;
    let current: Promise<void> | undefined;
    const isNeeded = (log?: FastifyBaseLogger) =>
      (needed ??=
        database.kind === 'embedded'
          ? Promise.resolve(true)
          : queryRows<{ autovacuum: string }>(db, sql`select current_setting('autovacuum') as autovacuum`).then(
              ([row]) => {
                const off = row?.autovacuum === 'off';
                if (off) log?.warn('autovacuum is off: the webhook worker analyzes and vacuums its queue tables itself');
                return off;
              },
              () => {
                needed = undefined; // ask again on the next run
                return false;
              },
            ));
    return {
      note(rows: number) {
        changed += rows;
        if (rows > 0) changedSinceVacuum = true;
      },
      /** Starts what is due in the background (never two at once): a VACUUM may take seconds, and fan-out goes on meanwhile. */
      run(log?: FastifyBaseLogger) {
        if (current || !(changed > 0 || changedSinceVacuum)) return;
        current = work(log).finally(() => (current = undefined));
      },
      /** Resolves once the upkeep running now (if any) has ended (a worker stopping waits for it). */
      settled: () => current ?? Promise.resolve(),
    };
    async function work(log?: FastifyBaseLogger) {
      if (!(await isNeeded(log))) return;
      try {
        if (changedSinceVacuum && Date.now() - lastVacuum >= QUEUE_VACUUM_EVERY_MS) {
          lastVacuum = Date.now();
          changedSinceVacuum = false;
          changed = 0;
          await db.execute(sql`vacuum (analyze) ${QUEUE_TABLES}`);
        } else if (changed >= QUEUE_ANALYZE_AFTER) {
          changed = 0;
          await db.execute(sql`analyze ${QUEUE_TABLES}`);
        }
      } catch (error) {
        log?.warn({ err: error }, 'webhook queue upkeep failed');
      }
    }
  })();

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
     * The delivery worker, two loops over one dispatcher: fan-out (woken by NOTIFY on the outbox,
     * polling as a fallback) turns events into deliveries batch after batch, and delivery (woken by
     * fan-out, by NOTIFY on the deliveries channel, and by polling for retries that come due) keeps
     * the dispatcher's pipeline full. `stop()` drains it: nothing more is claimed, claims not yet
     * sent are released at once for another worker, sends in flight get `drainMs` (default
     * `WORKER_DRAIN_SECONDS`) to finish, then are cut short and recorded as `interrupted` (due again
     * at once). It resolves when the worker is idle, or `drainMs` + 5 s after the call if recording
     * hangs (a database outage): the leases of what is left then end by themselves.
     */
    async startWorker(log: FastifyBaseLogger | undefined = deps.log) {
      let running = true;
      const stopping = new AbortController();
      const interrupting = new AbortController();
      const signals = { stop: stopping.signal, interrupt: interrupting.signal };
      /** A wake-up that is never lost: one that comes while its loop is busy is kept for its next wait. */
      const alarm = () => {
        let woken = false;
        let resolveWait: (() => void) | undefined;
        return {
          ring() {
            woken = true;
            resolveWait?.();
          },
          async wait(ms: number) {
            if (!woken && running) {
              await new Promise<void>((resolve) => {
                resolveWait = resolve;
                setTimeout(resolve, ms).unref();
              });
              resolveWait = undefined;
            }
            woken = false;
          },
        };
      };
      const outboxAlarm = alarm();
      const deliveryAlarm = alarm();
      // One LISTEN connection for both channels: either notification wakes both loops (a fan-out
      // that finds nothing costs one indexed query).
      const unlisten = await database.listen([OUTBOX_CHANNEL, DELIVERIES_CHANNEL], () => {
        outboxAlarm.ring();
        deliveryAlarm.ring();
        dispatcher.nudge();
      });
      const fanOutLoop = (async () => {
        while (running) {
          let events = 0;
          try {
            events = await jobs.track('webhook_fan_out', () => dispatcher.fanOut());
          } catch (error) {
            log?.error({ err: error }, 'webhook fan-out failed');
          }
          if (events > 0) deliveryAlarm.ring();
          upkeep.note(events);
          upkeep.run(log);
          pruneInBackground();
          if (events === 0) await outboxAlarm.wait(config.workerPollMs);
        }
      })();
      const deliveryLoop = (async () => {
        while (running) {
          let claimed = 0;
          try {
            claimed = await jobs.track('webhook_dispatch', () => dispatcher.deliverDue(signals));
          } catch (error) {
            log?.error({ err: error }, 'dispatcher pass failed');
          }
          upkeep.note(claimed);
          if (claimed === 0) await deliveryAlarm.wait(config.workerPollMs);
        }
      })();
      const loops = Promise.all([fanOutLoop, deliveryLoop]);
      return {
        async stop(drainMs = config.workerDrainSeconds * 1000) {
          running = false;
          stopping.abort();
          outboxAlarm.ring();
          deliveryAlarm.ring();
          const deadline = setTimeout(() => interrupting.abort(), drainMs);
          let giveUp: NodeJS.Timeout | undefined;
          const hung = new Promise<'hung'>((resolve) => (giveUp = setTimeout(() => resolve('hung'), drainMs + 5000)));
          try {
            if ((await Promise.race([loops, hung])) === 'hung') log?.warn('the worker did not finish draining; its leases will expire');
            await upkeep.settled();
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
