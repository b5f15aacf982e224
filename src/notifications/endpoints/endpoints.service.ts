import { randomUUID } from 'node:crypto';
import type { Principal } from '../../platform/auth/principal.ts';
import type { Clock } from '../../platform/clock.ts';
import { seal } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { assertOutboundUrl } from '../../platform/http/urls.ts';
import type { DeliveriesRepo } from '../deliveries/deliveries.repo.ts';
import { secretAad } from '../dispatcher.ts';
import { assertUrlAllowed, EgressBlockedError, type EgressPolicy } from '../egress-guard.ts';
import { newSigningSecret } from '../signing.ts';
import type { EndpointRow, EndpointsRepo } from './endpoints.repo.ts';

const RECOVER_WINDOW_MS = 14 * 86_400_000;

export type Endpoint = Omit<EndpointRow, 'failingSince'>;
const present = ({ failingSince: _failingSince, ...endpoint }: EndpointRow): Endpoint => endpoint;

/** Webhooks are managed with the org's API key or by an org_admin. */
export function assertManager(principal: Principal) {
  if (principal.kind === 'user' && principal.role !== 'org_admin')
    throw new AppError('FORBIDDEN', 'Webhooks are managed by an org_admin or with the org API key');
}

export function endpointsService(deps: {
  db: Db;
  repo: EndpointsRepo;
  deliveries: DeliveriesRepo;
  keyring: Keyring;
  clock: Clock;
  allowInsecureHttp: boolean;
  /** The delivery egress policy, applied already when a URL is set. */
  egress: EgressPolicy;
  secretGraceSeconds: number;
  wake: () => Promise<void>;
  audit: AuditWriter;
}) {
  const { db, repo, keyring } = deps;
  // After the commit, the delivery is queued: a lost NOTIFY (the database connection dropped) only
  // means the worker finds it on its next poll, so it must not fail the request.
  const wakeWorker = () => deps.wake().catch(() => undefined);

  /** Audits a change of an endpoint; its URL and description only in the keyed state digest. */
  async function recordChange(
    tx: Executor,
    action: string,
    before: EndpointRow | undefined,
    after: EndpointRow | undefined,
    details: Record<string, string | number> = {},
  ) {
    const row = (after ?? before)!;
    await deps.audit.record(tx, {
      orgId: row.orgId,
      action,
      subject: { type: 'webhook_endpoint', id: row.id },
      before: before && { url: before.url, description: before.description, status: before.status, eventTypes: before.eventTypes },
      after: after && { url: after.url, description: after.description, status: after.status, eventTypes: after.eventTypes },
      details: { status: row.status, ...details },
    });
  }

  function sealSecret(secret: string) {
    const id = randomUUID();
    return { id, ...seal(keyring, secret, secretAad(id)) };
  }

  /** The URL's form, then its resolved addresses: an internal destination is refused at once. */
  async function assertDestination(url: string): Promise<void> {
    assertOutboundUrl(url, 'url', deps.allowInsecureHttp);
    try {
      await assertUrlAllowed(deps.egress, url);
    } catch (error) {
      if (error instanceof EgressBlockedError)
        throw new AppError('VALIDATION_ERROR', `url: ${error.message}`, [{ field: 'url', message: 'must be a public address' }]);
      throw error;
    }
  }

  async function managed(principal: Principal, id: string): Promise<EndpointRow> {
    assertManager(principal);
    const endpoint = await repo.find(principal.orgId, id);
    if (!endpoint) throw notFound('webhook');
    return endpoint;
  }

  return {
    managed,

    async create(principal: Principal, input: { url: string; description?: string; eventTypes: string[] }) {
      assertManager(principal);
      await assertDestination(input.url);
      const secret = newSigningSecret();
      const endpoint = await db.transaction(async (tx) => {
        const inserted = await repo.insert(
          { orgId: principal.orgId, url: input.url, description: input.description ?? null, eventTypes: [...new Set(input.eventTypes)] },
          sealSecret(secret),
          tx,
        );
        await recordChange(tx, 'webhook.endpoint.created', undefined, inserted);
        return inserted;
      });
      return { ...present(endpoint), signingSecret: secret };
    },

    async list(principal: Principal, paging: { limit: number; offset: number }) {
      assertManager(principal);
      const { rows, ...count } = await repo.list(principal.orgId, paging);
      return { items: rows.map(present), ...count };
    },

    get: async (principal: Principal, id: string) => present(await managed(principal, id)),

    async update(principal: Principal, id: string, changes: { url?: string; description?: string | null; status?: 'active' | 'disabled' }) {
      const endpoint = await managed(principal, id);
      if (changes.url) await assertDestination(changes.url);
      return present(
        await db.transaction(async (tx) => {
          const statusChange =
            changes.status === 'disabled' && endpoint.status === 'active'
              ? { disabledReason: 'disabled by the org', disabledAt: deps.clock.now() }
              : changes.status === 'active' && endpoint.status === 'disabled'
                ? { disabledReason: null, disabledAt: null, failingSince: null }
                : {};
          if (changes.status === 'disabled') await repo.cancelPending(endpoint.id, tx);
          const updated = await repo.update(endpoint.id, { ...changes, ...statusChange }, tx);
          await recordChange(tx, 'webhook.endpoint.updated', endpoint, updated, { fields: Object.keys(changes).sort().join(',') });
          return updated;
        }),
      );
    },

    async delete(principal: Principal, id: string) {
      const endpoint = await managed(principal, id);
      await db.transaction(async (tx) => {
        await repo.delete(endpoint.id, tx);
        await recordChange(tx, 'webhook.endpoint.deleted', endpoint, undefined);
      });
    },

    /**
     * A new secret, returned once; the old one keeps signing for the grace period. With a grace
     * period of 0 the old secret is deleted in the same transaction: it never signs again.
     */
    async rotateSecret(principal: Principal, id: string, gracePeriodSeconds = deps.secretGraceSeconds) {
      const endpoint = await managed(principal, id);
      const secret = newSigningSecret();
      const previousExpiresAt = new Date(deps.clock.now().getTime() + gracePeriodSeconds * 1000);
      await db.transaction(async (tx) => {
        await repo.rotateSecret(endpoint.id, sealSecret(secret), gracePeriodSeconds > 0 ? previousExpiresAt : null, tx);
        await deps.audit.record(tx, {
          orgId: endpoint.orgId,
          action: 'webhook.secret.rotated',
          subject: { type: 'webhook_endpoint', id: endpoint.id },
          details: { grace_period_seconds: gracePeriodSeconds },
        });
      });
      return { id: endpoint.id, signingSecret: secret, previousSecretExpiresAt: previousExpiresAt };
    },

    async setSubscriptions(principal: Principal, id: string, eventTypes: string[]) {
      const endpoint = await managed(principal, id);
      const updated = await db.transaction(async (tx) => {
        const next = await repo.update(endpoint.id, { eventTypes: [...new Set(eventTypes)] }, tx);
        await recordChange(tx, 'webhook.endpoint.subscriptions_changed', endpoint, next, { event_types: next.eventTypes.length });
        return next;
      });
      return { id: updated.id, eventTypes: updated.eventTypes };
    },

    async subscriptions(principal: Principal, id: string) {
      const endpoint = await managed(principal, id);
      return { id: endpoint.id, eventTypes: endpoint.eventTypes };
    },

    /** Queues a `test.ping` for this endpoint only, whatever it subscribes to. */
    async sendTest(principal: Principal, id: string) {
      const endpoint = await managed(principal, id);
      if (endpoint.status !== 'active') throw new AppError('INVALID_STATE', 'The webhook is disabled; enable it first');
      const eventId = randomUUID();
      const now = deps.clock.now();
      const [delivery] = await db.transaction(async (tx) => {
        await deps.deliveries.insertMessage(
          {
            id: eventId,
            orgId: endpoint.orgId,
            eventType: 'test.ping',
            body: JSON.stringify({
              id: eventId,
              type: 'test.ping',
              created_at: now.toISOString(),
              org_id: endpoint.orgId,
              data: { webhook_id: endpoint.id, message: 'ping' },
            }),
            createdAt: now,
          },
          tx,
        );
        return deps.deliveries.insertMany(
          [{ orgId: endpoint.orgId, endpointId: endpoint.id, eventId, eventType: 'test.ping', status: 'pending', nextAttemptAt: now }],
          tx,
        );
      });
      await wakeWorker();
      return { deliveryId: delivery!.id, eventId };
    },

    /** Re-sends the endpoint's failed deliveries since `since` (at most 14 days back). */
    async recover(principal: Principal, id: string, since: Date) {
      const endpoint = await managed(principal, id);
      const now = deps.clock.now();
      if (since.getTime() < now.getTime() - RECOVER_WINDOW_MS) {
        throw new AppError('VALIDATION_ERROR', 'since must be within the last 14 days', [
          { field: 'since', message: 'must be within the last 14 days' },
        ]);
      }
      if (endpoint.status !== 'active') throw new AppError('INVALID_STATE', 'The webhook is disabled; enable it first');
      const recovered = await deps.deliveries.requeueFailed(endpoint.id, since, now);
      await wakeWorker();
      return { id: endpoint.id, recovered };
    },
  };
}

export type EndpointsService = ReturnType<typeof endpointsService>;
