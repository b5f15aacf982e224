import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifications } from '../../src/notifications/notifications.module.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

let t: TestApp;
let receiver: Receiver;
beforeAll(async () => {
  t = await startTestApp({ workerPollMs: 60_000 });
  receiver = await startReceiver();
  await t.post('/notifications/webhooks', { url: receiver.url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
});
afterAll(async () => {
  await receiver.close();
  await t.close();
});

describe('delivery worker', () => {
  it('is woken by NOTIFY when an event commits (polling is set to a minute)', async () => {
    const worker = await t.modules.notifications.startWorker();
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = receiver.received.length;
      const eventId = await t.db.transaction((tx) => publish(tx, { orgId: t.org.id, type: 'test.ping', data: { woke: true } }));
      await receiver.waitFor(before + 1, 5000);
      expect(receiver.received.at(-1)!.headers['webhook-id']).toBe(eventId);
    } finally {
      await worker.stop();
    }
  });

  it('two dispatchers working at once send each delivery once', async () => {
    const before = receiver.received.length;
    await t.db.transaction(async (tx) => {
      for (let i = 0; i < 60; i++) await publish(tx, { orgId: t.org.id, type: 'test.ping', data: { i } });
    });
    const second = createNotifications({ database: t.database, keyring: t.keyring, clock: t.clock, config: t.config, version: 'test' });
    const drain = async (dispatcher: typeof second.dispatcher) => {
      while (await dispatcher.runOnce());
    };
    await Promise.all([drain(t.modules.notifications.dispatcher), drain(second.dispatcher)]);
    await second.close();
    const ids = receiver.received.slice(before).map((request) => request.headers['webhook-id']);
    expect(ids).toHaveLength(60);
    expect(new Set(ids).size).toBe(60);
  });
});
