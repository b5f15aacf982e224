import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../../src/platform/events/outbox.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

// The sender's one undici Agent keeps connections alive per origin. The egress guard checks the
// address each new connection is made to (its `lookup`), so a reused connection is one to an
// address already checked.

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ webhookTimeoutMs: 500 });
});
afterAll(() => t.close());

describe('webhook sender connections', () => {
  it('reuses a kept-alive connection for deliveries to the same endpoint', async () => {
    let connections = 0;
    let requests = 0;
    const server = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        requests++;
        response.end('ok');
      });
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const created = await t.post('/notifications/webhooks', { url, eventTypes: ['*'] }, { 'x-api-key': t.apiKey });
      expect(created.status).toBe(201);
      for (let i = 0; i < 5; i++) {
        await t.db.transaction((tx) =>
          publish(tx, { orgId: t.org.id, type: 'kyc.verification.approved', data: { verification_id: `v-${i}` } }),
        );
        await t.modules.notifications.dispatcher.runOnce();
      }
      expect(requests).toBe(5);
      // One connection unless the machine stalled past the keep-alive timeout between sends; a
      // sender without keep-alive opens one per delivery.
      expect(connections).toBeLessThan(5);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
