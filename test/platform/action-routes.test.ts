import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
});
afterAll(() => t.close());

type Operation = { method: string; path: string };

/** Every write operation of the served document that takes no body, or an optional one: the action routes. */
async function actionRoutes(): Promise<Operation[]> {
  const document = (await t.get('/openapi.json')).body as {
    paths: Record<string, Record<string, { requestBody?: { required?: boolean } }>>;
  };
  return Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.entries(operations)
      .filter(([method, operation]) => method !== 'get' && (!operation.requestBody || operation.requestBody.required === false))
      .map(([method]) => ({ method: method.toUpperCase(), path })),
  );
}

describe('action routes need no body', () => {
  it('finds the action routes in the OpenAPI document, optional bodies marked not required', async () => {
    const routes = (await actionRoutes()).map((route) => `${route.method} ${route.path}`);
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /notifications/webhooks/{id}/rotate-secret',
        'POST /notifications/webhooks/{id}/test',
        'POST /notifications/deliveries/{id}/retry',
        'POST /identity/accreditations/documents/{id}/upload',
        'POST /admin/kyc-verifications/{id}/approve',
        'POST /admin/kyc-verifications/{id}/reject',
        'POST /admin/accreditations/{id}/start-review',
        'POST /admin/accreditations/{id}/approve',
        'POST /admin/offerings/{id}/open',
        'POST /admin/subscriptions/{id}/approve',
        'POST /issuance/subscriptions/{id}/create-checkout-session',
        'POST /wallets/{walletId}/verification',
      ]),
    );
  });

  it('every action route answers the same with no body and with an empty JSON body', async () => {
    const admin = await t.signIn('admin@example.com');
    const adminKey = await t.modules.identity.orgs.createAdminKey();
    const routes = (await actionRoutes()).filter((route) => !route.path.includes('/payments/stripe/webhook'));
    expect(routes.length).toBeGreaterThan(20);
    const mismatches: string[] = [];
    for (const route of routes) {
      const keyServer = !/^\/(identity|notifications|issuance|primary-issuance|admin)\//.test(route.path);
      const target = route.path.replace(/\{(\w+)\}/g, (_match, name: string) =>
        name === 'walletId' ? randomBytes(32).toString('hex') : name === 'factorId' ? '7' : randomUUID(),
      );
      const auth = keyServer
        ? signedHeaders(client.admin, route.method, target)
        : route.path.startsWith('/admin/')
          ? { 'x-admin-key': adminKey.key }
          : admin.auth;
      const none = await t.request(route.method, target, { headers: auth });
      const empty = await t.request(route.method, target, { headers: { ...auth, 'content-type': 'application/json' }, rawBody: '' });
      const bodyRefused = (response: typeof none) =>
        keyServer ? response.status === 400 && /body|data/i.test(response.text) : response.status === 400;
      if (none.status !== empty.status || bodyRefused(none) || bodyRefused(empty)) {
        mismatches.push(`${route.method} ${route.path}: no body ${none.status}, empty JSON ${empty.status} ${empty.text.slice(0, 160)}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('rotate-secret and test work as curl sends them: content-type JSON, no body', async () => {
    const admin = await t.signIn('admin@example.com');
    const endpoint = await t.post('/notifications/webhooks', { url: 'https://example.com/hook' }, admin.auth);
    expect(endpoint.status, endpoint.text).toBe(201);
    const headers = { ...admin.auth, 'content-type': 'application/json' };
    const rotated = await t.request('POST', `/notifications/webhooks/${endpoint.body.data.id}/rotate-secret`, { headers, rawBody: '' });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.data.signing_secret).toMatch(/^whsec_/);
    const tested = await t.request('POST', `/notifications/webhooks/${endpoint.body.data.id}/test`, { headers, rawBody: '' });
    expect(tested.status, tested.text).toBe(202);
  });
});
