import { describe, expect, it } from 'vitest';
import { ConfigError, LOOPBACK_RANGES, loadConfig } from '../src/config.ts';

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

describe('config: observability settings', () => {
  it('the worker answers health and metrics on 3001 by default, 0 turns its listener off; /metrics stays open and on the HTTP port', () => {
    expect(loadConfig({})).toMatchObject({ workerHttpPort: 3001, metricsPort: undefined, metricsToken: undefined });
    expect(loadConfig({ WORKER_HTTP_PORT: '0' }).workerHttpPort).toBe(0);
    expect(loadConfig({ METRICS_PORT: '9464', METRICS_TOKEN: 'a'.repeat(16) })).toMatchObject({
      metricsPort: 9464,
      metricsToken: 'a'.repeat(16),
    });
  });

  it('refuses a short METRICS_TOKEN and a port out of range, naming the variable', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: at least 16 characters/);
    expect(() => loadConfig({ METRICS_PORT: '0' })).toThrow(/METRICS_PORT/);
    expect(() => loadConfig({ WORKER_HTTP_PORT: '70000' })).toThrow(/WORKER_HTTP_PORT/);
  });
});

describe('config: webhook timeout and lease', () => {
  it('accepts a timeout under half the lease (the defaults: 15 s and 60 s)', () => {
    expect(loadConfig({})).toMatchObject({ webhookTimeoutMs: 15_000, webhookLeaseSeconds: 60 });
    expect(loadConfig({ WEBHOOK_TIMEOUT_MS: '900', WEBHOOK_LEASE_SECONDS: '2' })).toMatchObject({
      webhookTimeoutMs: 900,
      webhookLeaseSeconds: 2,
    });
  });

  it('refuses a timeout of half the lease or more, naming both settings', () => {
    const message = /WEBHOOK_TIMEOUT_MS: must be less than half of WEBHOOK_LEASE_SECONDS .*another worker send the delivery again/;
    expect(() => loadConfig({ WEBHOOK_TIMEOUT_MS: '30000' })).toThrow(message);
    expect(() => loadConfig({ WEBHOOK_LEASE_SECONDS: '20' })).toThrow(message);
    // And says what to change, either way.
    expect(() => loadConfig({ WEBHOOK_LEASE_SECONDS: '20' })).toThrow(
      /set WEBHOOK_LEASE_SECONDS above 30 or WEBHOOK_TIMEOUT_MS below 10000$/,
    );
    expect(() => loadConfig({ WEBHOOK_TIMEOUT_MS: '1000', WEBHOOK_LEASE_SECONDS: '2' })).toThrow(ConfigError);
  });
});
