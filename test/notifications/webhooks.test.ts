import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifications } from '../../src/notifications/notifications.module.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
let admin: Awaited<ReturnType<TestApp['signIn']>>;
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.signIn('admin@example.com');
});
afterAll(() => t.close());

const create = (body: unknown, headers: Record<string, string> = { 'x-api-key': t.apiKey }) =>
  t.post('/notifications/webhooks', body, headers);

describe('webhook endpoints happy', () => {
  it('creates an endpoint, shows the whsec_ secret once, and manages it', async () => {
    const created = await create({
      url: 'https://hooks.example.com/tranche',
      description: 'main',
      eventTypes: ['kyc.verification.approved'],
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({
      url: 'https://hooks.example.com/tranche',
      status: 'active',
      event_types: ['kyc.verification.approved'],
    });
    expect(created.body.data.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const id = created.body.data.id;

    const read = await t.get(`/notifications/webhooks/${id}`, admin.auth);
    expect(read.body.data.signing_secret).toBeUndefined();
    expect(read.text).not.toContain(created.body.data.signing_secret);
    expect((await t.get('/notifications/webhooks', { 'x-api-key': t.apiKey })).body.data.items.map((e: { id: string }) => e.id)).toContain(
      id,
    );

    const patched = await t.patch(`/notifications/webhooks/${id}`, { description: 'renamed', status: 'disabled' }, admin.auth);
    expect(patched.body.data).toMatchObject({ description: 'renamed', status: 'disabled', disabled_reason: 'disabled by the org' });
    expect((await t.patch(`/notifications/webhooks/${id}`, { status: 'active' }, admin.auth)).body.data).toMatchObject({
      status: 'active',
      disabled_reason: null,
    });

    const subs = await t.request('PUT', `/notifications/webhooks/${id}/subscriptions`, {
      body: { eventTypes: ['*'] },
      headers: admin.auth,
    });
    expect(subs.body.data).toEqual({ id, event_types: ['*'] });
    expect((await t.get(`/notifications/webhooks/${id}/subscriptions`, admin.auth)).body.data.event_types).toEqual(['*']);

    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, {}, admin.auth);
    expect(rotated.body.data.signing_secret).toMatch(/^whsec_/);
    expect(rotated.body.data.signing_secret).not.toBe(created.body.data.signing_secret);

    expect((await t.delete(`/notifications/webhooks/${id}`, admin.auth)).body.data).toEqual({ id, deleted: true });
    expect((await t.get(`/notifications/webhooks/${id}`, admin.auth)).status).toBe(404);
  });

  it('lists event types with descriptions and example payloads', async () => {
    const response = await t.get('/notifications/event-types', { 'x-api-key': t.apiKey });
    const types = response.body.data.map((entry: { type: string }) => entry.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'test.ping',
        'kyc.verification.approved',
        'accreditation.denied',
        'subscription.funded',
        'share.issued',
        'offering.closed',
      ]),
    );
    const approved = response.body.data.find((entry: { type: string }) => entry.type === 'kyc.verification.approved');
    expect(approved.description).toBeTruthy();
    expect(approved.example).toMatchObject({ type: 'kyc.verification.approved', data: { status: 'approved' } });
  });
});

describe('webhook endpoints error', () => {
  it('validates the URL and event types, naming the field', async () => {
    expect((await create({ url: 'not a url' })).body.error.field).toBe('url');
    expect((await create({ url: 'https://user:pw@hooks.example.com' })).body.error.field).toBe('url');
    const unknown = await create({ url: 'https://hooks.example.com', eventTypes: ['kyc.verification.approved', 'nope.nothing'] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.field).toBe('eventTypes.1');
    expect(unknown.body.error.message).toMatch(/unknown event type nope.nothing/);
    expect((await create({ url: 'https://hooks.example.com', eventTypes: [] })).body.error.field).toBe('eventTypes');
  });

  it('requires https unless the deployment allows http', async () => {
    const strict = createNotifications({
      database: t.database,
      keyring: t.keyring,
      clock: t.clock,
      config: { ...t.config, allowInsecureHttp: false },
      version: 'test',
    });
    const principal = { kind: 'api_key' as const, orgId: t.org.id, apiKeyId: t.apiKeyId };
    await expect(strict.endpoints.create(principal, { url: 'http://hooks.example.com', eventTypes: ['*'] })).rejects.toMatchObject({
      code: 'VALIDATION_ERROR',
      message: 'url must be an https:// URL',
    });
    expect((await strict.endpoints.create(principal, { url: 'https://hooks.example.com', eventTypes: ['*'] })).status).toBe('active');
    await strict.close();
    expect((await create({ url: 'http://hooks.example.com' })).status).toBe(201);
  });

  it('rejects a recover window over 14 days', async () => {
    const created = await create({ url: 'https://hooks.example.com/r' });
    const since = new Date(Date.now() - 15 * 86_400_000).toISOString();
    const response = await t.post(`/notifications/webhooks/${created.body.data.id}/recover`, { since }, admin.auth);
    expect(response.body.error.field).toBe('since');
  });
});

describe('webhook endpoints security', () => {
  it('lets org_admins and the API key manage webhooks, not plain users', async () => {
    const user = await t.signIn('plain-hooks@example.com');
    expect((await create({ url: 'https://hooks.example.com' }, user.auth)).status).toBe(403);
    expect((await t.get('/notifications/webhooks', user.auth)).status).toBe(403);
    expect((await t.get('/notifications/deliveries', user.auth)).status).toBe(403);
    expect((await create({ url: 'https://hooks.example.com' }, admin.auth)).status).toBe(201);
    expect((await t.get('/notifications/webhooks')).status).toBe(401);
  });

  it("never shows or changes another org's endpoints", async () => {
    const created = await create({ url: 'https://hooks.example.com/mine' });
    const other = await t.createOrg({ name: 'Other hooks' });
    const headers = { 'x-api-key': other.apiKey };
    const id = created.body.data.id;
    expect((await t.get(`/notifications/webhooks/${id}`, headers)).status).toBe(404);
    expect((await t.patch(`/notifications/webhooks/${id}`, { description: 'x' }, headers)).status).toBe(404);
    expect((await t.post(`/notifications/webhooks/${id}/rotate-secret`, {}, headers)).status).toBe(404);
    expect((await t.post(`/notifications/webhooks/${id}/test`, undefined, headers)).status).toBe(404);
    expect((await t.delete(`/notifications/webhooks/${id}`, headers)).status).toBe(404);
    expect((await t.get('/notifications/webhooks', headers)).body.data.items).toEqual([]);
  });
});
