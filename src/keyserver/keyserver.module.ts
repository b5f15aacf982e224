import { auditWriter, type AuditWriter } from '../platform/audit/audit.service.ts';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Clock } from '../platform/clock.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { Db } from '../platform/db/database.ts';
import { windowCounters } from '../platform/http/limits.ts';
import { postgresRateLimitStore, rateLimitCounters } from '../platform/http/rate-limit-store.ts';
import type { Mailer } from '../platform/mail/mailer.ts';
import type { ObjectStorage } from '../platform/storage/storage.ts';
import { accountsRoutes } from './accounts/accounts.routes.ts';
import { createAccountsService } from './accounts/accounts.service.ts';
import { blobsRoutes } from './blobs/blobs.routes.ts';
import { documentsRoutes } from './documents/documents.routes.ts';
import { identitiesRoutes } from './identities/identities.routes.ts';
import { createIdentitiesService } from './identities/identities.service.ts';
import { invitesRoutes } from './invites/invites.routes.ts';
import { createInvitesService } from './invites/invites.service.ts';
import { tooManyRequests, useJsonApi } from './jsonapi.ts';
import { createTfa } from './wallets/tfa.ts';
import { verifyPageRoutes } from './wallets/verify-page.routes.ts';
import { walletsRoutes } from './wallets/wallets.routes.ts';
import { createWalletsService } from './wallets/wallets.service.ts';

export type KeyserverDeps = {
  db: Db;
  keyring: Keyring;
  clock: Clock;
  mailer: Mailer;
  storage: ObjectStorage;
  config: Config;
  /** Where consequential changes are recorded; default a writer on `db`. */
  audit?: AuditWriter;
};

/** The TokenD-compatible Identity Storage, served at the server root (DESIGN.md §7). */
export function createKeyserver(deps: KeyserverDeps) {
  const { db, keyring, clock, mailer, config } = deps;
  const settings = config.keyserver;
  const accounts = createAccountsService({
    db,
    clock,
    networkPassphrase: settings.networkPassphrase,
    kycRecoverySignerRole: settings.kycRecoverySignerRole,
    signatureSkewSeconds: settings.signatureSkewSeconds,
    strictSignatures: settings.strictSignatures,
  });
  const counters = windowCounters(db, keyring, 'keyserver');
  /**
   * Every verification link and code mail counts against its recipient, so nobody can flood an
   * address through KYC recovery, second-factor challenges or resent verifications.
   */
  const limitedMailer: Mailer = {
    async queue(mail, tx) {
      const { count, retryAfterSeconds } = await counters.add(`mail:${mail.to.toLowerCase()}`, 1, 3600_000, tx);
      if (count > settings.mailsPerAddressPerHour) throw tooManyRequests(`Too many mails to this address; retry in ${retryAfterSeconds} s`);
      await mailer.queue(mail, tx);
    },
  };
  const identities = createIdentitiesService({ db, accounts, keyring });
  const invites = createInvitesService({ db, keyring, mailer, counters, perAccountPerDay: settings.invitesPerAccountPerDay });
  const tfa = createTfa({ db, keyring, clock, mailer: limitedMailer, totpIssuer: settings.totpIssuer });
  const wallets = createWalletsService({
    db,
    keyring,
    clock,
    mailer: limitedMailer,
    accounts,
    identities,
    invites,
    tfa,
    emailVerification: settings.emailVerification,
    clientUrl: settings.clientUrl,
    defaultSignerRole: settings.defaultSignerRole,
    kycRecoverySignerRole: settings.kycRecoverySignerRole,
    sessionTtlSeconds: settings.sessionTtlSeconds,
    audit: deps.audit ?? auditWriter(db, keyring),
  });

  async function routes(app: FastifyInstance) {
    useJsonApi(app);
    const rateLimitCounter = rateLimitCounters(db, keyring, 'keyserver');
    await app.register(rateLimit, {
      global: false,
      store: postgresRateLimitStore(rateLimitCounter),
      errorResponseBuilder: (_request, context) => tooManyRequests(`Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s`),
    });
    const common = { db, accounts };
    await accountsRoutes(app, {
      ...common,
      clock,
      networkPassphrase: settings.networkPassphrase,
      defaultSignerRole: settings.defaultSignerRole,
      kycRecoverySignerRole: settings.kycRecoverySignerRole,
    });
    await walletsRoutes(app, {
      wallets,
      accounts,
      tfa,
      rateLimit: { max: settings.rateLimitPerMinute, timeWindow: 60_000 },
      counters: rateLimitCounter,
    });
    await app.register(verifyPageRoutes, { wallets });
    await blobsRoutes(app, { ...common, keyring });
    await documentsRoutes(app, { ...common, storage: deps.storage });
    await identitiesRoutes(app, { identities, accounts, wallets });
    await invitesRoutes(app, {
      invites,
      accounts,
      limits: { perRequest: settings.invitesPerRequest },
    });
  }

  return { accounts, wallets, identities, routes };
}

export type Keyserver = ReturnType<typeof createKeyserver>;
