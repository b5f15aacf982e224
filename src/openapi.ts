import { randomBytes } from 'node:crypto';
import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';
import { loadKeyring } from './platform/crypto/keyring.ts';
import { openEmbedded } from './platform/db/database.ts';

/**
 * The OpenAPI 3.1 document of the whole server, built without listening: an in-memory embedded
 * database, throwaway keys and the default configuration with `PUBLIC_URL=http://localhost:3000`,
 * so the result depends only on the code (it is committed as `openapi.json`).
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const config = loadConfig({ PUBLIC_URL: 'http://localhost:3000', LOG_LEVEL: 'silent', DEMO_IDP: 'true' });
  const database = await openEmbedded();
  const keyring = loadKeyring({
    masterKeys: `openapi:${randomBytes(32).toString('base64')}`,
    hashSecret: randomBytes(32).toString('hex'),
    dataDir: '/nonexistent',
  });
  const app = await buildApp({ config, database, keyring });
  try {
    await app.ready();
    return app.swagger() as unknown as Record<string, unknown>;
  } finally {
    await app.close();
    await database.close();
  }
}
