import { describe, expect, it } from 'vitest';
import { LOOPBACK_RANGES, loadConfig } from '../src/config.ts';

describe('config: webhook egress in development mode', () => {
  it('the embedded database in development lets webhooks reach loopback receivers, and says so', () => {
    const config = loadConfig({});
    expect(config.webhookEgressAllowlist).toBe(LOOPBACK_RANGES);
    expect(config.loopbackWebhooksByDefault).toBe(true);
  });

  it('never in production: PostgreSQL or NODE_ENV=production keep loopback blocked', () => {
    for (const env of [{ DATABASE_URL: 'postgres://db/tranche' }, { NODE_ENV: 'production' }]) {
      const config = loadConfig(env);
      expect(config.webhookEgressAllowlist).toBeUndefined();
      expect(config.loopbackWebhooksByDefault).toBe(false);
    }
  });

  it('an explicit WEBHOOK_EGRESS_ALLOWLIST wins everywhere', () => {
    expect(loadConfig({ WEBHOOK_EGRESS_ALLOWLIST: '10.1.0.0/16' })).toMatchObject({
      webhookEgressAllowlist: '10.1.0.0/16',
      loopbackWebhooksByDefault: false,
    });
  });
});
