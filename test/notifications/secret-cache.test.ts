import { eq } from 'drizzle-orm';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { webhookEndpoints } from '../../src/notifications/notifications.tables.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { startReceiver, type Received, type Receiver } from '../support/webhook-receiver.ts';

// The dispatcher keeps each endpoint's unsealed secrets between claims, keyed on the endpoint's
// version: these tests deliver once to fill that cache, change the endpoint, and check that the
// next delivery follows the change.

let t: TestApp;
const receivers: Receiver[] = [];
beforeAll(async () => {
  t = await startTestApp({ webhookTimeoutMs: 500 });
});
afterAll(() => t.close());
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

async function receiver() {
  const started = await startReceiver();
  receivers.push(started);
  return started;
}

async function endpoint(url: string) {
  const created = await t.post('/notifications/webhooks', { url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
  expect(created.status).toBe(201);
  return { id: created.body.data.id as string, secret: created.body.data.signing_secret as string };
}

const version = async (id: string) =>
  (await t.db.select({ version: webhookEndpoints.version }).from(webhookEndpoints).where(eq(webhookEndpoints.id, id)))[0]!.version;

/** Emits one event and runs the dispatcher once; returns what the receiver got from it. */
async function deliverOne(target: Receiver): Promise<Received> {
  const before = target.received.length;
  await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'kyc.verification.approved', data: { verification_id: 'v-1' } }));
  await t.modules.notifications.dispatcher.runOnce();
  expect(target.received).toHaveLength(before + 1);
  return target.received[before]!;
}

const signatures = (request: Received) => request.headers['webhook-signature']!.split(' ');
const signedWith = (secret: string, request: Received) => {
  const timestamp = new Date(Number(request.headers['webhook-timestamp']) * 1000);
  return signatures(request).includes(new StandardWebhook(secret).sign(request.headers['webhook-id']!, timestamp, request.body));
};

describe('dispatcher secret cache', () => {
  it('drops a cached secret when the secret rotates with no grace: the next delivery is signed with the new one only', async () => {
    const target = await receiver();
    const { id, secret: oldSecret } = await endpoint(`${target.url}/hook`);
    const first = await deliverOne(target);
    expect(signatures(first)).toHaveLength(1);
    expect(signedWith(oldSecret, first)).toBe(true);

    const versionBefore = await version(id);
    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, { gracePeriodSeconds: 0 }, { 'x-api-key': t.apiKey });
    expect(rotated.status).toBe(200);
    expect(await version(id)).toBeGreaterThan(versionBefore);
    const newSecret = rotated.body.data.signing_secret as string;

    const second = await deliverOne(target);
    expect(signatures(second)).toHaveLength(1);
    expect(signedWith(newSecret, second)).toBe(true);
    expect(signedWith(oldSecret, second)).toBe(false);
  });

  it('signs with both secrets after a rotation with a grace period, and stops the cached old one when the grace ends', async () => {
    const target = await receiver();
    const { id, secret: oldSecret } = await endpoint(`${target.url}/hook`);
    expect(signedWith(oldSecret, await deliverOne(target))).toBe(true);

    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, { gracePeriodSeconds: 3600 }, { 'x-api-key': t.apiKey });
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.data.signing_secret as string;

    const during = await deliverOne(target);
    expect(signatures(during)).toHaveLength(2);
    expect(signedWith(oldSecret, during)).toBe(true);
    expect(signedWith(newSecret, during)).toBe(true);

    // Nothing changed the endpoint since: the cached entry is used, and its old secret has expired.
    const stillDuring = await deliverOne(target);
    expect(signatures(stillDuring)).toHaveLength(2);
    t.clock.advance(3600_000 + 1000);
    const after = await deliverOne(target);
    expect(signatures(after)).toHaveLength(1);
    expect(signedWith(newSecret, after)).toBe(true);
    expect(signedWith(oldSecret, after)).toBe(false);
  });

  it('sends the next delivery to the new URL after an update', async () => {
    const first = await receiver();
    const second = await receiver();
    const { id, secret } = await endpoint(`${first.url}/hook`);
    await deliverOne(first);

    const updated = await t.patch(`/notifications/webhooks/${id}`, { url: `${second.url}/moved` }, { 'x-api-key': t.apiKey });
    expect(updated.status).toBe(200);
    const moved = await deliverOne(second);
    expect(first.received).toHaveLength(1);
    expect(signedWith(secret, moved)).toBe(true);
  });

  it('stops delivering to an endpoint disabled after its secrets were cached, and signs with its current secret once enabled again', async () => {
    const target = await receiver();
    const { id } = await endpoint(`${target.url}/hook`);
    await deliverOne(target);

    expect((await t.patch(`/notifications/webhooks/${id}`, { status: 'disabled' }, { 'x-api-key': t.apiKey })).status).toBe(200);
    await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'kyc.verification.approved', data: { verification_id: 'v-2' } }));
    await t.modules.notifications.dispatcher.runOnce();
    expect(target.received).toHaveLength(1);

    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, { gracePeriodSeconds: 0 }, { 'x-api-key': t.apiKey });
    expect((await t.patch(`/notifications/webhooks/${id}`, { status: 'active' }, { 'x-api-key': t.apiKey })).status).toBe(200);
    const next = await deliverOne(target);
    expect(signatures(next)).toHaveLength(1);
    expect(signedWith(rotated.body.data.signing_secret as string, next)).toBe(true);
  });
});
