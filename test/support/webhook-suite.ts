import { inArray } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { Config } from '../../src/config.ts';
import { dispatcher, type Dispatcher, type DispatcherOptions } from '../../src/notifications/dispatcher.ts';
import { endpointsRepo } from '../../src/notifications/endpoints/endpoints.repo.ts';
import type { HttpSender } from '../../src/notifications/http-sender.ts';
import { webhookDeliveries } from '../../src/notifications/notifications.tables.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, type TestApp } from './harness.ts';
import { startReceiver, type Receiver } from './webhook-receiver.ts';

/**
 * The setup the webhook pipeline's test files share: one app per file (`overrides` of its
 * config), and what a test creates (receivers, endpoints, anything pushed on `closers`) closed or
 * deleted after each test, so each test sees only its own endpoints' deliveries. Registers its
 * hooks when called: call it at the top of the file. `app()` is the app once `beforeAll` ran.
 */
export function webhookSuite(overrides: Partial<Config>) {
  let t: TestApp | undefined;
  const closers: (() => Promise<void>)[] = [];
  const app = () => t ?? expect.fail('the webhook suite app is not started yet');
  beforeAll(async () => {
    t = await startTestApp(overrides);
  });
  afterAll(() => t?.close());
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });
  return {
    app,
    closers,
    /** A local receiver, closed after the test. */
    receiver: async (): Promise<Receiver> => {
      const started = await startReceiver();
      closers.push(() => started.close());
      return started;
    },
    /** An endpoint of the app's org at `url` subscribed to every event, deleted after the test; its id and signing secret. */
    endpoint: async (url: string): Promise<{ id: string; secret: string }> => {
      const created = await app().post('/notifications/webhooks', { url, eventTypes: ['*'] }, { 'x-api-key': app().apiKey });
      expect(created.status).toBe(201);
      const id = created.body.data.id as string;
      closers.push(async () => void (await app().delete(`/notifications/webhooks/${id}`, { 'x-api-key': app().apiKey })));
      return { id, secret: created.body.data.signing_secret as string };
    },
    /** Commits one `kyc.verification.approved` event of the app's org with `data`. */
    emit: (data: Record<string, unknown> = { verification_id: 'v-1' }) =>
      app().db.transaction((tx) => publish(tx, { orgId: app().org.id, type: 'kyc.verification.approved', data })),
    /** A dispatcher of its own on the app's database sending with `sender` (retries after 5 s then 300 s), and `options`. */
    dispatcherWith: (sender: HttpSender, options: Partial<DispatcherOptions> = {}): Dispatcher =>
      dispatcher({
        db: app().db,
        endpoints: endpointsRepo(app().db),
        deliveries: app().modules.notifications.deliveries,
        sender,
        keyring: app().keyring,
        clock: app().clock,
        retryScheduleSeconds: [5, 300],
        disableAfterMs: 120 * 3_600_000,
        sendTimeoutMs: 5000,
        ...options,
      }),
    /** The deliveries of these endpoints. */
    deliveriesOf: (endpointIds: string[]) =>
      app().db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.endpointId, endpointIds)),
  };
}
