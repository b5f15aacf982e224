import type { AuditWriter } from '../platform/audit/audit.service.ts';
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { LRUCache } from 'lru-cache';
import pRetry from 'p-retry';
import type { Clock } from '../platform/clock.ts';
import { unseal } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { Db, Executor } from '../platform/db/database.ts';
import { isDatabaseUnavailable } from '../platform/db/errors.ts';
import { claimUndispatched, markDispatched, publish } from '../platform/events/outbox.ts';
import type { DeliveriesRepo, DeliveryRow } from './deliveries/deliveries.repo.ts';
import type { EndpointRow, EndpointsRepo } from './endpoints/endpoints.repo.ts';
import type { HttpSender, SendResult } from './http-sender.ts';
import { signatureHeader } from './signing.ts';

export const DELIVERIES_CHANNEL = 'tranche_deliveries';

export type DispatcherOptions = {
  db: Db;
  /** Records an endpoint the worker disables (actor `system`, `webhook-worker`); default none. */
  audit?: AuditWriter;
  endpoints: EndpointsRepo;
  deliveries: DeliveriesRepo;
  sender: HttpSender;
  keyring: Keyring;
  clock: Clock;
  /** Delays before each retry, in seconds, after the first try. */
  retryScheduleSeconds: number[];
  jitter?: number;
  random?: () => number;
  leaseSeconds?: number;
  /** Events fanned out per transaction. */
  batchSize?: number;
  /** Sends in flight at once, and so deliveries claimed at once. */
  concurrency?: number;
  /** The sender's timeout: a send starts only while its lease can outlast it. */
  sendTimeoutMs?: number;
  disableAfterMs: number;
  log?: FastifyBaseLogger;
  /** Endpoints whose unsealed signing secrets are kept between claims (least recently used dropped first); default 1000. */
  secretCacheSize?: number;
  /** Called once per scheduled attempt after its result is recorded (metrics, the failed-attempt log line). */
  onAttempt?: (report: AttemptReport) => void;
};

/**
 * One scheduled attempt, as recorded: `attemptNumber` counts from 1; `outcome` is `succeeded`,
 * `retrying` (a retry at `nextAttemptAt`), `exhausted` (no retry: the schedule ran out, or 410
 * Gone), `superseded` (the lease had passed to another worker, which will record its own attempt)
 * or `interrupted` (cut short by this worker's shutdown; due again at once, no step used up).
 */
export type AttemptReport = {
  delivery: DeliveryRow;
  endpoint: EndpointRow;
  result: SendResult;
  attemptNumber: number;
  outcome: 'succeeded' | 'retrying' | 'exhausted' | 'superseded' | 'interrupted';
  nextAttemptAt: Date | null;
  at: Date;
};

/**
 * An endpoint's signing secrets, unsealed, as they were at `version` of the endpoint row; each with
 * its expiry (null: the current secret), so a rotated one stops signing when its grace period ends.
 */
type CachedSecrets = { version: number; secrets: { secret: string; expiresAt: Date | null }[] };

type RecordedFailure = Pick<AttemptReport, 'attemptNumber' | 'outcome' | 'nextAttemptAt'>;

export const secretAad = (secretId: string) => `webhook_secrets:${secretId}`;

/** How a worker that is shutting down tells a delivery pass to wind up (see `deliverDue`). */
export type DrainSignals = {
  /** Fires when shutdown starts: nothing more is claimed or sent; claims not yet sent are released. */
  stop?: AbortSignal;
  /** Fires at the drain deadline: sends still in flight are cut short and recorded as `interrupted`. */
  interrupt?: AbortSignal;
};

type Outcome = { delivery: DeliveryRow; endpoint: EndpointRow; result: SendResult; at: Date };

/**
 * Runs `write` again while the database is unavailable (a dropped connection, a restart), up to
 * five tries over about 3 s: a result that could not be recorded would be sent again.
 */
function persistently<T>(write: () => Promise<T>): Promise<T> {
  return pRetry(write, { retries: 4, minTimeout: 200, factor: 2, shouldRetry: ({ error }) => isDatabaseUnavailable(error) });
}

/**
 * Turns outbox events into deliveries and delivers them, at least once: a delivery is claimed
 * under a lease, so a worker that dies mid-send leaves it to be claimed again when the lease ends.
 * It claims no more than it sends at once, so a worker killed at any moment sends again at most
 * what it had in flight (`concurrency` sends).
 */
export function dispatcher(options: DispatcherOptions) {
  const { db, endpoints, deliveries, sender, keyring, clock } = options;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  const leaseMs = (options.leaseSeconds ?? 60) * 1000;
  const batchSize = options.batchSize ?? 250;
  // A chunk is claimed only as large as can be in flight at once: nothing waits, claimed, for a
  // free send slot (and can be sent twice after a crash, or held past its lease).
  const claimSize = Math.min(batchSize, options.concurrency ?? 32);
  const schedule = options.retryScheduleSeconds;
  const longestStep = Math.max(...schedule);
  // A send starts only while the lease has this long left, so it ends (or times out) before the
  // lease does and no other worker can claim the delivery while it is in flight.
  const sendWindowMs = Math.min(options.sendTimeoutMs ?? 15_000, leaseMs / 2);

  async function fanOut(): Promise<number> {
    return db.transaction(async (tx) => {
      const events = await claimUndispatched(tx, batchSize);
      const targetsFor = new Map<string, Promise<EndpointRow[]>>();
      const rows: Parameters<DeliveriesRepo['insertMany']>[0] = [];
      for (const event of events) {
        if (!event.orgId) continue;
        const key = `${event.orgId}:${event.type}`;
        if (!targetsFor.has(key)) targetsFor.set(key, endpoints.subscribed(event.orgId, event.type, tx));
        const targets = await targetsFor.get(key)!;
        const payload = {
          id: event.id,
          type: event.type,
          created_at: event.createdAt.toISOString(),
          org_id: event.orgId,
          data: event.data,
        };
        for (const endpoint of targets) {
          // Kept while the endpoint is disabled, so recover sends it once the endpoint is back.
          const active = endpoint.status === 'active';
          rows.push({
            orgId: event.orgId,
            endpointId: endpoint.id,
            eventId: event.id,
            eventType: event.type,
            payload,
            status: active ? 'pending' : 'skipped',
            nextAttemptAt: active ? clock.now() : null,
          });
        }
      }
      for (let start = 0; start < rows.length; start += 1000) await deliveries.insertMany(rows.slice(start, start + 1000), tx);
      await markDispatched(
        tx,
        events.map((event) => event.id),
      );
      return events.length;
    });
  }

  function retryDelayMs(attemptsMade: number, result: SendResult): number {
    const base = schedule[attemptsMade - 1]! * 1000;
    const jittered = base * (1 + (random() * 2 - 1) * jitter);
    if (result.statusCode === 429 && result.retryAfterSeconds !== null) {
      return Math.max(jittered, Math.min(result.retryAfterSeconds * 1000, longestStep * 1000));
    }
    return jittered;
  }

  async function disable(endpoint: EndpointRow, reason: string, tx: Executor) {
    await endpoints.update(endpoint.id, { status: 'disabled', disabledReason: reason, disabledAt: clock.now() }, tx);
    await endpoints.cancelPending(endpoint.id, tx);
    await options.audit?.record(tx, {
      orgId: endpoint.orgId,
      action: 'webhook.endpoint.disabled',
      subject: { type: 'webhook_endpoint', id: endpoint.id },
      details: { reason },
      actor: { kind: 'system', id: 'webhook-worker' },
    });
    await publish(tx, { orgId: endpoint.orgId, type: 'webhook.endpoint.disabled', data: { webhook_id: endpoint.id, reason } });
  }

  // Unsealed secrets by endpoint id, kept between claims: a hit saves a query and an unseal per
  // endpoint and claim. An entry is used only while the endpoint row read with the claim has the
  // version it was loaded at; every change of the endpoint or its secrets bumps that version (see
  // the endpoints repo), so a rotation in any process is seen at the next claim.
  const secretCache = new LRUCache<string, CachedSecrets>({ max: options.secretCacheSize ?? 1000 });

  /**
   * The secrets that sign for `endpoint` now, newest first: from the cache when it holds them at the
   * endpoint's current `version`, else loaded and unsealed. The endpoint row is read before its
   * secrets, so an entry is never older than the version it is stored under.
   */
  async function signingSecrets(endpoint: EndpointRow): Promise<string[]> {
    const now = clock.now();
    let cached = secretCache.get(endpoint.id);
    if (cached?.version !== endpoint.version) {
      const rows = await endpoints.activeSecrets(endpoint.id, now);
      cached = {
        version: endpoint.version,
        secrets: rows.map((row) => ({ secret: unseal(keyring, row, secretAad(row.id)), expiresAt: row.expiresAt })),
      };
      secretCache.set(endpoint.id, cached);
    }
    return cached.secrets.filter(({ expiresAt }) => expiresAt === null || expiresAt > now).map(({ secret }) => secret);
  }

  async function send(delivery: DeliveryRow, endpoint: EndpointRow, secrets: string[], interrupt?: AbortSignal): Promise<SendResult> {
    const body = JSON.stringify(delivery.payload);
    const timestamp = Math.floor(clock.now().getTime() / 1000);
    return sender.send(
      endpoint.url,
      {
        'content-type': 'application/json',
        'user-agent': 'Tranche-Webhooks/1',
        'webhook-id': delivery.eventId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(secrets, delivery.eventId, timestamp, body),
      },
      body,
      interrupt,
    );
  }

  /** What follows a failed scheduled attempt: a retry later, giving up, or disabling the endpoint. */
  async function recordFailure(
    claimed: DeliveryRow,
    endpoint: EndpointRow,
    result: SendResult,
    now: Date,
    tx: Executor,
  ): Promise<RecordedFailure> {
    const current = await deliveries.lock(claimed.id, tx);
    if (current?.status !== 'sending') return { attemptNumber: claimed.attemptCount + 1, outcome: 'superseded', nextAttemptAt: null };
    await insertScheduledAttempts([{ delivery: claimed, endpoint, result, at: now }], tx);
    const attemptsMade = current.attemptCount + 1;
    const common = {
      attemptCount: attemptsMade,
      leaseUntil: null,
      lastStatusCode: result.statusCode,
      lastError: result.errorMessage,
      updatedAt: now,
    };
    const lockedEndpoint = (await endpoints.lock(endpoint.id, tx))!;
    if (result.statusCode === 410) {
      await deliveries.update(claimed.id, { ...common, status: 'exhausted', nextAttemptAt: null }, tx);
      if (lockedEndpoint.status === 'active') await disable(lockedEndpoint, 'the endpoint answered 410 Gone', tx);
      return { attemptNumber: attemptsMade, outcome: 'exhausted', nextAttemptAt: null };
    }
    const exhausted = attemptsMade > schedule.length;
    const nextAttemptAt = exhausted ? null : new Date(now.getTime() + retryDelayMs(attemptsMade, result));
    await deliveries.update(
      claimed.id,
      nextAttemptAt === null ? { ...common, status: 'exhausted', nextAttemptAt } : { ...common, status: 'pending', nextAttemptAt },
      tx,
    );
    const failingSince = lockedEndpoint.failingSince ?? now;
    if (!lockedEndpoint.failingSince) await endpoints.update(endpoint.id, { failingSince: now }, tx);
    if (lockedEndpoint.status === 'active' && now.getTime() - failingSince.getTime() >= options.disableAfterMs) {
      await disable(lockedEndpoint, `failing for ${Math.round(options.disableAfterMs / 3_600_000)} hours`, tx);
    }
    return { attemptNumber: attemptsMade, outcome: exhausted ? 'exhausted' : 'retrying', nextAttemptAt };
  }

  /** One attempt row per outcome, as sent by the schedule (not a manual retry). */
  const insertScheduledAttempts = (entries: Outcome[], tx: Executor) =>
    deliveries.insertAttempts(
      entries.map(({ delivery, endpoint, result, at }) => ({
        deliveryId: delivery.id,
        trigger: 'scheduled' as const,
        url: endpoint.url,
        createdAt: at,
        ...attemptFields(result),
      })),
      tx,
    );

  /** Commits outcomes: successes with one insert and one update per status code, failures one by one. Never throws. */
  async function recordOutcomes(outcomes: Outcome[]): Promise<void> {
    const succeeded = outcomes.filter((entry) => entry.result.errorKind === null);
    const interrupted = outcomes.filter((entry) => entry.result.errorKind === 'interrupted');
    const failed = outcomes.filter((entry) => entry.result.errorKind !== null && entry.result.errorKind !== 'interrupted');
    if (interrupted.length > 0) {
      // Our shutdown, not the endpoint's failure: due again at once (another worker takes it),
      // without using up a step of the schedule or counting against the endpoint's health. One
      // transaction for all of them: the drain deadline has passed, the process is about to exit.
      try {
        await persistently(() =>
          db.transaction(async (tx) => {
            await insertScheduledAttempts(interrupted, tx);
            await deliveries.requeueInterrupted(
              interrupted.map(({ delivery }) => delivery.id),
              interrupted[0]!.result.errorMessage!,
              clock.now(),
              tx,
            );
          }),
        );
        for (const entry of interrupted) {
          options.onAttempt?.({ ...entry, attemptNumber: entry.delivery.attemptCount + 1, outcome: 'interrupted', nextAttemptAt: null });
        }
      } catch (error) {
        options.log?.error({ err: error, deliveries: interrupted.length }, 'recording interrupted attempts failed');
      }
    }
    if (succeeded.length > 0) {
      try {
        await persistently(() =>
          db.transaction(async (tx) => {
            await insertScheduledAttempts(succeeded, tx);
            const idsByStatus = new Map<number, string[]>();
            for (const { delivery, result } of succeeded)
              idsByStatus.set(result.statusCode!, [...(idsByStatus.get(result.statusCode!) ?? []), delivery.id]);
            for (const [statusCode, ids] of idsByStatus) await deliveries.markSucceeded(ids, statusCode, clock.now(), tx);
            const recovered = new Set(succeeded.filter(({ endpoint }) => endpoint.failingSince).map(({ endpoint }) => endpoint.id));
            for (const endpointId of recovered) await endpoints.update(endpointId, { failingSince: null }, tx);
          }),
        );
        for (const entry of succeeded) {
          options.onAttempt?.({ ...entry, attemptNumber: entry.delivery.attemptCount + 1, outcome: 'succeeded', nextAttemptAt: null });
        }
      } catch (error) {
        options.log?.error({ err: error, deliveries: succeeded.length }, 'recording successful attempts failed');
      }
    }
    for (const { delivery, endpoint, result, at } of failed) {
      try {
        const recorded = await persistently(() => db.transaction((tx) => recordFailure(delivery, endpoint, result, at, tx)));
        options.onAttempt?.({ delivery, endpoint, result, at, ...recorded });
      } catch (error) {
        options.log?.error({ err: error, deliveryId: delivery.id }, 'recording a failed attempt failed');
      }
    }
  }

  /**
   * Claims a chunk of at most `concurrency` deliveries under one lease, loads each endpoint and its
   * secrets once, sends them all at once and commits their outcomes together. A worker killed at
   * any moment thus sends again at most one chunk: the sends it had in flight. Claims it does not
   * send are given back (due now): all of them when `signals.stop` fired before the sends started,
   * and any whose lease has too little time left for a send. Deliveries of an endpoint disabled
   * since they were queued are cancelled. Returns how many deliveries were claimed.
   */
  async function deliverChunk(signals: DrainSignals): Promise<number> {
    if (signals.stop?.aborted) return 0;
    const claimedAt = clock.now();
    const leaseUntil = new Date(claimedAt.getTime() + leaseMs);
    const claimed = await db.transaction((tx) => deliveries.claimDue(claimedAt, leaseUntil, claimSize, tx));
    if (claimed.length === 0) return 0;
    const endpointIds = [...new Set(claimed.map((delivery) => delivery.endpointId))];
    const targets = new Map<string, { endpoint: EndpointRow; secrets: string[] }>();
    const found = await endpoints.findMany(endpointIds);
    for (const endpoint of found) {
      if (endpoint.status === 'active') targets.set(endpoint.id, { endpoint, secrets: await signingSecrets(endpoint) });
      else secretCache.delete(endpoint.id);
    }
    for (const endpointId of endpointIds) if (!found.some((endpoint) => endpoint.id === endpointId)) secretCache.delete(endpointId);

    const orphaned = claimed.filter((delivery) => !targets.has(delivery.endpointId)).map((delivery) => delivery.id);
    const tooLate = signals.stop?.aborted || clock.now().getTime() > leaseUntil.getTime() - sendWindowMs;
    const toSend = tooLate ? [] : claimed.filter((delivery) => targets.has(delivery.endpointId));
    const unsent = tooLate ? claimed.filter((delivery) => targets.has(delivery.endpointId)).map((delivery) => delivery.id) : [];
    const outcomes = await Promise.all(
      toSend.map(async (delivery): Promise<Outcome> => {
        const { endpoint, secrets } = targets.get(delivery.endpointId)!;
        const result = await send(delivery, endpoint, secrets, signals.interrupt);
        return { delivery, endpoint, result, at: clock.now() };
      }),
    );
    await recordOutcomes(outcomes);
    if (orphaned.length > 0 || unsent.length > 0) {
      try {
        await persistently(() =>
          db.transaction(async (tx) => {
            await deliveries.cancel(orphaned, clock.now(), tx);
            await deliveries.release(unsent, leaseUntil, clock.now(), tx);
          }),
        );
      } catch (error) {
        // Their lease ends them anyway: another worker claims them then.
        options.log?.error({ err: error, unsent: unsent.length }, 'releasing unsent deliveries failed');
      }
    }
    return claimed.length;
  }

  /**
   * Delivers what is due, chunk after chunk (see `deliverChunk`), until a chunk comes back short,
   * `batchSize` deliveries were claimed, or `signals.stop` fires. Returns how many were claimed.
   */
  async function deliverDue(signals: DrainSignals = {}): Promise<number> {
    let claimed = 0;
    while (claimed < batchSize && !signals.stop?.aborted) {
      const chunk = await deliverChunk(signals);
      claimed += chunk;
      if (chunk < claimSize) break;
    }
    return claimed;
  }

  return {
    fanOut,
    deliverDue,
    /**
     * One pass: fan out new events, then deliver what is due (see `deliverDue` for `signals`).
     * Returns whether anything happened.
     */
    async runOnce(signals: DrainSignals = {}): Promise<boolean> {
      const events = await fanOut();
      const sent = await deliverDue(signals);
      return events + sent > 0;
    },

    /** A manual attempt now; the retry schedule carries on as it was. */
    async attemptManually(delivery: DeliveryRow) {
      const endpoint = await endpoints.findById(delivery.endpointId);
      if (!endpoint) throw new Error('endpoint is gone');
      const result = await send(delivery, endpoint, await signingSecrets(endpoint));
      const now = clock.now();
      return db.transaction(async (tx) => {
        const [attempt] = await deliveries.insertAttempts(
          [{ deliveryId: delivery.id, trigger: 'manual', url: endpoint.url, createdAt: now, ...attemptFields(result) }],
          tx,
        );
        const current = (await deliveries.lock(delivery.id, tx))!;
        if (result.errorKind === null && current.status !== 'succeeded') {
          await deliveries.update(
            delivery.id,
            {
              status: 'succeeded',
              succeededAt: now,
              nextAttemptAt: null,
              leaseUntil: null,
              lastStatusCode: result.statusCode,
              lastError: null,
              updatedAt: now,
            },
            tx,
          );
          if (endpoint.failingSince) await endpoints.update(endpoint.id, { failingSince: null }, tx);
        } else if (result.errorKind !== null) {
          await deliveries.update(delivery.id, { lastStatusCode: result.statusCode, lastError: result.errorMessage, updatedAt: now }, tx);
        }
        return attempt!;
      });
    },

    newEventId: () => randomUUID(),
  };
}

export type Dispatcher = ReturnType<typeof dispatcher>;

function attemptFields(result: SendResult) {
  return {
    statusCode: result.statusCode,
    durationMs: result.durationMs,
    responseExcerpt: result.responseExcerpt,
    errorKind: result.errorKind,
    errorMessage: result.errorMessage,
  };
}
