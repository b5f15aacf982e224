import { Keypair } from '@stellar/stellar-base';
import type { Keyserver } from './keyserver/keyserver.module.ts';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildApp,
  buildMetricsApp,
  buildWorkerApp,
  createModules,
  sealPlaintextRows,
  startMaintenance,
  version,
  type Modules,
} from './app.ts';
import { ConfigError, LOOPBACK_RANGES, loadConfig, type Config } from './config.ts';
import { DEMO_AUDIENCE } from './identity/demo-idp/demo-idp.ts';
import type { Identity } from './identity/identity.module.ts';
import { KeyMismatchError, verifyDeploymentKeys } from './platform/crypto/key-check.ts';
import { addMasterKeyToFile, generateKeyEnvironment, KeyringError, loadKeyring, type Keyring } from './platform/crypto/keyring.ts';
import { DataDirLockedError, openDatabase, type Database } from './platform/db/database.ts';
import { AppError } from './platform/http/errors.ts';
import { describeStartupError } from './platform/startup-error.ts';
import { rewrapIdempotencyResponses } from './platform/http/idempotency.ts';
import { rewrapKeyserverRows } from './keyserver/at-rest.ts';
import { rewrapSignatures } from './issuance/subscriptions/signature-evidence.ts';
import { rewrapRows } from './platform/crypto/rewrap-rows.ts';
import { describeDrift } from './issuance/offerings/totals.service.ts';
import { startAnchoring } from './platform/audit/anchoring.ts';

const usage = `tranche ${version}

Usage: tranche <command> [options]        (tranche --version, tranche --help)

  serve [--role all|api|worker]           run the HTTP server and/or the worker: webhooks, mail (migrates first)
  migrate                                 apply database migrations and exit (reads no keys)
  org create --name N --audience A --issuer URL [--jwks-url URL] [--admin-email E ...] [--redirect-origin O ...]
  org update --org ORG_ID --redirect-origin O ...   replace the origins checkout may return to
                                          (--redirect-origin '' clears them)
  org list                                every org: id, name, identity provider, audience
  api-key create --org ORG_ID [--label L] print a new org API key (shown once)
  api-key list --org ORG_ID               the org's API keys: id, hint, label, active or revoked
  api-key revoke --id API_KEY_ID
  admin-key create [--label L]            print a platform admin key (back-office review across orgs)
  audit verify [--org ORG_ID] [--anchors FILE]   walk the audit chains (one org's) from genesis, and check the
                                          anchors kept in FILE; exit 1 at a broken link
  audit anchor [--out FILE]               sign the head of every audit chain that moved (the worker does it
                                          hourly); --out appends the signed anchors to FILE, to keep elsewhere
  totals check                            list every offering, class and investor row whose running totals
                                          differ from the subscriptions; exit 1 if any
  totals repair                           recompute those from the subscriptions (PostgreSQL: safe while serving),
                                          audited; prints what it changed
  ocf export --issuer ISSUER_ID [--out F] the issuer's cap table as Open Cap Format files in a zip (default ./ocf-<id>.zip)
             [--formation-date D --country C]   the issuer's formation date and country, when not stored with it
  keyserver admin-signer create           print a new key server admin seed (a signer of the master account)
  keys generate [--out DIR]               new MASTER_KEYS and HASH_SECRET: env lines, or files in DIR
  keys rotate                             new master key (data-dir keyring) and re-wrap every data key
  demo                                    demo org, API key, admin key and ID token from the built-in demo IdP
                                          (as the first start on the embedded database prints)

Configuration comes from the environment (see README), X_FILE=/path for any X:
  DATABASE_URL        postgres://... (unset: embedded database in DATA_DIR, default ./data)
  MASTER_KEYS, HASH_SECRET   required on PostgreSQL, the same in every process (tranche keys generate)
  PORT, HOST          HTTP listen address (default 3000, 127.0.0.1 embedded / 0.0.0.0 PostgreSQL)
  WORKER_HTTP_PORT    --role worker: health and metrics port (default 3001, 0: none)
  METRICS_PORT, METRICS_TOKEN   /metrics on its own port only; require Authorization: Bearer <token>
Exit code 1 with one line on stderr when the command fails.`;

type Context = {
  config: Config;
  database: Database;
  identity: Identity;
  keyserver: Keyserver;
  keyring: Keyring;
  audit?: Modules['audit'];
  issuance?: Modules['issuance'];
};

/**
 * The deployment's keyring: MASTER_KEYS and HASH_SECRET, or on the embedded database (one process)
 * the keyring generated in DATA_DIR. On PostgreSQL without them it throws `KeyringError`.
 */
function deploymentKeyring(config: Config): Keyring {
  return loadKeyring({
    masterKeys: config.masterKeys,
    hashSecret: config.hashSecret,
    dataDir: config.databaseUrl === undefined ? config.dataDir : undefined,
  });
}

/**
 * Migrates, then checks the keys against the deployment's before anything can use them, then seals
 * PII left in plaintext by releases before sealing at rest (SQL migrations cannot: no keys there).
 */
async function openVerified(config: Config): Promise<{ database: Database; keyring: Keyring }> {
  const keyring = deploymentKeyring(config);
  const database = await openDatabase(config);
  try {
    await database.migrate();
    await verifyDeploymentKeys(database.db, keyring);
    await sealPlaintextRows(database.db, keyring);
    return { database, keyring };
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
}

async function withDatabase<T>(config: Config, run: (context: Context) => Promise<T>): Promise<T> {
  const { database, keyring } = await openVerified(config);
  try {
    const { identity, keyserver, audit, issuance } = createModules({ config, database, keyring });
    return await run({ config, database, identity, keyserver, keyring, audit, issuance });
  } finally {
    await database.close();
  }
}

async function createDemo({ config, identity }: Context) {
  const org = await identity.orgs.createOrg({
    name: 'Demo Org',
    idpIssuer: identity.demo.issuer,
    idpAudience: DEMO_AUDIENCE,
    adminEmails: ['demo.admin@example.com'],
  });
  const apiKey = await identity.orgs.createApiKey(org.id, 'demo');
  const idToken = await identity.demo.mintIdToken('demo.investor@example.com');
  const adminKey = await identity.orgs.createAdminKey('demo');
  return {
    org,
    apiKey,
    text: [
      `Demo org ${org.id} trusts the built-in demo IdP (${identity.demo.issuer}).`,
      `API key (shown once): ${apiKey.key}`,
      '',
      'Exchange a demo ID token (valid 1 h) for Tranche tokens:',
      `  curl -s -X POST ${config.publicUrl}/identity/auth/exchange \\`,
      `    -H 'content-type: application/json' -H 'x-api-key: ${apiKey.key}' \\`,
      `    -d '{"token":"${idToken}"}'`,
      '',
      `More ID tokens: curl -s -X POST ${config.publicUrl}/demo-idp/token -H 'content-type: application/json' -d '{"email":"someone@example.com"}'`,
      '(demo.admin@example.com signs in as org_admin)',
      '',
      `Back-office console: ${config.publicUrl}/console (sign in with the platform admin key: ${adminKey.key})`,
      `  the demo org's admins sign in at ${config.publicUrl}/console/?org=${org.id} as demo.admin@example.com`,
      ...(config.smtpUrl
        ? []
        : [
            'No SMTP_URL: mail (key server verification links and codes, invites) is kept, not sent. Read it with',
            `  curl -s ${config.publicUrl}/admin/mail -H 'x-admin-key: ${adminKey.key}'`,
          ]),
    ].join('\n'),
  };
}

type Role = 'all' | 'api' | 'worker';

export const FIRST_START_SECRETS_FILE = 'first-start-secrets.txt';

/**
 * One-time secrets (the demo API key, the platform admin key) are for the person at the terminal,
 * never for a log stream. When stdout is not a terminal (a container, a log collector), they go to
 * a file only the server's user can read, and stdout names the file.
 */
function showSecretsOnce(config: Config, text: string): string {
  if (process.stdout.isTTY) return text;
  fs.mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, FIRST_START_SECRETS_FILE);
  fs.writeFileSync(file, `${text}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return `Its API key, admin key and a demo ID token are in ${file} (mode 0600, shown nowhere else): read it, then delete it.`;
}

/** The METRICS_PORT listener when configured, listening; closed with the process. */
async function listenForMetrics(config: Config, modules: Modules) {
  if (config.metricsPort === undefined) return undefined;
  const metricsApp = await buildMetricsApp(config, modules);
  await metricsApp.listen({ port: config.metricsPort, host: config.host });
  return metricsApp;
}

async function serve(config: Config, role: Role) {
  const { database, keyring } = await openVerified(config);
  const modules = createModules({ config, database, keyring });
  if (role === 'worker') {
    const http = config.workerHttpPort === 0 ? undefined : await buildWorkerApp({ config, database }, modules);
    await http?.listen({ port: config.workerHttpPort, host: config.host });
    const metricsApp = await listenForMetrics(config, modules);
    const worker = await modules.notifications.startWorker();
    const stopMail = modules.mailSender?.start();
    const stopMaintenance = startMaintenance(modules, config);
    const stopAnchoring = startAnchoring(modules.audit, config.auditAnchorIntervalSeconds, modules.log);
    // Drains (WORKER_DRAIN_SECONDS) and exits 0; a second signal kills the process at once.
    const stop = async (signal: NodeJS.Signals) => {
      modules.log.info({ signal, drainSeconds: config.workerDrainSeconds }, 'shutting down: draining webhook sends in flight');
      await stopAnchoring();
      await Promise.all([worker.stop(), stopMaintenance(), stopMail?.()]);
      await http?.close();
      await metricsApp?.close();
      await modules.notifications.close();
      await database.close();
      modules.log.info({ signal }, 'stopped');
      process.exit(0);
    };
    process.once('SIGINT', (signal) => void stop(signal));
    process.once('SIGTERM', (signal) => void stop(signal));
    const served = [
      http
        ? `health${config.metricsPort === undefined ? ' and metrics' : ''} on http://${config.host}:${config.workerHttpPort}`
        : undefined,
      config.metricsPort === undefined ? undefined : `metrics on http://${config.host}:${config.metricsPort}/metrics`,
    ].filter(Boolean);
    console.log(
      `Tranche ${version} webhook worker${modules.mailSender ? ' and mail sender' : ''} started (${database.kind === 'embedded' ? 'embedded database' : 'PostgreSQL'})${served.length > 0 ? `; ${served.join(', ')}` : ''}`,
    );
    return;
  }
  const app = await buildApp({ config, database, keyring }, modules);
  const worker = role === 'all' ? await modules.notifications.startWorker() : undefined;
  const stopMail = role === 'all' ? modules.mailSender?.start() : undefined;
  const stopMaintenance = role === 'all' ? startMaintenance(modules, config) : undefined;
  const stopAnchoring = role === 'all' ? startAnchoring(modules.audit, config.auditAnchorIntervalSeconds, modules.log) : undefined;
  const metricsApp = await listenForMetrics(config, modules);
  // The HTTP server finishes its requests while the worker drains its sends (the worker raises
  // its stop signal first, so the sender, closed with the app, only waits for sends in flight).
  const close = async (signal: NodeJS.Signals) => {
    modules.log.info({ signal }, 'shutting down: finishing requests in flight and draining webhook sends');
    await stopAnchoring?.();
    await Promise.all([worker?.stop(), stopMaintenance?.(), stopMail?.(), app.close()]);
    await metricsApp?.close();
    await database.close();
    modules.log.info({ signal }, 'stopped');
    process.exit(0);
  };
  process.once('SIGINT', (signal) => void close(signal));
  process.once('SIGTERM', (signal) => void close(signal));
  await app.listen({ port: config.port, host: config.host });

  const lines = [
    '',
    `Tranche ${version} listening on ${config.publicUrl} (${database.kind === 'embedded' ? `embedded database in ${config.dataDir}` : 'PostgreSQL'})`,
    `API docs: ${config.publicUrl}/docs   OpenAPI: ${config.publicUrl}/openapi.json`,
  ];
  if (config.loopbackWebhooksByDefault && role === 'all') {
    lines.push(
      `Development mode: webhooks may be delivered to loopback addresses (${LOOPBACK_RANGES}), e.g. a receiver on this machine.`,
      'Never in production: on PostgreSQL or with NODE_ENV=production only public addresses (and WEBHOOK_EGRESS_ALLOWLIST) are reached.',
    );
  }
  if (config.smtpUrl && role === 'all') {
    const smtp = new URL(config.smtpUrl);
    lines.push(`Mail: sent through ${smtp.protocol}//${smtp.host} (queued with each change, retried; GET /admin/mail shows each one)`);
  }
  const orgs = await modules.identity.orgs.countOrgs();
  if (config.demoIdp && orgs === 0) {
    const demo = await createDemo({ config, database, identity: modules.identity, keyserver: modules.keyserver, keyring });
    lines.push('', 'First start: created a demo org.', showSecretsOnce(config, demo.text));
  } else if (orgs === 0) {
    lines.push('Create an org and its first API key (with the server stopped when on the embedded database):');
    lines.push('  npm run tranche -- org create --name "Acme" --issuer https://idp.example.com --audience my-client-id');
    lines.push('  npm run tranche -- api-key create --org <org id>');
  }
  console.log(lines.join('\n'));
}

async function main(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      issuer: { type: 'string' },
      'jwks-url': { type: 'string' },
      audience: { type: 'string' },
      'admin-email': { type: 'string', multiple: true },
      'redirect-origin': { type: 'string', multiple: true },
      org: { type: 'string' },
      'formation-date': { type: 'string' },
      country: { type: 'string' },
      label: { type: 'string' },
      id: { type: 'string' },
      role: { type: 'string', default: 'all' },
      out: { type: 'string' },
      anchors: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const command = positionals.join(' ');
  if (values.version) {
    console.log(version);
    return;
  }
  if (values.help || command === '' || command === 'help') {
    console.log(usage);
    return;
  }
  if (command === 'keys generate') {
    const keys = generateKeyEnvironment();
    if (values.out) {
      fs.mkdirSync(values.out, { recursive: true, mode: 0o700 });
      for (const [name, value] of Object.entries(keys)) {
        fs.writeFileSync(path.join(values.out, name.toLowerCase()), `${value}\n`, { mode: 0o600, flag: 'wx' });
      }
      console.log(
        `Wrote ${path.join(values.out, 'master_keys')} and ${path.join(values.out, 'hash_secret')}: pass them as MASTER_KEYS_FILE and HASH_SECRET_FILE.`,
      );
      return;
    }
    console.log(`MASTER_KEYS=${keys.MASTER_KEYS}\nHASH_SECRET=${keys.HASH_SECRET}`);
    console.error(
      'Give both lines to every process of the deployment (environment, or files named by MASTER_KEYS_FILE and HASH_SECRET_FILE); keep them secret.',
    );
    return;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve':
      if (!['all', 'api', 'worker'].includes(values.role)) throw new UsageError('--role must be all, api or worker');
      return serve(config, values.role as Role);
    case 'migrate': {
      // Schema only: no keyring is read or written, so migrations can run before keys are handed out.
      const database = await openDatabase(config);
      try {
        await database.migrate();
      } finally {
        await database.close();
      }
      console.log('Migrations applied.');
      return;
    }
    case 'org create':
      await withDatabase(config, async ({ identity }) => {
        const org = await identity.orgs.createOrg({
          name: values.name ?? '',
          idpIssuer: values.issuer,
          idpJwksUrl: values['jwks-url'],
          idpAudience: values.audience ?? '',
          adminEmails: values['admin-email'] ?? [],
          redirectOrigins: values['redirect-origin'] ?? [],
        });
        console.log(`Created org ${org.id} (${org.name}).\nNext: tranche api-key create --org ${org.id}`);
      });
      return;
    case 'org update': {
      const origins = values['redirect-origin'];
      if (!origins) throw new UsageError('org update needs --redirect-origin (one per origin; --redirect-origin "" clears them)');
      await withDatabase(config, async ({ identity }) => {
        const org = await identity.orgs.setRedirectOrigins(
          values.org ?? '',
          origins.filter((origin) => origin !== ''),
        );
        console.log(`Org ${org.id}: redirect origins ${org.redirectOrigins.length ? org.redirectOrigins.join(', ') : '(none)'}`);
      });
      return;
    }
    case 'org list':
      await withDatabase(config, async ({ identity }) => {
        const orgs = await identity.orgs.listOrgs();
        if (orgs.length === 0) console.log('No orgs yet: tranche org create --name N --audience A --issuer URL');
        for (const org of orgs) {
          console.log(
            `${org.id}  ${org.name}  ${org.idpIssuer ?? org.idpJwksUrl ?? ''}  audience=${org.idpAudience}${org.redirectOrigins.length ? `  redirect-origins=${org.redirectOrigins.join(',')}` : ''}  created ${org.createdAt.toISOString()}`,
          );
        }
      });
      return;
    case 'api-key list':
      await withDatabase(config, async ({ identity }) => {
        const keys = await identity.orgs.listApiKeys(values.org ?? '');
        if (keys.length === 0) console.log(`No API keys for org ${values.org}: tranche api-key create --org ${values.org}`);
        for (const key of keys) {
          const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
          console.log(`${key.id}  ${key.hint}  ${key.label ?? '-'}  created ${key.createdAt.toISOString()}  ${state}`);
        }
      });
      return;
    case 'api-key create':
      await withDatabase(config, async ({ identity }) => {
        const key = await identity.orgs.createApiKey(values.org ?? '', values.label);
        console.log(`API key ${key.id} for org ${key.orgId} (store it now; it is not shown again):\n${key.key}`);
      });
      return;
    case 'api-key revoke':
      await withDatabase(config, async ({ identity }) => {
        await identity.orgs.revokeApiKey(values.id ?? '');
        console.log(`Revoked API key ${values.id}.`);
      });
      return;
    case 'admin-key create':
      await withDatabase(config, async ({ identity }) => {
        const key = await identity.orgs.createAdminKey(values.label);
        console.log(`Platform admin key ${key.id} (send as X-Admin-Key; store it now, it is not shown again):\n${key.key}`);
      });
      return;
    case 'audit verify':
      await withDatabase(config, async ({ audit }) => {
        // Anchors kept outside the database (`audit anchor --out FILE`): one signature per line.
        const anchors = values.anchors
          ? fs
              .readFileSync(values.anchors, 'utf8')
              .split('\n')
              .map((line) => line.trim())
              .filter(Boolean)
          : [];
        const reports = await audit!.verify({ ...(values.org ? { orgId: values.org } : {}), anchors });
        if (reports.length === 0) console.log(values.org ? `No audit entries for org ${values.org}.` : 'No audit entries yet.');
        for (const report of reports) {
          const anchored = report.anchoredSeq > 0 ? `, anchored at ${report.anchoredSeq}` : ', no anchor yet';
          console.log(
            report.ok
              ? `ok      ${report.chainId}  ${report.entries} entries${anchored}`
              : `BROKEN  ${report.chainId}  at entry ${report.broken!.seq}${report.broken!.entryId ? ` (${report.broken!.entryId})` : ''}: ${report.broken!.reason}`,
          );
        }
        if (reports.some((report) => !report.ok)) process.exitCode = 1;
      });
      return;
    case 'audit anchor':
      await withDatabase(config, async ({ audit }) => {
        const made = await audit!.anchor();
        if (made.length === 0) console.log('Every audit chain is anchored at its head already.');
        for (const anchor of made) console.log(`anchored ${anchor.chainId} at ${anchor.seq} (${anchor.headHash})`);
        // Kept where the database's operators cannot write, these catch deleted anchors and chains.
        if (values.out && made.length > 0) {
          fs.appendFileSync(values.out, made.map((anchor) => `${anchor.signature}\n`).join(''));
          console.log(`Appended ${made.length} signed anchor(s) to ${values.out}: pass it to audit verify --anchors.`);
        }
      });
      return;
    case 'totals check':
      await withDatabase(config, async ({ issuance }) => {
        const drift = await issuance!.totals.check();
        for (const row of drift) console.log(`differs  ${describeDrift(row)}`);
        if (drift.length === 0) {
          console.log('Every running total matches the subscriptions.');
          return;
        }
        console.log(`${drift.length} row(s) differ from the subscriptions: tranche totals repair recomputes them.`);
        process.exitCode = 1;
      });
      return;
    case 'totals repair':
      await withDatabase(config, async ({ issuance }) => {
        const repaired = await issuance!.totals.repair();
        for (const row of repaired) console.log(`repaired  ${describeDrift(row)}`);
        console.log(
          repaired.length === 0
            ? 'Nothing to repair: every running total matches the subscriptions.'
            : `Repaired ${repaired.length} row(s) of ${new Set(repaired.map((row) => row.offeringId)).size} offering(s) (recorded in the audit log).`,
        );
      });
      return;
    case 'ocf export':
      await withDatabase(config, async ({ issuance }) => {
        const issuerId = values.issuer ?? '';
        if (!/^[0-9a-f-]{36}$/i.test(issuerId)) throw new UsageError('--issuer must be an issuer id (UUID)');
        const pkg = await issuance!.ocf.export(issuerId, undefined, {
          formationDate: values['formation-date'],
          countryOfFormation: values.country,
        });
        const out = path.resolve(values.out ?? `ocf-${issuerId}.zip`);
        fs.writeFileSync(out, pkg.zip);
        console.log(`Wrote ${out}: ${Object.keys(pkg.files).join(', ')} (each validated against the OCF schemas).`);
      });
      return;
    case 'keyserver admin-signer create': {
      await withDatabase(config, async ({ keyserver }) => {
        const signer = Keypair.random();
        await keyserver.accounts.addAdminSigner(signer.publicKey());
        console.log(`Key server admin signer ${signer.publicKey()} added to the master account.`);
        console.log(`Its secret seed (sign admin requests with it; store it now, it is not shown again):\n${signer.secret()}`);
      });
      return;
    }
    case 'keys rotate': {
      const keyring = deploymentKeyring(config);
      if (keyring.source === 'file') console.log(`New active master key ${addMasterKeyToFile(config.dataDir)} in ${config.dataDir}.`);
      else console.log(`Re-wrapping under ${keyring.activeKeyId}, the first key of MASTER_KEYS.`);
      await withDatabase(config, async ({ database, identity, keyring: rotated }) => {
        const counts = await database.db.transaction(async (tx) => ({
          ...(await identity.rewrap(tx)),
          idempotencyResponses: await rewrapIdempotencyResponses(tx, rotated),
          ...(await rewrapKeyserverRows(tx, rotated)),
          mailOutbox: await rewrapRows(tx, rotated, 'mail_outbox'),
          webhookSecrets: await rewrapRows(tx, rotated, 'webhook_secrets'),
          subscriptionSigners: await rewrapSignatures(tx, rotated),
        }));
        console.log(
          `Re-wrapped: ${Object.entries(counts)
            .map(([what, count]) => `${count} ${what}`)
            .join(', ')}.`,
        );
      });
      return;
    }
    case 'demo': {
      // The demo org trusts our own demo IdP, at PUBLIC_URL (http:// in the quick start).
      const demoConfig = { ...config, demoIdp: true, allowInsecureHttp: config.allowInsecureHttp || config.publicUrl.startsWith('http:') };
      await withDatabase(demoConfig, async (context) => {
        console.log((await createDemo(context)).text);
        if (!config.demoIdp || (!config.allowInsecureHttp && config.publicUrl.startsWith('http:'))) {
          console.log(
            [
              '',
              'This server does not serve the demo IdP yet (it is on by default only on the embedded database).',
              `Start it with DEMO_IDP=true${config.publicUrl.startsWith('http:') ? ' ALLOW_INSECURE_HTTP=true' : ''} so the tokens above exchange:`,
              `  DEMO_IDP=true${config.publicUrl.startsWith('http:') ? ' ALLOW_INSECURE_HTTP=true' : ''} npm start`,
            ].join('\n'),
          );
        }
      });
      return;
    }
    default: {
      // A command group without its subcommand (`tranche totals`): name its subcommands.
      const subcommands = [...usage.matchAll(/^ {2}([a-z-]+(?: [a-z-]+)+?)(?= --| \[| {2}|$)/gm)]
        .map((match) => match[1]!)
        .filter((known) => known.startsWith(`${command} `));
      throw new UsageError(
        subcommands.length > 0 ? `"${command}" needs a subcommand: ${subcommands.join(', ')}.` : `Unknown command "${command}".`,
      );
    }
  }
}

class UsageError extends Error {}

/** Where the process meant to listen and connect, for naming them in a start-up error. */
function startupConfig(): { host: string; port: number; databaseUrl?: string } {
  try {
    return loadConfig();
  } catch {
    return { host: process.env.HOST ?? '?', port: Number(process.env.PORT ?? 3000) };
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (
    error instanceof ConfigError ||
    error instanceof DataDirLockedError ||
    error instanceof UsageError ||
    error instanceof KeyringError ||
    error instanceof KeyMismatchError
  ) {
    console.error(error.message);
    if (error instanceof UsageError) console.error(`\n${usage}`);
  } else if (error instanceof AppError) {
    console.error(`${error.code}: ${error.message}`);
  } else {
    const config = startupConfig();
    console.error(describeStartupError(error, config) ?? error);
  }
  process.exit(1);
});
