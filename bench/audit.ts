import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Keypair } from '@stellar/stellar-base';
import { buildApp, createModules } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import type { AuditService } from '../src/platform/audit/audit.service.ts';
import { johnSmith } from '../test/support/fixtures.ts';
import { apiCaller, load, openBenchOffering, startBenchServer, type BenchResult } from './support.ts';

const WALLETS = 64;

/** An audit log that records nothing: the same routes without the audit write. */
const noAudit = {
  record: async () => ({ id: '', seq: 0, hash: '' }),
  // The change still happens, alone.
  recordWith: async (_executor: unknown, _input: unknown, change: PromiseLike<unknown>) => {
    await change;
    return { id: '' };
  },
} as unknown as AuditService;

/**
 * The cost of the audit write: subscription create (Bearer) and key-server login (`GET /wallets/:id`,
 * which opens a session; 64 wallets in turn) through the full stack, on two servers over one database, one recording
 * each change in the audit log (chain head locked, entry hashed and inserted, head moved, all in
 * the route's transaction) and one built with an audit log that records nothing. Rounds alternate
 * between the two so that drift of the shared machine falls on both; the ratio is with / without.
 */
export async function benchAudit(options: { seconds: number; connections: number; rounds: number; databaseUrl?: string }) {
  const defaults = loadConfig({}).keyserver;
  const server = await startBenchServer({
    databaseUrl: options.databaseUrl,
    config: { keyserver: { ...defaults, emailVerification: false, rateLimitPerMinute: 100_000_000 } },
  });
  const { database, keyring, config, modules } = server;
  const bare = createModules({ config, database, keyring, audit: noAudit });
  const bareApp = await buildApp({ config, database, keyring, audit: noAudit }, bare);
  await bareApp.listen({ port: 0, host: '127.0.0.1' });
  const withoutUrl = `http://127.0.0.1:${(bareApp.server.address() as AddressInfo).port}`;

  const call = apiCaller(server.url);
  const admin = (await server.signIn('admin@bench.example')).accessToken;
  const investor = (await server.signIn('investor@bench.example')).accessToken;
  await call('POST', '/identity/kyc-verifications', investor, johnSmith);
  const { offeringId, securityId } = await openBenchOffering(call, admin, { issuer: 'Bench Issuer', offering: 'Bench Offering' });

  // Logins of many users, as in production (one user's logins queue on one audit chain).
  const walletIds: string[] = [];
  for (let i = 0; i < WALLETS; i++) {
    const owner = Keypair.random();
    const walletId = randomBytes(32).toString('hex');
    const keychain = randomBytes(300).toString('base64');
    await modules.keyserver.wallets.create(
      { walletId, email: `bench${i}@example.com`, accountId: owner.publicKey(), salt: 'c2FsdA==', keychainData: keychain, kdfVersion: 2 },
      { accountId: Keypair.random().publicKey(), salt: 'c2FsdA==', keychainData: keychain },
      [{ publicKey: owner.publicKey(), roleId: 2, weight: 1000, identity: 1, details: '{}' }],
    );
    walletIds.push(walletId);
  }

  const body = JSON.stringify({
    securityClassId: securityId,
    unitsSubscribed: 1,
    paymentMethod: 'card',
    accreditationStatus: 'non_accredited',
    suitabilityConfirmed: true,
    riskAcknowledgmentSigned: true,
  });
  const post = { method: 'POST' as const, body, headers: { authorization: `Bearer ${investor}`, 'content-type': 'application/json' } };
  const targets = {
    create: (url: string) => ({ url: `${url}/issuance/offerings/${offeringId}/subscriptions`, ...post }),
    login: (url: string) => ({ url, requests: walletIds.map((id) => ({ method: 'GET' as const, path: `/wallets/${id}` })) }),
  };
  const common = { duration: options.seconds, connections: options.connections };
  const warm = { ...common, duration: Math.max(1, Math.round(options.seconds / 4)) };
  for (const target of Object.values(targets)) {
    for (const url of [withoutUrl, server.url]) await load('warm-up', { ...warm, ...target(url) });
  }

  const runs: Record<string, BenchResult[]> = {};
  const record = async (name: string, options_: Parameters<typeof load>[1]) => (runs[name] ??= []).push(await load(name, options_));
  for (let round = 0; round < options.rounds; round++) {
    // Alternate which goes first, so neither always runs on the warmer or the fuller database.
    const order = round % 2 === 0 ? [withoutUrl, server.url] : [server.url, withoutUrl];
    for (const [key, target] of Object.entries(targets)) {
      for (const url of order) await record(`${key} ${url === withoutUrl ? 'without' : 'with'} audit`, { ...common, ...target(url) });
    }
  }
  const mean = (name: string): BenchResult => {
    const results = runs[name]!;
    const average = (pick: (r: BenchResult) => number) => results.reduce((sum, r) => sum + pick(r), 0) / results.length;
    return {
      name,
      requestsPerSecond: average((r) => r.requestsPerSecond),
      p50Ms: average((r) => r.p50Ms),
      p99Ms: average((r) => r.p99Ms),
      errors: results.reduce((sum, r) => sum + r.errors, 0),
    };
  };
  const result = {
    database: database.kind,
    createWithout: mean('create without audit'),
    createWith: mean('create with audit'),
    loginWithout: mean('login without audit'),
    loginWith: mean('login with audit'),
  };
  await bareApp.close();
  await server.close();
  return result;
}
