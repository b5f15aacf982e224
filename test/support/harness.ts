import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import { inject } from 'vitest';
import { buildApp, createModules } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { loadKeyring, type Keyring } from '../../src/platform/crypto/keyring.ts';
import { openEmbedded, openPostgres, type Database, type PostgresOptions } from '../../src/platform/db/database.ts';
import { withDatabaseName } from './global-setup.ts';
import { startIdp } from './idp.ts';

export const usingPostgres = () => inject('database').kind === 'postgres';

/** On a PostgreSQL test run: a new database copied from the migrated template, and its disposal. */
export async function createPostgresTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const target = inject('database');
  if (target.kind !== 'postgres') throw new Error('not a PostgreSQL test run');
  const name = `${target.prefix}${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: target.serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${target.template}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabaseName(target.serverUrl, name),
    async drop() {
      const cleanup = new pg.Client({ connectionString: target.serverUrl });
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}

export type TestDatabaseOptions = {
  /** PostgreSQL only: rewrites the app's connection URL, e.g. through a `startTcpProxy()`. */
  connectThrough?: (url: string) => string;
  postgres?: Partial<PostgresOptions>;
};

/** A fresh copy of the migrated test database for one test file. */
export async function openTestDatabase(options: TestDatabaseOptions = {}): Promise<Database & { url?: string }> {
  const target = inject('database');
  if (target.kind === 'embedded') {
    return openEmbedded({ loadDataDir: new Blob([fs.readFileSync(target.snapshotFile)]) });
  }
  const created = await createPostgresTestDatabase();
  const url = options.connectThrough ? options.connectThrough(created.url) : created.url;
  const database = openPostgres(url, { poolSize: 5, ...options.postgres });
  return {
    ...database,
    url: created.url,
    async close() {
      await database.close();
      await created.drop();
    },
  };
}

/**
 * A database that outlives one app, for restart tests: `open()` again after closing gives the same
 * data (the embedded database in a directory on disk, PostgreSQL a database of its own).
 */
export async function restartableTestDatabase(): Promise<{ open(): Promise<Database & { url?: string }>; dispose(): Promise<void> }> {
  const target = inject('database');
  if (target.kind === 'embedded') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-db-'));
    let first = true;
    return {
      async open() {
        const loadDataDir = first ? new Blob([fs.readFileSync(target.snapshotFile)]) : undefined;
        first = false;
        return openEmbedded({ dataDir: dir, ...(loadDataDir ? { loadDataDir } : {}) });
      },
      async dispose() {
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const created = await createPostgresTestDatabase();
  return { open: async () => openPostgres(created.url, { poolSize: 5 }), dispose: () => created.drop() };
}

export function testKeyring(): Keyring {
  return loadKeyring({
    masterKeys: `test-k1:${randomBytes(32).toString('base64')}`,
    hashSecret: randomBytes(32).toString('hex'),
    dataDir: '/nonexistent',
  });
}

/** Real time plus an offset the test moves forward. */
export function testClock() {
  let offsetMs = 0;
  return {
    now: () => new Date(Date.now() + offsetMs),
    advance(ms: number) {
      offsetMs += ms;
    },
  };
}

export type ApiResponse<T = any> = { status: number; body: T; headers: Headers; text: string };

export type TestApp = Awaited<ReturnType<typeof startTestApp>>;

/**
 * The whole server on a real socket and a real database, with a local IdP, one org trusting it
 * and that org's API key. `logs` holds every log line the server wrote.
 */
export async function startTestApp(
  overrides: Partial<Config> = {},
  options: Pick<TestDatabaseOptions, 'connectThrough'> & {
    /** Run on this database (and keyring) instead of a fresh copy, and leave it open on close: a restart. */
    reuse?: { database: Database & { url?: string }; keyring: Keyring };
    /** Listen on this port instead of any free one (a test whose PUBLIC_URL must be the real address). */
    port?: number;
  } = {},
) {
  const database = options.reuse?.database ?? (await openTestDatabase({ ...options, postgres: overrides.postgres }));
  const keyring = options.reuse?.keyring ?? testKeyring();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tranche-app-'));
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const config: Config = {
    ...loadConfig({}),
    publicUrl: 'http://tranche.test',
    logLevel: 'info',
    allowInsecureHttp: true,
    demoIdp: false,
    jwksRefetchCooldownSeconds: 0,
    kycSandboxAsyncDelayMs: 100,
    webhookEgressAllowlist: '127.0.0.0/8,::1/128',
    dataDir,
    ...overrides,
  };
  const clock = testClock();
  const modules = createModules({ config, database, keyring, logStream, clock });
  const app = await buildApp({ config, database, keyring, clock }, modules);
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const idp = await startIdp();
  const stripe = modules.issuance.stripeDouble!;

  async function request<T = any>(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; rawBody?: string } = {},
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${url}${path}`, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed as T, headers: response.headers, text };
  }

  async function createOrg(options: { name?: string; adminEmails?: string[] } = {}) {
    const org = await modules.identity.orgs.createOrg({
      name: options.name ?? 'Test Org',
      idpIssuer: idp.issuer,
      idpAudience: idp.audience,
      adminEmails: options.adminEmails ?? ['admin@example.com'],
    });
    const apiKey = await modules.identity.orgs.createApiKey(org.id);
    return { org, apiKey: apiKey.key, apiKeyId: apiKey.id };
  }

  const primary = await createOrg();

  /** Exchanges an ID token for `email` and returns the tokens and the user id. */
  async function signIn(email: string, org: { apiKey: string } = primary) {
    const response = await request('POST', '/identity/auth/exchange', {
      headers: { 'x-api-key': org.apiKey },
      body: { token: await idp.idToken(email) },
    });
    if (response.status !== 200) throw new Error(`sign-in failed: ${response.status} ${response.text}`);
    const claims = JSON.parse(Buffer.from(response.body.access_token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
    return {
      accessToken: response.body.access_token as string,
      refreshToken: response.body.refresh_token as string,
      userId: claims.user_id as string,
      claims,
      auth: { authorization: `Bearer ${response.body.access_token as string}` },
    };
  }

  return {
    url,
    app,
    clock,
    config,
    database,
    db: database.db,
    keyring,
    modules,
    idp,
    stripe,
    logs,
    org: primary.org,
    apiKey: primary.apiKey,
    apiKeyId: primary.apiKeyId,
    createOrg,
    signIn,
    request,
    get: <T = any>(path: string, headers?: Record<string, string>) => request<T>('GET', path, { headers }),
    post: <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => request<T>('POST', path, { body, headers }),
    patch: <T = any>(path: string, body?: unknown, headers?: Record<string, string>) => request<T>('PATCH', path, { body, headers }),
    delete: <T = any>(path: string, headers?: Record<string, string>) => request<T>('DELETE', path, { headers }),
    async close() {
      await app.close();
      await idp.close();
      if (!options.reuse) await database.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
