import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import { ping, type Db, type Executor } from '../platform/db/database.ts';
import { registerServiceInfo } from '../platform/http/service-info.ts';
import { authRepo } from './auth/auth.repo.ts';
import { authRoutes } from './auth/auth.routes.ts';
import { authService } from './auth/auth.service.ts';
import { idpVerifier } from './auth/idp.ts';
import { rewrapSigningKeys, signingKeyStore } from './auth/signing-keys.ts';
import { demoIdp } from './demo-idp/demo-idp.ts';
import { orgsRepo } from './orgs/orgs.repo.ts';
import { orgsService } from './orgs/orgs.service.ts';
import { piiRepo } from './pii/pii.repo.ts';
import { piiRoutes } from './pii/pii.routes.ts';
import { piiService, rewrapPii } from './pii/pii.service.ts';
import { usersRepo } from './users/users.repo.ts';
import { usersRoutes } from './users/users.routes.ts';
import { usersService } from './users/users.service.ts';

export type IdentityDeps = {
  db: Db;
  keyring: Keyring;
  config: Pick<
    Config,
    | 'publicUrl'
    | 'accessTokenTtlSeconds'
    | 'refreshTokenTtlSeconds'
    | 'exchangeRateLimitPerMinute'
    | 'allowInsecureHttp'
    | 'demoIdp'
    | 'jwksRefetchCooldownSeconds'
  >;
  version: string;
};

/** Wires the identity module: its services (for the CLI and other modules) and its routes. */
export function createIdentity(deps: IdentityDeps) {
  const { db, keyring, config } = deps;
  const issuer = `${config.publicUrl}/identity`;
  const keys = signingKeyStore({ db, keyring });
  const orgs = orgsService({ repo: orgsRepo(db), keyring, allowInsecureHttp: config.allowInsecureHttp });
  const users = usersService({ repo: usersRepo(db) });
  const pii = piiService({ repo: piiRepo(db), users, keyring });
  const auth = authService({
    db,
    repo: authRepo(db),
    orgs,
    users,
    idp: idpVerifier({ ownIssuer: issuer, jwksRefetchCooldownSeconds: config.jwksRefetchCooldownSeconds }),
    keys,
    keyring,
    eligibilityClaims: async () => ({ kycCompleted: false, accredited: false, accreditationVerified: false }),
    issuer,
    accessTokenTtlSeconds: config.accessTokenTtlSeconds,
    refreshTokenTtlSeconds: config.refreshTokenTtlSeconds,
  });
  const demo = demoIdp({ keys, publicUrl: config.publicUrl });

  async function routes(app: FastifyInstance) {
    registerServiceInfo(app, {
      name: 'identity',
      description: 'Token exchange, users, encrypted PII, KYC and accreditation',
      version: deps.version,
      checkDatabase: () => ping(db),
    });
    await app.register(authRoutes, { auth, db, exchangeRateLimitPerMinute: config.exchangeRateLimitPerMinute });
    await app.register(usersRoutes, { users });
    await app.register(piiRoutes, { pii });
  }

  return {
    orgs,
    users,
    pii,
    auth,
    demo,
    routes,
    demoRoutes: config.demoIdp ? demo.routes.bind(demo) : undefined,
    authenticators: { bearer: (token: string) => auth.verifyAccessToken(token), apiKey: (key: string) => orgs.authenticateApiKey(key) },
    /** Re-wraps identity's sealed data under the active master key. */
    async rewrap(tx: Executor) {
      return { pii: await rewrapPii(piiRepo(db), keyring, tx), signingKeys: await rewrapSigningKeys(tx, keyring) };
    },
  };
}

export type Identity = ReturnType<typeof createIdentity>;
