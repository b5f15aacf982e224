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
};

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
  const batchSize = options.batchSize ?? 100;
  const concurrency = options.concurrency ?? 32;
  const schedule = options.retryScheduleSeconds;
  const longestStep = Math.max(...schedule);

  async function fanOut(): Promise<number> {
    return db.transaction(async (tx) => {
      const events = await claimUndispatched(tx, batchSize);
      for (const event of events) {
        if (!event.orgId) continue;
        const targets = await endpoints.subscribed(event.orgId, event.type, tx);
        const payload = {
          id: event.id,
          type: event.type,
          created_at: event.createdAt.toISOString(),
          org_id: event.orgId,
          data: event.data,
        };
        await deliveries.insertMany(
          targets.map((endpoint) => ({
            orgId: event.orgId!,
            endpointId: endpoint.id,
            eventId: event.id,
            eventType: event.type,
            payload,
            status: 'pending' as const,
            nextAttemptAt: clock.now(),
          })),
          tx,
        );
      }
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

  async function send(delivery: DeliveryRow, endpoint: EndpointRow): Promise<SendResult> {
    const secrets = await endpoints.activeSecrets(endpoint.id, clock.now());
    const body = JSON.stringify(delivery.payload);
    const timestamp = Math.floor(clock.now().getTime() / 1000);
    const plainSecrets = secrets.map((secret) => unseal(keyring, secret, secretAad(secret.id)));
    return sender.send(
      endpoint.url,
      {
        'content-type': 'application/json',
        'user-agent': 'Tranche-Webhooks/1',
        'webhook-id': delivery.eventId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(plainSecrets, delivery.eventId, timestamp, body),
      },
      body,
    );
  }

  /** One scheduled attempt of a claimed delivery, and what follows from its result. */
  async function attemptScheduled(claimed: DeliveryRow): Promise<void> {
    const endpoint = await endpoints.findById(claimed.endpointId);
    if (!endpoint || endpoint.status !== 'active') {
      await db.transaction((tx) =>
        deliveries.update(claimed.id, { status: 'cancelled', leaseUntil: null, nextAttemptAt: null, updatedAt: clock.now() }, tx),
      );
      return;
    }
    const result = await send(claimed, endpoint);
    const now = clock.now();
    await db.transaction(async (tx) => {
      const current = await deliveries.lock(claimed.id, tx);
      if (current?.status !== 'sending') return;
      await deliveries.insertAttempt(
        { deliveryId: claimed.id, trigger: 'scheduled', url: endpoint.url, createdAt: now, ...attemptFields(result) },
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
      if (result.errorKind === null) {
        await deliveries.update(claimed.id, { ...common, status: 'succeeded', succeededAt: now, nextAttemptAt: null }, tx);
        if (endpoint.failingSince) await endpoints.update(endpoint.id, { failingSince: null }, tx);
        return;
      }
      const lockedEndpoint = (await endpoints.lock(endpoint.id, tx))!;
      if (result.statusCode === 410) {
        await deliveries.update(claimed.id, { ...common, status: 'exhausted', nextAttemptAt: null }, tx);
        if (lockedEndpoint.status === 'active') await disable(lockedEndpoint, 'the endpoint answered 410 Gone', tx);
        return;
      }
      const exhausted = attemptsMade > schedule.length;
      await deliveries.update(
        claimed.id,
        exhausted
          ? { ...common, status: 'exhausted', nextAttemptAt: null }
          : { ...common, status: 'pending', nextAttemptAt: new Date(now.getTime() + retryDelayMs(attemptsMade, result)) },
        tx,
      );
      const failingSince = lockedEndpoint.failingSince ?? now;
      if (!lockedEndpoint.failingSince) await endpoints.update(endpoint.id, { failingSince: now }, tx);
      if (lockedEndpoint.status === 'active' && now.getTime() - failingSince.getTime() >= options.disableAfterMs) {
        await disable(lockedEndpoint, `failing for ${Math.round(options.disableAfterMs / 3_600_000)} hours`, tx);
      }
    });
  }

  async function deliverDue(): Promise<number> {
    const now = clock.now();
    const claimed = await db.transaction((tx) => deliveries.claimDue(now, new Date(now.getTime() + leaseMs), batchSize, tx));
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, claimed.length) }, async () => {
      while (next < claimed.length) {
        const delivery = claimed[next++]!;
        try {
          await attemptScheduled(delivery);
        } catch (error) {
          options.log?.error({ err: error, deliveryId: delivery.id }, 'delivery attempt failed');
        }
      }
    });
    await Promise.all(workers);
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
      const result = await send(delivery, endpoint);
      const now = clock.now();
      return db.transaction(async (tx) => {
        const attempt = await deliveries.insertAttempt(
          { deliveryId: delivery.id, trigger: 'manual', url: endpoint.url, createdAt: now, ...attemptFields(result) },
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
        return attempt;
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
