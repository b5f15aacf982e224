import { createModules, type Modules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { publish } from '../../src/platform/events/outbox.ts';
import type { Deployment } from './process.ts';

/**
 * An org whose IdP is never called (a static issuer and JWKS URL) and the API-key principal that
 * manages its webhooks, for tests and benchmarks that drive the notifications service directly.
 */
export async function webhookOrg(modules: Pick<Modules, 'identity'>, name: string) {
  const org = await modules.identity.orgs.createOrg({
    name,
    idpIssuer: 'https://idp.example.com',
    idpJwksUrl: 'https://idp.example.com/jwks',
    idpAudience: 'a',
  });
  return { org, principal: { kind: 'api_key' as const, orgId: org.id, apiKeyId: 'setup' } };
}

/**
 * Prepares a deployment's database for worker processes: migrated, one org with an endpoint at
 * `url` subscribed to every event, and `events` committed `test.ping` events (`data.n` = 0..n-1)
 * waiting to be delivered. Closes its own connection, so workers started next find them all.
 */
export async function seedWebhookBacklog(deployment: Deployment, options: { name: string; url: string; events: number }): Promise<void> {
  const config = loadConfig(deployment.env);
  const database = await openDatabase(config);
  try {
    await database.migrate();
    const modules = createModules({ config, database, keyring: deployment.keyring() });
    const { org, principal } = await webhookOrg(modules, options.name);
    await modules.notifications.endpoints.create(principal, { url: options.url, eventTypes: ['*'] });
    await database.db.transaction(async (tx) => {
      for (let i = 0; i < options.events; i++) await publish(tx, { orgId: org.id, type: 'test.ping', data: { n: i } });
    });
    await modules.notifications.close();
  } finally {
    await database.close();
  }
}
