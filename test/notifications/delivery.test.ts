import { eq } from 'drizzle-orm';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { webhookDeliveries, webhookEndpoints } from '../../src/notifications/notifications.tables.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { auditEntries, outboxEvents } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

let t: TestApp;
let receiver: Receiver;
beforeAll(async () => {
  t = await startTestApp({ webhookTimeoutMs: 500 });
});
afterAll(() => t.close());
afterEach(() => receiver?.close());

async function endpoint(options: { url?: string; eventTypes?: string[]; orgKey?: string } = {}) {
  receiver = await startReceiver();
  const created = await t.post(
    '/notifications/webhooks',
    { url: options.url ?? `${receiver.url}/hook`, eventTypes: options.eventTypes ?? ['*'] },
    { 'x-api-key': options.orgKey ?? t.apiKey },
  );
  expect(created.status).toBe(201);
  return { id: created.body.data.id as string, secret: created.body.data.signing_secret as string };
}

const emit = (type: string, data: Record<string, unknown> = { verification_id: 'v-1' }, orgId = t.org.id) =>
  t.db.transaction((tx) => publish(tx, { orgId, type, data }));
const run = () => t.modules.notifications.dispatcher.runOnce();
const deliveriesOf = (endpointId: string) => t.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpointId));
const detail = async (deliveryId: string) => (await t.get(`/notifications/deliveries/${deliveryId}`, { 'x-api-key': t.apiKey })).body.data;
const secondsUntil = (date: Date) => (date.getTime() - t.clock.now().getTime()) / 1000;
const secondsAfterUpdate = (delivery: { nextAttemptAt: Date | null; updatedAt: Date }) =>
  (delivery.nextAttemptAt!.getTime() - delivery.updatedAt.getTime()) / 1000;

describe('delivery happy', () => {
  it('delivers a subscribed event, signed so that standardwebhooks and svix both verify it', async () => {
    const { id, secret } = await endpoint({ eventTypes: ['kyc.verification.approved'] });
    const eventId = await emit('kyc.verification.approved', { verification_id: 'v-1', user_id: 'u-1', status: 'approved' });
    await emit('kyc.verification.created');
    await run();
    expect(receiver.received).toHaveLength(1);
    const [request] = receiver.received;
    expect(request!.headers['webhook-id']).toBe(eventId);
    expect(new StandardWebhook(secret).verify(request!.body, request!.headers)).toMatchObject({
      id: eventId,
      type: 'kyc.verification.approved',
    });
    expect(new SvixWebhook(secret).verify(request!.body, request!.headers)).toMatchObject({ data: { status: 'approved' } });
    expect(JSON.parse(request!.body)).toEqual({
      id: eventId,
      type: 'kyc.verification.approved',
      created_at: expect.any(String),
      org_id: t.org.id,
      data: { verification_id: 'v-1', user_id: 'u-1', status: 'approved' },
    });

    const [delivery] = await deliveriesOf(id);
    const shown = await detail(delivery!.id);
    expect(shown).toMatchObject({ status: 'succeeded', attempt_count: 1, event_id: eventId });
    expect(shown.attempts).toEqual([
      expect.objectContaining({ attempt_number: 1, trigger: 'scheduled', status_code: 200, response_excerpt: 'ok', error_kind: null }),
    ]);
  });

  it("does not deliver another org's events", async () => {
    await endpoint();
    const other = await t.createOrg({ name: 'Elsewhere' });
    await emit('kyc.verification.approved', {}, other.org.id);
    await run();
    expect(receiver.received).toHaveLength(0);
  });

  it('sends test.ping on request, whatever the subscriptions', async () => {
    const { secret, id } = await endpoint({ eventTypes: ['share.issued'] });
    const response = await t.post(`/notifications/webhooks/${id}/test`, undefined, { 'x-api-key': t.apiKey });
    expect(response.status).toBe(202);
    await run();
    const body = new StandardWebhook(secret).verify(receiver.received[0]!.body, receiver.received[0]!.headers) as {
      type: string;
      data: unknown;
    };
    expect(body).toMatchObject({ type: 'test.ping', data: { webhook_id: id, message: 'ping' } });
  });

  it('signs with both secrets during the rotation overlap, and with the new one only after it', async () => {
    const { id, secret: oldSecret } = await endpoint();
    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, {}, { 'x-api-key': t.apiKey });
    const newSecret = rotated.body.data.signing_secret as string;
    expect(new Date(rotated.body.data.previous_secret_expires_at).getTime() - t.clock.now().getTime()).toBeGreaterThan(86_399_000);
    await emit('kyc.verification.approved');
    await run();
    const during = receiver.received[0]!;
    expect(during.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(new StandardWebhook(oldSecret).verify(during.body, during.headers)).toBeTruthy();
    expect(new StandardWebhook(newSecret).verify(during.body, during.headers)).toBeTruthy();

    t.clock.advance(24 * 3600_000 + 1000);
    await emit('kyc.verification.approved');
    await run();
    const after = receiver.received[1]!;
    const signatures = after.headers['webhook-signature']!.split(' ');
    expect(signatures).toHaveLength(1);
    const timestamp = new Date(Number(after.headers['webhook-timestamp']) * 1000);
    expect(signatures[0]).toBe(new StandardWebhook(newSecret).sign(after.headers['webhook-id']!, timestamp, after.body));
    expect(signatures[0]).not.toBe(new StandardWebhook(oldSecret).sign(after.headers['webhook-id']!, timestamp, after.body));
  });
});

describe('delivery retries and failures', () => {
  it('retries a 500 on the schedule (5 s, then 5 min, with ±20 % jitter) and records every attempt', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 500, body: 'boom' }));
    await emit('kyc.verification.approved');
    await run();
    let [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ status: 'pending', attemptCount: 1, lastStatusCode: 500 });
    // Measured from when the attempt was recorded, so a slow machine does not shift the window.
    expect(secondsAfterUpdate(delivery!)).toBeGreaterThanOrEqual(4);
    expect(secondsAfterUpdate(delivery!)).toBeLessThanOrEqual(6);

    await run();
    expect(receiver.received).toHaveLength(1);
    t.clock.advance(6000);
    await run();
    expect(receiver.received).toHaveLength(2);
    [delivery] = await deliveriesOf(id);
    expect(secondsAfterUpdate(delivery!)).toBeGreaterThanOrEqual(240);
    expect(secondsAfterUpdate(delivery!)).toBeLessThanOrEqual(360);

    receiver.respond(() => ({ status: 204 }));
    t.clock.advance(361_000);
    await run();
    const shown = await detail(delivery!.id);
    expect(shown.status).toBe('succeeded');
    expect(shown.attempts.map((a: { status_code: number; error_kind: string | null }) => [a.status_code, a.error_kind])).toEqual([
      [500, 'http'],
      [500, 'http'],
      [204, null],
    ]);
    expect(shown.attempts[0].response_excerpt).toBe('boom');
  });

  it('honours Retry-After on 429, within the longest step', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 429, headers: { 'retry-after': '120' } }));
    await emit('kyc.verification.approved');
    await run();
    const [delivery] = await deliveriesOf(id);
    expect(secondsUntil(delivery!.nextAttemptAt!)).toBeGreaterThanOrEqual(119);
    expect(secondsUntil(delivery!.nextAttemptAt!)).toBeLessThanOrEqual(121);
  });

  it('keeps only the first 4 KB of a response', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 500, body: 'x'.repeat(10_000) }));
    await emit('kyc.verification.approved');
    await run();
    const [delivery] = await deliveriesOf(id);
    expect((await detail(delivery!.id)).attempts[0].response_excerpt).toHaveLength(4096);
  });

  it('records timeouts and refused connections', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 200, delayMs: 2000 }));
    await emit('kyc.verification.approved');
    await run();
    const [slow] = await deliveriesOf(id);
    expect((await detail(slow!.id)).attempts[0]).toMatchObject({ error_kind: 'timeout', status_code: null });

    const closed = await startReceiver();
    const deadUrl = `${closed.url}/gone`;
    await closed.close();
    const dead = await endpoint({ url: deadUrl });
    await emit('kyc.verification.approved');
    await run();
    const [refused] = await deliveriesOf(dead.id);
    expect((await detail(refused!.id)).attempts[0]).toMatchObject({
      error_kind: 'connect',
      status_code: null,
      error_message: expect.stringContaining('ECONNREFUSED'),
    });
  });

  it('gives up after the last step of the schedule', async () => {
    const short = await startTestApp({ webhookRetryScheduleSeconds: [1, 1] });
    try {
      receiver = await startReceiver();
      receiver.respond(() => ({ status: 503 }));
      await short.post('/notifications/webhooks', { url: receiver.url }, { 'x-api-key': short.apiKey });
      await short.db.transaction((tx) => publish(tx, { orgId: short.org.id, type: 'test.ping', data: {} }));
      for (let i = 0; i < 4; i++) {
        await short.modules.notifications.dispatcher.runOnce();
        short.clock.advance(2000);
      }
      const [delivery] = await short.db.select().from(webhookDeliveries);
      expect(delivery).toMatchObject({ status: 'exhausted', attemptCount: 3 });
      expect(receiver.received).toHaveLength(3);
    } finally {
      await short.close();
    }
  });

  it('410 disables the endpoint, says so with an event, and nothing more is sent to it', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 410 }));
    await emit('kyc.verification.approved');
    await run();
    const [endpointRow] = await t.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
    expect(endpointRow).toMatchObject({ status: 'disabled', disabledReason: 'the endpoint answered 410 Gone' });
    const disabledEvents = await t.db.select().from(outboxEvents).where(eq(outboxEvents.type, 'webhook.endpoint.disabled'));
    expect(disabledEvents.map((e) => e.data)).toContainEqual({ webhook_id: id, reason: 'the endpoint answered 410 Gone' });
    const audited = await t.db.select().from(auditEntries).where(eq(auditEntries.subjectId, id));
    expect(audited.filter((entry) => entry.action === 'webhook.endpoint.disabled')).toEqual([
      expect.objectContaining({ actorKind: 'system', actorId: 'webhook-worker', details: { reason: 'the endpoint answered 410 Gone' } }),
    ]);
    await emit('kyc.verification.approved');
    await run();
    t.clock.advance(3600_000);
    await run();
    expect(receiver.received).toHaveLength(1);
  });

  it('disables an endpoint that has failed for five days', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 500 }));
    await emit('kyc.verification.approved');
    await run();
    t.clock.advance(121 * 3600_000);
    await run();
    const [endpointRow] = await t.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
    expect(endpointRow).toMatchObject({ status: 'disabled', disabledReason: 'failing for 120 hours' });
    const [delivery] = await deliveriesOf(id);
    expect(delivery!.status).toBe('cancelled');
  });
});

describe('egress guard', () => {
  it('refuses metadata and private addresses without sending a packet', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data', 'http://10.0.0.1/hook', 'http://[::ffff:10.0.0.1]/hook']) {
      // Refused when the endpoint is created already; an endpoint whose address turns internal
      // later (DNS rebinding, simulated by changing the stored URL) is refused at delivery.
      const refused = await t.post('/notifications/webhooks', { url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
      expect(refused.status).toBe(400);
      const { id } = await endpoint();
      await t.db.update(webhookEndpoints).set({ url }).where(eq(webhookEndpoints.id, id));
      await emit('kyc.verification.approved');
      await run();
      const [delivery] = await deliveriesOf(id);
      const attempt = (await detail(delivery!.id)).attempts[0];
      expect(attempt).toMatchObject({ error_kind: 'blocked', status_code: null });
      expect(attempt.duration_ms).toBeLessThan(50);
      await t.delete(`/notifications/webhooks/${id}`, { 'x-api-key': t.apiKey });
    }
  });
});

describe('manual retry and recover', () => {
  it('a manual retry attempts now and leaves the schedule as it was', async () => {
    const { id } = await endpoint();
    receiver.respond(() => ({ status: 500 }));
    await emit('kyc.verification.approved');
    await run();
    const [before] = await deliveriesOf(id);
    const failed = await t.post(`/notifications/deliveries/${before!.id}/retry`, undefined, { 'x-api-key': t.apiKey });
    expect(failed.body.data).toMatchObject({ trigger: 'manual', status_code: 500, attempt_number: 2 });
    const [unchanged] = await deliveriesOf(id);
    expect(unchanged).toMatchObject({ status: 'pending', attemptCount: 1, nextAttemptAt: before!.nextAttemptAt });

    receiver.respond(() => ({ status: 200 }));
    const succeeded = await t.post(`/notifications/deliveries/${before!.id}/retry`, undefined, { 'x-api-key': t.apiKey });
    expect(succeeded.body.data).toMatchObject({ trigger: 'manual', status_code: 200 });
    expect((await deliveriesOf(id))[0]!.status).toBe('succeeded');
  });

  it('recover re-sends failed deliveries of the window', async () => {
    const { id } = await endpoint({ eventTypes: ['kyc.verification.approved'] });
    receiver.respond(() => ({ status: 410 }));
    await emit('kyc.verification.approved');
    await run();
    await t.patch(`/notifications/webhooks/${id}`, { status: 'active' }, { 'x-api-key': t.apiKey });
    receiver.respond(() => ({ status: 200 }));
    const since = new Date(Date.now() - 3600_000).toISOString();
    const recovered = await t.post(`/notifications/webhooks/${id}/recover`, { since }, { 'x-api-key': t.apiKey });
    expect(recovered.body.data).toEqual({ id, recovered: 1 });
    await run();
    expect(receiver.received).toHaveLength(2);
    expect((await deliveriesOf(id))[0]!.status).toBe('succeeded');
  });

  it('keeps events of a disabled endpoint as skipped, and recover sends them once it is enabled again', async () => {
    const { id } = await endpoint({ eventTypes: ['kyc.verification.approved'] });
    const key = { 'x-api-key': t.apiKey };
    expect((await t.patch(`/notifications/webhooks/${id}`, { status: 'disabled' }, key)).status).toBe(200);
    const eventId = await emit('kyc.verification.approved');
    await run();
    expect(receiver.received).toHaveLength(0);
    const listed = await t.get(`/notifications/deliveries?endpoint_id=${id}&status=skipped`, key);
    expect(listed.body.data.items).toMatchObject([{ event_id: eventId, status: 'skipped', attempt_count: 0, next_attempt_at: null }]);

    // Enabling alone sends nothing: recover does, as with Svix.
    await t.patch(`/notifications/webhooks/${id}`, { status: 'active' }, key);
    await run();
    expect(receiver.received).toHaveLength(0);
    const since = new Date(Date.now() - 3600_000).toISOString();
    const recovered = await t.post(`/notifications/webhooks/${id}/recover`, { since }, key);
    expect(recovered.body.data).toEqual({ id, recovered: 1 });
    await run();
    expect(receiver.received.map((request) => request.headers['webhook-id'])).toEqual([eventId]);
    expect((await deliveriesOf(id))[0]!.status).toBe('succeeded');
  });

  it('lists deliveries with filters', async () => {
    const { id } = await endpoint();
    await emit('kyc.verification.approved');
    await emit('accreditation.approved', { accreditation_id: 'a' });
    await run();
    const list = await t.get(`/notifications/deliveries?endpoint_id=${id}&event_type=accreditation.approved&status=succeeded`, {
      'x-api-key': t.apiKey,
    });
    expect(list.body.data.items).toHaveLength(1);
    expect(list.body.data.meta.total).toBe(1);
    const future = await t.get(
      `/notifications/deliveries?endpoint_id=${id}&from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
      { 'x-api-key': t.apiKey },
    );
    expect(future.body.data.items).toHaveLength(0);
    expect((await t.get('/notifications/deliveries?status=bogus', { 'x-api-key': t.apiKey })).body.error.field).toBe('status');
  });
});

describe('deliveries log paging', () => {
  it('pages by cursor, newest first, with no delivery twice or missed, and a capped total', async () => {
    const { id } = await endpoint();
    const key = { 'x-api-key': t.apiKey };
    for (let i = 0; i < 5; i++) await emit('kyc.verification.approved', { verification_id: `v-${i}` });
    await run();
    const all = await t.get(`/notifications/deliveries?endpoint_id=${id}&limit=100`, key);
    expect(all.body.data.meta).toMatchObject({ total: 5, total_capped: false, next_cursor: null });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { data: { items: { id: string }[]; meta: { next_cursor: string | null; total: number } } } } = await t.get(
        `/notifications/deliveries?endpoint_id=${id}&limit=2${cursor ? `&cursor=${cursor}&offset=99` : ''}`,
        key,
      );
      expect(page.body.data.meta.total).toBe(5);
      seen.push(...page.body.data.items.map((item) => item.id));
      cursor = page.body.data.meta.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all.body.data.items.map((item: { id: string }) => item.id));
  });

  it("refuses a cursor that is not a delivery id, and gives an empty page for another org's delivery", async () => {
    const key = { 'x-api-key': t.apiKey };
    const bad = await t.get('/notifications/deliveries?cursor=nope', key);
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('cursor');
    const other = await t.createOrg({ name: 'Cursor Elsewhere' });
    await endpoint({ orgKey: other.apiKey });
    await emit('kyc.verification.approved', {}, other.org.id);
    await run();
    const [foreign] = await t.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.orgId, other.org.id));
    const page = await t.get(`/notifications/deliveries?cursor=${foreign!.id}`, key);
    expect(page.status).toBe(200);
    expect(page.body.data.items).toEqual([]);
  });
});

describe('retention', () => {
  it('prunes finished deliveries with their attempts, their messages and dispatched events past WEBHOOK_RETENTION_DAYS, never pending ones', async () => {
    const { id } = await endpoint({ eventTypes: ['kyc.verification.approved'] });
    const eventId = await emit('kyc.verification.approved');
    await run();
    const [delivered] = await deliveriesOf(id);
    expect(delivered!.status).toBe('succeeded');
    receiver.respond(() => ({ status: 500, body: 'down' }));
    await emit('kyc.verification.approved');
    await run();
    const pending = (await deliveriesOf(id)).find((row) => row.status === 'pending');
    expect(pending).toBeDefined();

    expect(await t.modules.notifications.pruneExpired()).toEqual({ deliveries: 0, messages: 0, events: 0 });
    const days = t.config.webhookRetentionDays;
    t.clock.advance((days + 1) * 86_400_000);
    try {
      const pruned = await t.modules.notifications.pruneExpired();
      expect(pruned.deliveries).toBeGreaterThanOrEqual(1);
      expect(pruned.messages).toBeGreaterThanOrEqual(1);
      expect(pruned.events).toBeGreaterThanOrEqual(2);
    } finally {
      t.clock.advance(-(days + 1) * 86_400_000);
    }
    expect((await deliveriesOf(id)).map((row) => row.id)).toEqual([pending!.id]);
    expect((await t.get(`/notifications/deliveries/${delivered!.id}`, { 'x-api-key': t.apiKey })).status).toBe(404);
    expect(await t.db.select().from(outboxEvents).where(eq(outboxEvents.id, eventId))).toEqual([]);
    // The message of the delivery still pending stays: it is what will be sent.
    expect(await t.modules.notifications.deliveries.messageBody(pending!.eventId)).toContain(pending!.eventId);
  });
});
