import fs from 'node:fs';
import type { Writable } from 'node:stream';
import type { Config } from './config.ts';
import { sealPlaintextIdentityRows } from './identity/at-rest.ts';
import { createIdentity, type Identity } from './identity/identity.module.ts';
import { auditRepo } from './platform/audit/audit.repo.ts';
import { auditService, type AuditService } from './platform/audit/audit.service.ts';
import { auditContextPlugin } from './platform/audit/context.ts';
import { authPlugin } from './platform/auth/auth.plugin.ts';
import type { Keyring } from './platform/crypto/keyring.ts';
import type { Database } from './platform/db/database.ts';
import { healthRoutes } from './platform/http/health.ts';
import { idempotencyPlugin } from './platform/http/idempotency.ts';
import { createServer } from './platform/http/server.ts';
import { createStorage, LOCAL_STORAGE_PREFIX, type StorageSetup } from './platform/storage/create-storage.ts';
import { adminRoutes } from './admin/admin.routes.ts';
import { auditRoutes } from './admin/audit-admin.routes.ts';
import { ledgerAdminRoutes } from './admin/ledger-admin.routes.ts';
import { mailAdminRoutes } from './admin/mail-admin.routes.ts';
import { consoleRoutes } from './admin/console.routes.ts';
import { consoleStatic } from './admin/console-static.ts';
import cookie from '@fastify/cookie';
import { sharesAdminRoutes, offeringsAdminRoutes, subscriptionsAdminRoutes } from './admin/offerings-admin.routes.ts';
import { createIssuance, type Issuance } from './issuance/issuance.module.ts';
import { STRIPE_DOUBLE_PREFIX } from './issuance/payments/stripe-double.ts';
import { sealPlaintextSignatures } from './issuance/subscriptions/signature-evidence.ts';
import { createNotifications, type Notifications } from './notifications/notifications.module.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { sealPlaintextKeyserverRows } from './keyserver/at-rest.ts';
import { createKeyserver, type Keyserver } from './keyserver/keyserver.module.ts';
import { sendJsonApiError } from './keyserver/jsonapi.ts';
import './openapi-components.ts';
import type { FastifyBaseLogger } from 'fastify';
import { createLogger } from './platform/observability/logging.ts';
import { createMetricsRegistry, databaseMetrics, jobMetrics, type JobMetrics, type Registry } from './platform/observability/metrics.ts';
import { createMailSender, mailQueue, sealPlaintextOutbox, smtpTransport, type MailSender, type Mailer } from './platform/mail/mailer.ts';

export const version: string = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

export type AppDeps = {
  config: Config;
  database: Database;
  keyring: Keyring;
  /** Where log lines go when no `log` is given (tests); default stdout. */
  logStream?: Writable;
  /** The process's logger; default one made from LOG_LEVEL and `logStream`. */
  log?: FastifyBaseLogger;
  clock?: Clock;
  /** The audit log every module writes to; default the real one (benchmarks pass one that records nothing). */
  audit?: AuditService;
};

export type Modules = {
  identity: Identity;
  notifications: Notifications;
  issuance: Issuance;
  keyserver: Keyserver;
  storage: StorageSetup;
  /** Queues mail in the caller's transaction (see `Mailer`). */
  mailer: Mailer;
  /** With SMTP_URL: sends the queued mail; run where the webhook worker runs (`serve --role all|worker`). */
  mailSender: MailSender | undefined;
  /** The audit log: every module writes through it; the back office and the CLI read and verify it. */
  audit: AuditService;
  /** One logger for the process: its HTTP servers and the webhook worker. */
  log: FastifyBaseLogger;
  /** One metrics registry for the process: whichever listener serves `/metrics` shows all of it. */
  metrics: Registry;
  jobs: JobMetrics;
};

/**
 * Seals the PII that releases before sealing at rest left in plaintext (key-server rows, the mail
 * outbox, users' emails, orgs' admin emails, signers' evidence); run after the migrations, before serving. Returns
 * how many rows of each table it sealed.
 */
export async function sealPlaintextRows(db: Database['db'], keyring: Keyring): Promise<Record<string, number>> {
  return {
    ...(await sealPlaintextKeyserverRows(db, keyring)),
    mail: await sealPlaintextOutbox(db, keyring),
    ...(await sealPlaintextIdentityRows(db, keyring)),
    subscriptions: await sealPlaintextSignatures(db, keyring),
  };
}

export function createModules(deps: AppDeps): Modules {
  const storage = createStorage(deps.config, deps.keyring);
  const clock = deps.clock ?? systemClock;
  const mailer = mailQueue(deps.keyring, clock, deps.config.smtpUrl !== undefined);
  // Anchors are signed with identity's key store; the signer is looked up on use, as identity itself writes to the log.
  const audit =
    deps.audit ??
    auditService({
      repo: auditRepo(deps.database.db),
      keyring: deps.keyring,
      signer: { sign: (payload) => identity.anchorSigner.sign(payload), verify: (jws) => identity.anchorSigner.verify(jws) },
    });
  const identity = createIdentity({
    db: deps.database.db,
    audit,
    keyring: deps.keyring,
    storage: storage.storage,
    config: deps.config,
    version,
    clock,
  });
  const log = deps.log ?? createLogger(deps.config.logLevel, deps.logStream);
  const metrics = createMetricsRegistry();
  databaseMetrics(metrics, deps.database, deps.config.healthTimeoutMs);
  const jobs = jobMetrics(metrics);
  return {
    storage,
    mailer,
    mailSender: deps.config.smtpUrl
      ? createMailSender({
          db: deps.database.db,
          keyring: deps.keyring,
          clock,
          log,
          transport: smtpTransport(deps.config.smtpUrl),
          from: deps.config.mailFrom,
          jobs,
        })
      : undefined,
    audit,
    identity,
    log,
    metrics,
    jobs,
    keyserver: createKeyserver({
      db: deps.database.db,
      audit,
      keyring: deps.keyring,
      clock,
      mailer,
      storage: storage.storage,
      config: deps.config,
    }),
    notifications: createNotifications({
      database: deps.database,
      audit,
      keyring: deps.keyring,
      clock,
      config: deps.config,
      version,
      metrics,
      log,
    }),
    issuance: createIssuance({
      db: deps.database.db,
      audit,
      storage: storage.storage,
      clock,
      keyring: deps.keyring,
      config: deps.config,
      eligibility: (orgId, userId) => identity.eligibility(orgId, userId),
      redirectOrigins: async (orgId) => (await identity.orgs.getOrg(orgId))?.redirectOrigins ?? [],
      legalNames: (orgId, userIds) => identity.pii.legalNames(orgId, userIds),
      version,
    }),
  };
}

/**
 * Periodic upkeep run by the process that runs the webhook worker (`serve --role all|worker`):
 * closing stale KYC verifications and expiring accreditations past their end date, with their
 * webhooks and audit entries (`kyc_sweep`, `accreditation_expiry` in the job metrics), every
 * `everyMs` (default: half of IN_PROGRESS_LEASE_SECONDS, between 1 s and 60 s). A failed run is
 * logged and retried at the next tick. Returns the function that stops it.
 */
export function startMaintenance(
  modules: Pick<Modules, 'identity' | 'jobs' | 'log'>,
  config: Pick<Config, 'inProgressLeaseSeconds'>,
  everyMs?: number,
) {
  const interval = everyMs ?? Math.min(60_000, Math.max(1_000, (config.inProgressLeaseSeconds * 1000) / 2));
  let running: Promise<unknown> | undefined;
  const tick = () => {
    if (running) return;
    running = modules.jobs
      .track('kyc_sweep', () => modules.identity.kyc.sweepStale())
      .then(() => modules.jobs.track('accreditation_expiry', () => modules.identity.accreditation.sweepExpired()))
      .catch((error: unknown) => modules.log.warn({ err: error }, 'maintenance sweep failed; retrying at the next tick'))
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, interval);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** Paths served in our envelope; the key server answers everything else at the root in JSON:API. */
const ENVELOPE_PREFIXES = [
  '/identity',
  '/notifications',
  '/issuance',
  '/primary-issuance',
  '/admin',
  '/demo-idp',
  LOCAL_STORAGE_PREFIX,
  '/docs',
  '/openapi.json',
  '/metrics',
];

const servedInEnvelope = (path: string) =>
  ENVELOPE_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}?`));

/** The HTTP server with every module mounted under its prefix. */
export async function buildApp(deps: AppDeps, modules: Modules = createModules(deps)) {
  const { config, database, keyring } = deps;
  const app = await createServer({
    logLevel: config.logLevel,
    logger: modules.log,
    metrics: { registry: modules.metrics, serve: config.metricsPort === undefined, token: config.metricsToken },
    bodyLimitBytes: config.bodyLimitBytes,
    publicUrl: config.publicUrl,
    version,
    corsOrigins: config.corsOrigins,
    trustProxy: config.trustProxy,
    errorSenderFor: (path) => (servedInEnvelope(path) ? undefined : sendJsonApiError),
  });
  await app.register(healthRoutes, { db: database.db, timeoutMs: config.healthTimeoutMs });
  await app.register(auditContextPlugin);
  await app.register(cookie);
  await app.register(authPlugin, { ...modules.identity.authenticators, guesses: modules.identity.guesses });
  await app.register(idempotencyPlugin, { db: database.db, keyring, leaseSeconds: config.inProgressLeaseSeconds, jobs: modules.jobs });
  await app.register(modules.identity.routes, { prefix: '/identity' });
  await app.register((scope) => modules.notifications.routes(scope), { prefix: '/notifications' });
  for (const prefix of ['/issuance', '/primary-issuance']) await app.register((scope) => modules.issuance.routes(scope), { prefix });
  await app.register(adminRoutes, { prefix: '/admin', identity: modules.identity });
  await app.register(offeringsAdminRoutes, { prefix: '/admin', identity: modules.identity, offerings: modules.issuance.offerings });
  await app.register(subscriptionsAdminRoutes, {
    prefix: '/admin',
    identity: modules.identity,
    subscriptions: modules.issuance.subscriptions,
  });
  await app.register(auditRoutes, { prefix: '/admin', identity: modules.identity, audit: modules.audit, tag: 'admin: audit' });
  await app.register(auditRoutes, { prefix: '/identity', identity: modules.identity, audit: modules.audit, tag: 'identity: audit' });
  await app.register(ledgerAdminRoutes, { prefix: '/admin', identity: modules.identity, issuance: modules.issuance });
  await app.register(mailAdminRoutes, { prefix: '/admin', identity: modules.identity, db: database.db, keyring });
  await app.register(sharesAdminRoutes, { prefix: '/admin', identity: modules.identity, issuance: modules.issuance });
  await app.register(consoleRoutes, { prefix: '/admin', identity: modules.identity, publicUrl: config.publicUrl });
  await app.register(consoleStatic, { prefix: '/console' });
  await app.register(modules.keyserver.routes);
  app.addHook('onClose', async () => {
    await modules.notifications.close();
    await modules.issuance.close();
  });
  if (modules.storage.routes) await app.register(modules.storage.routes, { prefix: LOCAL_STORAGE_PREFIX });
  if (modules.identity.demoRoutes) await app.register(modules.identity.demoRoutes, { prefix: '/demo-idp' });
  if (modules.issuance.stripeDouble) await app.register(modules.issuance.stripeDouble.routes, { prefix: STRIPE_DOUBLE_PREFIX });
  return app;
}

/** A server with no API routes: the process's logger and metrics, our error envelope, no docs. */
function bareServer(config: Config, modules: Modules, serveMetrics: boolean) {
  return createServer({
    logLevel: config.logLevel,
    logger: modules.log,
    metrics: { registry: modules.metrics, serve: serveMetrics, token: config.metricsToken },
    bodyLimitBytes: config.bodyLimitBytes,
    publicUrl: config.publicUrl,
    version,
    docs: false,
  });
}

/**
 * The `--role worker` HTTP server (WORKER_HTTP_PORT): `/health/live`, `/health/ready` (the
 * database answers, migrations current) and, unless METRICS_PORT moves it, `/metrics`.
 */
export async function buildWorkerApp(deps: Pick<AppDeps, 'config' | 'database'>, modules: Modules) {
  const app = await bareServer(deps.config, modules, deps.config.metricsPort === undefined);
  await app.register(healthRoutes, { db: deps.database.db, timeoutMs: deps.config.healthTimeoutMs });
  return app;
}

/** The METRICS_PORT listener: `/metrics` only (with METRICS_TOKEN when set). */
export function buildMetricsApp(config: Config, modules: Modules) {
  return bareServer(config, modules, true);
}
