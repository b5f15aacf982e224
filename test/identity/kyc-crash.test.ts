import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/platform/db/database.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startIdp } from '../support/idp.ts';
import { freePort, fromSource, startServer, testDeployment, type Deployment, type Running } from '../support/process.ts';

const LEASE_SECONDS = 5;
let deployment: Deployment;
let idp: Awaited<ReturnType<typeof startIdp>>;
let apiKey: string;

beforeAll(async () => {
  deployment = await testDeployment('kyc-crash', {
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    // One issuer for both server processes, so the access token outlives the crash.
    PUBLIC_URL: 'http://tranche.test',
    ALLOW_INSECURE_HTTP: 'true',
    DEMO_IDP: 'false',
    IN_PROGRESS_LEASE_SECONDS: String(LEASE_SECONDS),
  });
  idp = await startIdp();
  const config = loadConfig(deployment.env);
  const database = await openDatabase(config);
  await database.migrate();
  const modules = createModules({ config, database, keyring: deployment.keyring() });
  const org = await modules.identity.orgs.createOrg({ name: 'KYC crash', idpIssuer: idp.issuer, idpAudience: idp.audience });
  apiKey = (await modules.identity.orgs.createApiKey(org.id)).key;
  await modules.notifications.close();
  await database.close();
}, 300_000);

afterAll(async () => {
  await idp.close();
  await deployment.dispose();
});

/** The real server in its own process; resolves once it serves. */
async function startApi(extraEnv: Record<string, string>): Promise<Running> {
  const port = await freePort();
  return startServer(
    [...fromSource, 'serve', '--role', 'api'],
    { ...deployment.env, PORT: String(port), ...extraEnv },
    port,
    '/health/live',
  );
}

async function stop(server: Running, signal: NodeJS.Signals) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  await server.stop(signal);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('kyc crash', () => {
  it('a server killed with SIGKILL mid KYC request leaves nothing stuck: the retry with the same Idempotency-Key succeeds', async () => {
    // The first server's KYC vendor hangs, so the request is certainly in flight when the process dies.
    const first = await startApi({ KYC_SANDBOX_SUBMIT_DELAY_MS: '600000' });
    let second: Running | undefined;
    try {
      const exchange = await fetch(`${first.url}/identity/auth/exchange`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
        body: JSON.stringify({ token: await idp.idToken('crash@example.com') }),
      });
      expect(exchange.status).toBe(200);
      const { access_token: accessToken } = (await exchange.json()) as { access_token: string };
      const auth = { authorization: `Bearer ${accessToken}` };
      const headers = { ...auth, 'content-type': 'application/json', 'idempotency-key': 'kyc-crash-1' };
      const submit = (url: string) =>
        fetch(`${url}/identity/kyc-verifications`, { method: 'POST', headers, body: JSON.stringify(johnSmith) });
      const effective = async (url: string) =>
        (
          (await (await fetch(`${url}/identity/kyc`, { headers: auth })).json()) as {
            data: { status: string; verification_id: string | null };
          }
        ).data;

      const inFlight = submit(first.url).catch((error: unknown) => error);
      let stuckId: string | undefined;
      for (let i = 0; i < 600 && !stuckId; i++) {
        const state = await effective(first.url);
        if (state.status === 'pending') stuckId = state.verification_id!;
        else await sleep(100);
      }
      expect(stuckId).toBeDefined();
      await stop(first, 'SIGKILL');
      expect(await inFlight).toBeInstanceOf(Error);

      second = await startApi({});
      // Until the dead request's lease is over, the key is still held (409); then the retry runs.
      let retry = await submit(second.url);
      for (let i = 0; i < 600 && retry.status === 409; i++) {
        await sleep(250);
        retry = await submit(second.url);
      }
      expect(retry.status, await retry.clone().text()).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      const created = ((await retry.json()) as { data: { verification_id: string; status: string } }).data;
      expect(created.status).toBe('approved');
      expect(created.verification_id).not.toBe(stuckId);

      const old = await fetch(`${second.url}/identity/kyc-verifications/${stuckId}`, { headers: auth });
      expect(((await old.json()) as { data: { status: string } }).data.status).toBe('error');
      const replay = await submit(second.url);
      expect(replay.status).toBe(201);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect((await effective(second.url)).status).toBe('approved');
    } finally {
      await stop(first, 'SIGKILL');
      if (second) await stop(second, 'SIGTERM');
    }
  }, 600_000);
});
