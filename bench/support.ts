import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import pg from 'pg';
import { buildApp, createModules } from '../src/app.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { loadKeyring } from '../src/platform/crypto/keyring.ts';
import { openEmbedded, openPostgres, type Database } from '../src/platform/db/database.ts';
import { startIdp } from '../test/support/idp.ts';

/**
 * A fresh, migrated database for one benchmark: in memory on the embedded database, or a new
 * database on the server of `serverUrl` (its `url`), dropped when the benchmark closes it.
 */
export async function benchDatabase(serverUrl: string | undefined, poolSize = 20): Promise<Database & { url?: string }> {
  if (!serverUrl) {
    const database = await openEmbedded();
    await database.migrate();
    return database;
  }
  const name = `tranche_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = openPostgres(url.toString(), poolSize);
  await database.migrate();
  return {
    ...database,
    url: url.toString(),
    async close() {
      await database.close();
      const cleanup = new pg.Client({ connectionString: serverUrl });
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}

export type BenchResult = { name: string; requestsPerSecond: number; p50Ms: number; p99Ms: number; errors: number };

/** One autocannon run; anything but a 2xx counts as an error. */
export async function load(name: string, options: autocannon.Options): Promise<BenchResult> {
  const result = await autocannon(options);
  return {
    name,
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

/** A markdown table row for one result. */
export const resultRow = (r: BenchResult) => `| ${r.name} | ${Math.round(r.requestsPerSecond)} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} |`;

/** min / median / max of `values`, rounded to `digits`. */
export function spread(values: number[], digits = 0): string {
  const sorted = [...values].sort((a, b) => a - b);
  return [sorted[0]!, sorted[Math.floor(sorted.length / 2)]!, sorted.at(-1)!].map((n) => n.toFixed(digits)).join(' / ');
}

/**
 * A markdown table row for one target over several runs: req/s, p50 and p99 as min / median / max
 * of the runs, and the errors of all runs together.
 */
export function runsRow(results: BenchResult[]): string {
  const errors = results.reduce((sum, r) => sum + r.errors, 0);
  return `| ${results[0]!.name} | ${spread(results.map((r) => r.requestsPerSecond))} | ${spread(results.map((r) => r.p50Ms))} | ${spread(results.map((r) => r.p99Ms))} | ${errors} |`;
}

export type BenchSetup = Awaited<ReturnType<typeof startBenchServer>>;

/**
 * The whole server on a fresh database and a port, with a local IdP, one org trusting it (with
 * `admin@bench.example` as its org_admin) and its API key; `signIn` exchanges an ID token.
 */
export async function startBenchServer(options: { databaseUrl?: string; config?: Partial<Config> }) {
  const database = await benchDatabase(options.databaseUrl);
  const config: Config = {
    ...loadConfig({}),
    // The production default, so that the figures include request logging; the lines go to /dev/null.
    logLevel: 'info',
    allowInsecureHttp: true,
    demoIdp: false,
    publicUrl: 'http://bench.local',
    ...options.config,
  };
  const keyring = loadKeyring({
    masterKeys: `bench:${randomBytes(32).toString('base64')}`,
    hashSecret: randomBytes(32).toString('hex'),
    dataDir: '/x',
  });
  const logStream = fs.createWriteStream('/dev/null');
  const modules = createModules({ config, database, keyring, logStream });
  const app = await buildApp({ config, database, keyring }, modules);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const idp = await startIdp();
  const org = await modules.identity.orgs.createOrg({
    name: 'Bench',
    idpIssuer: idp.issuer,
    idpAudience: idp.audience,
    adminEmails: ['admin@bench.example'],
  });
  const apiKey = (await modules.identity.orgs.createApiKey(org.id)).key;

  return {
    database,
    keyring,
    config,
    modules,
    url,
    org,
    apiKey,
    /** Exchanges an ID token for `email`; returns the access token and the user id. */
    async signIn(email: string) {
      const response = await fetch(`${url}/identity/auth/exchange`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
        body: JSON.stringify({ token: await idp.idToken(email) }),
      });
      const { access_token: accessToken } = (await response.json()) as { access_token: string };
      const { user_id: userId } = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { user_id: string };
      return { accessToken, userId };
    },
    async close() {
      await app.close();
      await idp.close();
      await database.close();
      logStream.end();
    },
  };
}

/** `call(method, path, bearer, body?)` against `baseUrl`: the envelope's `data`; throws on any non-2xx. */
export function apiCaller(baseUrl: string) {
  return async (method: string, path: string, token: string, body?: unknown) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
    return ((await response.json()) as { data: { id: string } }).data;
  };
}

/**
 * An open Reg D 506(b) offering with one equity class (a billion units at 1.00) and its
 * subscription agreement, created by the org admin `admin` through the API: what the issuance
 * benches subscribe to. Returns the offering's and the class's ids.
 */
export async function openBenchOffering(call: ReturnType<typeof apiCaller>, admin: string, names: { issuer: string; offering: string }) {
  const issuer = await call('POST', '/admin/issuers', admin, { legalName: names.issuer });
  const offering = await call('POST', '/admin/offerings', admin, {
    issuerId: issuer.id,
    name: names.offering,
    exemptionType: 'reg_d_506b',
    targetAmount: '1000000.00',
    maximumAmount: '9000000000.00',
    minimumInvestment: '1.00',
    deadline: '2030-12-31',
  });
  const security = await call('POST', `/admin/offerings/${offering.id}/securities`, admin, {
    name: 'Common',
    category: 'equity',
    pricePerUnit: '1.00',
    unitsAuthorized: 1_000_000_000,
  });
  await call('POST', `/admin/offerings/${offering.id}/documents`, admin, {
    kind: 'subscription_agreement',
    title: 'SA',
    contentType: 'text/plain',
    content: Buffer.from('sa').toString('base64'),
  });
  await call('POST', `/admin/offerings/${offering.id}/open`, admin);
  return { offeringId: offering.id, securityId: security.id };
}

/** CPU time (user + system, ms) a process has used, from `/proc/<pid>/stat` (Linux, 100 ticks/s); 0 when gone. */
export function processCpuMs(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}
