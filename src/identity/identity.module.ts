import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { auditWriter, type AuditWriter } from '../platform/audit/audit.service.ts';
import { keyedHash } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { ObjectStorage } from '../platform/storage/storage.ts';
import { ping, type Db, type Executor } from '../platform/db/database.ts';
import { guessLimiter, windowCounters } from '../platform/http/limits.ts';
import { registerServiceInfo } from '../platform/http/service-info.ts';
import { authRepo } from './auth/auth.repo.ts';
import { authRoutes } from './auth/auth.routes.ts';
import { authService } from './auth/auth.service.ts';
import { idpVerifier } from './auth/idp.ts';
import { anchorSigner, rewrapSigningKeys, signingKeyStore } from './auth/signing-keys.ts';
import { demoIdp } from './demo-idp/demo-idp.ts';
import { orgsRepo } from './orgs/orgs.repo.ts';
import { orgsService } from './orgs/orgs.service.ts';
import { accreditationRepo } from './accreditation/accreditation.repo.ts';
import { accreditationRoutes } from './accreditation/accreditation.routes.ts';
import { accreditationService, type AccreditationEligibility } from './accreditation/accreditation.service.ts';
import { kycRepo } from './kyc/kyc.repo.ts';
import { kycRoutes } from './kyc/kyc.routes.ts';
import { kycService, type KycService } from './kyc/kyc.service.ts';
import { sandboxProvider } from './kyc/sandbox.provider.ts';
import { piiRepo } from './pii/pii.repo.ts';
import { piiRoutes } from './pii/pii.routes.ts';
import { piiService, rewrapPii } from './pii/pii.service.ts';
import { rewrapUserEmails } from './at-rest.ts';
import { usersRepo } from './users/users.repo.ts';
import { usersRoutes } from './users/users.routes.ts';
import { usersService } from './users/users.service.ts';
import { consoleSessionsRepo } from './console/console-sessions.repo.ts';
import { consoleSessionsService } from './console/console-sessions.service.ts';
import type { ConsoleAuthenticator } from '../platform/auth/console-session.ts';
import { systemClock, type Clock } from '../platform/clock.ts';

/** How long a console sign-in lasts: a working day. */
export const CONSOLE_SESSION_TTL_SECONDS = 8 * 3600;

export type IdentityDeps = {
  db: Db;
  /** Where consequential changes are recorded; default a writer on `db`. */
  audit?: AuditWriter;
  keyring: Keyring;
  storage: ObjectStorage;
  config: Pick<
    Config,
    | 'publicUrl'
    | 'accessTokenTtlSeconds'
    | 'refreshTokenTtlSeconds'
    | 'exchangeRateLimitPerMinute'
    | 'authFailuresPerMinute'
    | 'allowInsecureHttp'
    | 'demoIdp'
    | 'jwksRefetchCooldownSeconds'
    | 'kycVerificationTtlHours'
    | 'kycSandboxAsyncDelayMs'
    | 'kycSandboxSubmitDelayMs'
    | 'inProgressLeaseSeconds'
    | 'accreditationValidityDays'
    | 'healthTimeoutMs'
  >;
  version: string;
  clock?: Clock;
};

/** Live KYC and accreditation state of a user, for issuance's eligibility checks. */
export type Eligibility = { kycStatus: Awaited<ReturnType<KycService['effective']>>['status']; accreditation: AccreditationEligibility };

const SANDBOX_CALLBACK_PATH = '/kyc/providers/sandbox/callback';

/** Wires the identity module: its services (for the CLI and other modules) and its routes. */
export function createIdentity(deps: IdentityDeps) {
  const { db, keyring, config } = deps;
  const issuer = `${config.publicUrl}/identity`;
  const keys = signingKeyStore({ db, keyring });
  const audit = deps.audit ?? auditWriter(db, keyring);
  const orgs = orgsService({ db, repo: orgsRepo(db), keyring, allowInsecureHttp: config.allowInsecureHttp, audit });
  const users = usersService({ db, repo: usersRepo(db, keyring), keyring, audit });
  const pii = piiService({ db, repo: piiRepo(db), users, keyring, audit });
  const sandbox = sandboxProvider({
    secret: Buffer.from(keyedHash(keyring, 'kyc-sandbox', 'callbacks'), 'hex'),
    scanBaseUrl: `${config.publicUrl}/identity/kyc/sandbox`,
    asyncDelayMs: config.kycSandboxAsyncDelayMs,
    submitDelayMs: config.kycSandboxSubmitDelayMs,
    deliverCallback: (headers, body) => kyc.handleProviderCallback(headers, body),
  });
  const kyc = kycService({
    db,
    audit,
    repo: kycRepo(db),
    pii,
    users,
    provider: sandbox,
    ttlHours: config.kycVerificationTtlHours,
    submitLeaseSeconds: config.inProgressLeaseSeconds,
  });
  const accreditation = accreditationService({
    db,
    audit,
    repo: accreditationRepo(db),
    storage: deps.storage,
    validityDays: config.accreditationValidityDays,
  });

  async function eligibility(orgId: string, userId: string): Promise<Eligibility> {
    const [kycState, accreditationState] = await Promise.all([kyc.effective(orgId, userId), accreditation.eligibility(orgId, userId)]);
    return { kycStatus: kycState.status, accreditation: accreditationState };
  }

  const auth = authService({
    db,
    repo: authRepo(db),
    orgs,
    users,
    idp: idpVerifier({ ownIssuer: issuer, jwksRefetchCooldownSeconds: config.jwksRefetchCooldownSeconds }),
    keys,
    keyring,
    eligibilityClaims: async (user) => {
      const state = await eligibility(user.orgId, user.id);
      return {
        kycCompleted: state.kycStatus === 'approved',
        accredited: state.accreditation.status === 'accredited' && state.accreditation.verified,
        accreditationVerified: state.accreditation.verified,
      };
    },
    issuer,
    accessTokenTtlSeconds: config.accessTokenTtlSeconds,
    refreshTokenTtlSeconds: config.refreshTokenTtlSeconds,
  });
  const demo = demoIdp({ keys, publicUrl: config.publicUrl });
  const consoleSessions = consoleSessionsService({
    repo: consoleSessionsRepo(db),
    orgs,
    keyring,
    clock: deps.clock ?? systemClock,
    ttlSeconds: CONSOLE_SESSION_TTL_SECONDS,
  });
  /** Console cookies, for the platform's auth hooks: an org admin's session holds only while they are still org_admin. */
  const consoleAuthenticator: ConsoleAuthenticator = {
    origin: new URL(config.publicUrl).origin,
    csrfTokenFor: consoleSessions.csrfTokenFor,
    async resolve(token) {
      const session = await consoleSessions.resolve(token);
      if (!session) return null;
      if (session.kind === 'platform_admin') return { kind: 'platform_admin', adminKeyId: session.adminKeyId };
      const user = await users.findById(session.userId);
      if (!user || user.orgId !== session.orgId || user.role !== 'org_admin') return null;
      return { kind: 'org_admin', orgId: session.orgId, userId: session.userId, email: user.email };
    },
  };
  /** Failed API-key and admin-key guesses per client address. */
  const guesses = guessLimiter(windowCounters(db, keyring, 'auth-failures'), config.authFailuresPerMinute);

  async function routes(app: FastifyInstance) {
    registerServiceInfo(app, {
      name: 'identity',
      description: 'Token exchange, users, encrypted PII, KYC and accreditation',
      version: deps.version,
      checkDatabase: () => ping(db),
      healthTimeoutMs: config.healthTimeoutMs,
    });
    await app.register(authRoutes, { auth, db, keyring, guesses, exchangeRateLimitPerMinute: config.exchangeRateLimitPerMinute });
    await app.register(usersRoutes, { users });
    await app.register(piiRoutes, { pii });
    await app.register(kycRoutes, { kyc, callbackPath: SANDBOX_CALLBACK_PATH });
    await app.register(sandbox.routes, { prefix: '/kyc/sandbox' });
    await app.register(accreditationRoutes, { accreditation });
  }

  return {
    orgs,
    users,
    pii,
    kyc,
    accreditation,
    eligibility,
    guesses,
    sandbox,
    auth,
    demo,
    /** Signs audit anchors with the platform's `audit_anchor` key (RS256, published nowhere but checked by `audit verify`). */
    anchorSigner: anchorSigner(keys),
    consoleSessions,
    console: consoleAuthenticator,
    routes,
    demoRoutes: config.demoIdp ? demo.routes.bind(demo) : undefined,
    authenticators: {
      bearer: (token: string) => auth.verifyAccessToken(token),
      apiKey: (key: string) => orgs.authenticateApiKey(key),
      console: consoleAuthenticator,
    },
    /** Re-wraps identity's sealed data under the active master key. */
    async rewrap(tx: Executor) {
      return {
        pii: await rewrapPii(piiRepo(db), keyring, tx),
        signingKeys: await rewrapSigningKeys(tx, keyring),
        userEmails: await rewrapUserEmails(tx, keyring),
      };
    },
  };
}

export type Identity = ReturnType<typeof createIdentity>;
