import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../platform/clock.ts';
import { unseal } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { Db, Executor } from '../platform/db/database.ts';
import { claimUndispatched, markDispatched, publish } from '../platform/events/outbox.ts';
import type { DeliveriesRepo, DeliveryRow } from './deliveries/deliveries.repo.ts';
import type { EndpointRow, EndpointsRepo } from './endpoints/endpoints.repo.ts';
import type { HttpSender, SendResult } from './http-sender.ts';
import { signatureHeader } from './signing.ts';

export const DELIVERIES_CHANNEL = 'tranche_deliveries';

export type DispatcherOptions = {
  db: Db;
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
  batchSize?: number;
  concurrency?: number;
  disableAfterMs: number;
  log?: FastifyBaseLogger;
  /** Called once per scheduled attempt after its result is recorded (metrics, the failed-attempt log line). */
  onAttempt?: (report: AttemptReport) => void;
};

/**
 * One scheduled attempt, as recorded: `attemptNumber` counts from 1; `outcome` is `succeeded`,
 * `retrying` (a retry at `nextAttemptAt`), `exhausted` (no retry: the schedule ran out, or 410
 * Gone), or `superseded` (the lease had passed to another worker, which will record its own attempt).
 */
export type AttemptReport = {
  delivery: DeliveryRow;
  endpoint: EndpointRow;
  result: SendResult;
  attemptNumber: number;
  outcome: 'succeeded' | 'retrying' | 'exhausted' | 'superseded';
  nextAttemptAt: Date | null;
  at: Date;
};

type RecordedFailure = Pick<AttemptReport, 'attemptNumber' | 'outcome' | 'nextAttemptAt'>;

export const secretAad = (secretId: string) => `webhook_secrets:${secretId}`;

/**
 * Turns outbox events into deliveries and delivers them, at least once: a delivery is claimed
 * under a lease, so a worker that dies mid-send leaves it to be claimed again when the lease ends.
 */
export function dispatcher(options: DispatcherOptions) {
  const { db, endpoints, deliveries, sender, keyring, clock } = options;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  const leaseMs = (options.leaseSeconds ?? 60) * 1000;
  const batchSize = options.batchSize ?? 250;
  const concurrency = options.concurrency ?? 32;
  const schedule = options.retryScheduleSeconds;
  const longestStep = Math.max(...schedule);

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
          rows.push({
            orgId: event.orgId,
            endpointId: endpoint.id,
            eventId: event.id,
            eventType: event.type,
            payload,
            status: 'pending',
            nextAttemptAt: clock.now(),
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
    await publish(tx, { orgId: endpoint.orgId, type: 'webhook.endpoint.disabled', data: { webhook_id: endpoint.id, reason } });
  }

  async function signingSecrets(endpointId: string): Promise<string[]> {
    const secrets = await endpoints.activeSecrets(endpointId, clock.now());
    return secrets.map((secret) => unseal(keyring, secret, secretAad(secret.id)));
  }

  async function send(delivery: DeliveryRow, endpoint: EndpointRow, secrets: string[]): Promise<SendResult> {
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
    await deliveries.insertAttempts(
      [{ deliveryId: claimed.id, trigger: 'scheduled', url: endpoint.url, createdAt: now, ...attemptFields(result) }],
      tx,
    );
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

  /**
   * Claims a batch, loads each endpoint and its secrets once, sends with bounded concurrency, then
   * records the batch: successes with one insert and one update, failures one by one.
   */
  async function deliverDue(): Promise<number> {
    const claimedAt = clock.now();
    const claimed = await db.transaction((tx) => deliveries.claimDue(claimedAt, new Date(claimedAt.getTime() + leaseMs), batchSize, tx));
    if (claimed.length === 0) return 0;
    const endpointIds = [...new Set(claimed.map((delivery) => delivery.endpointId))];
    const targets = new Map<string, { endpoint: EndpointRow; secrets: string[] }>();
    for (const endpoint of await endpoints.findMany(endpointIds)) {
      if (endpoint.status === 'active') targets.set(endpoint.id, { endpoint, secrets: await signingSecrets(endpoint.id) });
    }

    const results: { delivery: DeliveryRow; endpoint: EndpointRow; result: SendResult; at: Date }[] = [];
    const orphaned: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, claimed.length) }, async () => {
        while (next < claimed.length) {
          const delivery = claimed[next++]!;
          const target = targets.get(delivery.endpointId);
          if (!target) {
            orphaned.push(delivery.id);
            continue;
          }
          const result = await send(delivery, target.endpoint, target.secrets);
          results.push({ delivery, endpoint: target.endpoint, result, at: clock.now() });
        }
      }),
    );

    const succeeded = results.filter((entry) => entry.result.errorKind === null);
    const failed = results.filter((entry) => entry.result.errorKind !== null);
    await db.transaction(async (tx) => {
      await deliveries.insertAttempts(
        succeeded.map(({ delivery, endpoint, result, at }) => ({
          deliveryId: delivery.id,
          trigger: 'scheduled' as const,
          url: endpoint.url,
          createdAt: at,
          ...attemptFields(result),
        })),
        tx,
      );
      const idsByStatus = new Map<number, string[]>();
      for (const { delivery, result } of succeeded)
        idsByStatus.set(result.statusCode!, [...(idsByStatus.get(result.statusCode!) ?? []), delivery.id]);
      for (const [statusCode, ids] of idsByStatus) await deliveries.markSucceeded(ids, statusCode, clock.now(), tx);
      await deliveries.cancel(orphaned, clock.now(), tx);
      const recovered = new Set(succeeded.filter(({ endpoint }) => endpoint.failingSince).map(({ endpoint }) => endpoint.id));
      for (const endpointId of recovered) await endpoints.update(endpointId, { failingSince: null }, tx);
    });
    for (const entry of succeeded) {
      options.onAttempt?.({ ...entry, attemptNumber: entry.delivery.attemptCount + 1, outcome: 'succeeded', nextAttemptAt: null });
    }
    for (const { delivery, endpoint, result, at } of failed) {
      try {
        const recorded = await db.transaction((tx) => recordFailure(delivery, endpoint, result, at, tx));
        options.onAttempt?.({ delivery, endpoint, result, at, ...recorded });
      } catch (error) {
        options.log?.error({ err: error, deliveryId: delivery.id }, 'recording a failed attempt failed');
      }
    }
    return claimed.length;
  }

  return {
    fanOut,
    deliverDue,
    /** One pass: fan out new events, then deliver what is due. Returns whether anything happened. */
    async runOnce(): Promise<boolean> {
      const events = await fanOut();
      const sent = await deliverDue();
      return events + sent > 0;
    },

    /** A manual attempt now; the retry schedule carries on as it was. */
    async attemptManually(delivery: DeliveryRow) {
      const endpoint = await endpoints.findById(delivery.endpointId);
      if (!endpoint) throw new Error('endpoint is gone');
      const result = await send(delivery, endpoint, await signingSecrets(endpoint.id));
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
