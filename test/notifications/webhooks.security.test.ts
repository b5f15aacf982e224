import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifications } from '../../src/notifications/notifications.module.ts';
import { webhookSecrets } from '../../src/notifications/notifications.tables.ts';
import { egressPolicy, isAddressAllowed } from '../../src/notifications/egress-guard.ts';
import { endpointsRepo } from '../../src/notifications/endpoints/endpoints.repo.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const create = (body: unknown) => t.post('/notifications/webhooks', body, { 'x-api-key': t.apiKey });

describe('webhooks security: the egress guard covers the IANA special-purpose IPv6 ranges', () => {
  const strict = egressPolicy(undefined);
  it.each([
    ['::7f00:1', 'IPv4-compatible ::/96'],
    ['::808:808', 'IPv4-compatible ::/96, even of a public v4'],
    ['::ffff:8.8.8.8', 'IPv4-mapped ::ffff:0:0/96'],
    ['::ffff:0:a00:1', 'IPv4-translated ::ffff:0:0:0/96'],
    ['64:ff9b::808:808', 'NAT64 64:ff9b::/96'],
    ['64:ff9b:1::a00:1', 'local-use NAT64 64:ff9b:1::/48'],
    ['100::1', 'discard-only 100::/64'],
    ['2001::1', 'Teredo 2001::/32'],
    ['2001:2::1', 'benchmarking 2001:2::/48'],
    ['2001:20::1', 'ORCHIDv2 2001:20::/28'],
    ['2001:db8::1', 'documentation 2001:db8::/32'],
    ['3fff::1', 'documentation 3fff::/20'],
    ['5f00::1', 'SRv6 SIDs 5f00::/16'],
    ['fd12::1', 'unique local fc00::/7'],
    ['fe80::1', 'link-local fe80::/10'],
    ['2002:7f00:1::1', '6to4 of loopback'],
  ])('refuses %s (%s)', (address) => {
    expect(isAddressAllowed(strict, address)).toBe(false);
  });
});

describe('webhooks security: internal destinations are refused when an endpoint is created or updated', () => {
  const internal = [
    'https://10.0.0.1/hook',
    'https://169.254.169.254/latest/meta-data',
    'https://[::ffff:10.0.0.1]/hook',
    'https://[64:ff9b::a9fe:a9fe]/hook',
    'https://[fd00::1]/hook',
    'https://[::a00:1]/hook',
  ];

  it.each(internal)('create refuses %s with a 400 naming url, and stores nothing', async (url) => {
    const response = await create({ url, eventTypes: ['*'] });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'url' });
  });

  it('update refuses an internal URL and keeps the old one', async () => {
    const created = await create({ url: 'https://hooks.example.com/ok', eventTypes: ['*'] });
    const id = created.body.data.id as string;
    for (const url of internal) {
      const response = await t.patch(`/notifications/webhooks/${id}`, { url }, { 'x-api-key': t.apiKey });
      expect(response.status, url).toBe(400);
    }
    expect((await t.get(`/notifications/webhooks/${id}`, { 'x-api-key': t.apiKey })).body.data.url).toBe('https://hooks.example.com/ok');
  });

  it('resolves the host name at create time: a name for an internal address is refused', async () => {
    const strict = createNotifications({
      database: t.database,
      keyring: t.keyring,
      clock: t.clock,
      config: { ...t.config, webhookEgressAllowlist: undefined },
      version: 'test',
    });
    const principal = { kind: 'api_key' as const, orgId: t.org.id, apiKeyId: t.apiKeyId };
    try {
      await expect(strict.endpoints.create(principal, { url: 'http://localhost:9/hook', eventTypes: ['*'] })).rejects.toMatchObject({
        code: 'VALIDATION_ERROR',
      });
    } finally {
      await strict.close();
    }
  });
});

describe('webhooks security: rotating with a grace period of 0', () => {
  it('stops the old secret at once, whatever the clock of the worker that signs next', async () => {
    const created = await create({ url: 'https://hooks.example.com/rotate', eventTypes: ['*'] });
    const id = created.body.data.id as string;
    const rotated = await t.post(`/notifications/webhooks/${id}/rotate-secret`, { gracePeriodSeconds: 0 }, { 'x-api-key': t.apiKey });
    expect(rotated.status).toBe(200);
    const rows = await t.db.select().from(webhookSecrets).where(eq(webhookSecrets.endpointId, id));
    expect(rows).toHaveLength(1);
    const earlier = new Date(t.clock.now().getTime() - 3600_000);
    expect(await endpointsRepo(t.db).activeSecrets(id, earlier)).toHaveLength(1);
  });
});
