import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dispatcher } from '../../src/notifications/dispatcher.ts';
import { endpointsRepo } from '../../src/notifications/endpoints/endpoints.repo.ts';
import type { HttpSender, SendResult } from '../../src/notifications/http-sender.ts';
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookSecrets } from '../../src/notifications/notifications.tables.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

// Faults around a delivery that is not the endpoint's answer: a signing secret that cannot be
// opened, a deadlock while the results are recorded, a worker interrupted after its lease passed
// to another worker. Each must leave the other deliveries of the claim delivered and recorded.

let t: TestApp;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  t = await startTestApp({ webhookTimeoutMs: 10_000 });
});
afterAll(() => t.close());
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function receiver(): Promise<Receiver> {
  const started = await startReceiver();
  closers.push(() => started.close());
  return started;
}

async function endpoint(url: string) {
  const created = await t.post('/notifications/webhooks', { url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
  expect(created.status).toBe(201);
  const id = created.body.data.id as string;
  // Each test sees only its own endpoints' deliveries.
  closers.push(async () => void (await t.delete(`/notifications/webhooks/${id}`, { 'x-api-key': t.apiKey })));
  return { id, secret: created.body.data.signing_secret as string };
}

const emit = (data: Record<string, unknown> = { verification_id: 'v-1' }) =>
  t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'kyc.verification.approved', data }));
const deliveriesOf = (endpointIds: string[]) =>
  t.db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.endpointId, endpointIds));
const attemptsOf = (deliveryIds: string[]) =>
  t.db.select().from(webhookAttempts).where(inArray(webhookAttempts.deliveryId, deliveryIds));

describe('delivery error: an endpoint whose signing secret cannot be unsealed', () => {
  it('fails only that endpoint’s deliveries (a failed attempt, retried on the schedule); the others of the claim are sent', async () => {
    const good = await receiver();
    const bad = await receiver();
    const kept = await endpoint(`${good.url}/hook`);
    const broken = await endpoint(`${bad.url}/hook`);
    // The sealed secret no longer opens (a corrupted row, or its master key removed from the keyring).
    await t.db.update(webhookSecrets).set({ ciphertext: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }).where(eq(webhookSecrets.endpointId, broken.id));
    for (let i = 0; i < 3; i++) await emit({ verification_id: `v-${i}` });
    const logsBefore = t.logs.length;

    await t.modules.notifications.dispatcher.runOnce();

    expect(good.received).toHaveLength(3);
    expect(bad.received).toHaveLength(0);
    const rows = await deliveriesOf([kept.id, broken.id]);
    expect(rows.filter((row) => row.status === 'sending')).toEqual([]);
    expect(rows.filter((row) => row.endpointId === kept.id).map((row) => row.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const failed = rows.filter((row) => row.endpointId === broken.id);
    expect(failed).toHaveLength(3);
    for (const row of failed) {
      expect(row).toMatchObject({ status: 'pending', attemptCount: 1, lastError: 'endpoint secret cannot be unsealed' });
      // The first step of the schedule (5 s, ±20 % jitter), like any failed attempt.
      const delaySeconds = (row.nextAttemptAt!.getTime() - row.updatedAt.getTime()) / 1000;
      expect(delaySeconds).toBeGreaterThanOrEqual(4);
      expect(delaySeconds).toBeLessThanOrEqual(6);
    }
    const attempts = await attemptsOf(failed.map((row) => row.id));
    expect(attempts.map((attempt) => [attempt.errorKind, attempt.errorMessage, attempt.statusCode])).toEqual(
      Array.from({ length: 3 }, () => ['secret', 'endpoint secret cannot be unsealed', null]),
    );
    // The endpoint counts as failing (disabled after WEBHOOK_DISABLE_AFTER_HOURS like any other).
    const [endpointRow] = await t.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, broken.id));
    expect(endpointRow!.failingSince).not.toBeNull();

    // Logged once for the endpoint (not per delivery), naming it, without any secret.
    const logged = t.logs.slice(logsBefore).join('');
    const lines = logged
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'endpoint secret cannot be unsealed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ endpointId: broken.id, deliveries: 3 });
    expect(logged).not.toContain(kept.secret.replace(/^whsec_/, ''));
    expect(logged).not.toContain(broken.secret.replace(/^whsec_/, ''));
  });
});
