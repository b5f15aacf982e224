import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { UserPrincipal } from '../../platform/auth/principal.ts';
import { keyedHash } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import { randomBase62 } from '../../platform/crypto/random.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { OrgsService } from '../orgs/orgs.service.ts';
import type { UserRow } from '../users/users.repo.ts';
import type { UsersService } from '../users/users.service.ts';
import type { AuthRepo } from './auth.repo.ts';
import { IdTokenRejected, type IdpVerifier } from './idp.ts';
import { AppError } from '../../platform/http/errors.ts';
import type { SigningKeyStore } from './signing-keys.ts';

export const ACCESS_TOKEN_AUDIENCE = 'tranche';
const ACCESS_TOKEN_TYPE = 'at+jwt';

/** OAuth2-style failure: `{ error, error_description }` with its HTTP status. */
export class OAuthError extends Error {
  constructor(
    readonly statusCode: number,
    readonly error: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'rate_limited' | 'server_error',
    readonly description: string,
  ) {
    super(description);
  }
}

export type TokenResponse = {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  scope: string;
};

export type EligibilityClaims = { kycCompleted: boolean; accredited: boolean; accreditationVerified: boolean };

export type AuthDeps = {
  db: Db;
  repo: AuthRepo;
  orgs: Pick<OrgsService, 'authenticateApiKey' | 'getOrg'>;
  users: Pick<UsersService, 'upsertFromIdentity' | 'findById'>;
  idp: IdpVerifier;
  keys: SigningKeyStore;
  keyring: Keyring;
  /** Live KYC and accreditation state for the token's hint claims. */
  eligibilityClaims: (user: UserRow) => Promise<EligibilityClaims>;
  issuer: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
};

export function authService(deps: AuthDeps) {
  const { db, repo, keys, keyring } = deps;

  async function signAccessToken(user: UserRow, orgName: string): Promise<string> {
    const eligibility = await deps.eligibilityClaims(user);
    const { kid, privateKey } = await keys.activeKey('access_token');
    return new SignJWT({
      user_id: user.id,
      org_id: user.orgId,
      org_name: orgName,
      email: user.email,
      role: user.role,
      kyc_completed: eligibility.kycCompleted,
      accredited: eligibility.accredited,
      accreditation_verified: eligibility.accreditationVerified,
      onboarding_completed: user.onboardingCompleted,
    })
      .setProtectedHeader({ alg: 'RS256', kid, typ: ACCESS_TOKEN_TYPE })
      .setIssuer(deps.issuer)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setSubject(user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${deps.accessTokenTtlSeconds}s`)
      .sign(privateKey);
  }

  async function storeRefreshToken(owner: { userId: string; orgId: string }, familyId: string, tx: Executor): Promise<string> {
    const refreshToken = `rt_${randomBase62(48)}`;
    await repo.insertRefreshToken(
      {
        familyId,
        userId: owner.userId,
        orgId: owner.orgId,
        digest: keyedHash(keyring, 'refresh-token', refreshToken),
        expiresAt: new Date(Date.now() + deps.refreshTokenTtlSeconds * 1000),
      },
      tx,
    );
    return refreshToken;
  }

  function tokenResponse(accessToken: string, refreshToken: string, user: UserRow): TokenResponse {
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: deps.accessTokenTtlSeconds,
      refresh_token: refreshToken,
      refresh_expires_in: deps.refreshTokenTtlSeconds,
      scope: user.role,
    };
  }

  return {
    async exchange(apiKey: string | undefined, idToken: string): Promise<TokenResponse> {
      if (!apiKey) throw new OAuthError(401, 'invalid_client', 'X-API-Key header is required');
      const client = await deps.orgs.authenticateApiKey(apiKey);
      if (!client) throw new OAuthError(401, 'invalid_client', 'API key is invalid or revoked');
      const org = await deps.orgs.getOrg(client.orgId);
      if (!org) throw new OAuthError(401, 'invalid_client', 'API key is invalid or revoked');
      let identity;
      try {
        identity = await deps.idp.verify(org, idToken);
      } catch (error) {
        if (error instanceof IdTokenRejected) throw new OAuthError(400, 'invalid_grant', error.message);
        throw error;
      }
      const user = await deps.users.upsertFromIdentity(org, identity);
      const refreshToken = await storeRefreshToken({ userId: user.id, orgId: user.orgId }, randomUUID(), db);
      return tokenResponse(await signAccessToken(user, org.name), refreshToken, user);
    },

    /**
     * The user an org's IdP vouches for in the console's sign-in (authorization code + PKCE): the
     * ID token verified as at exchange, and its nonce that of this sign-in. Creates the user on
     * first sign-in, as exchange does. Throws NOT_FOUND (org), UNAUTHORIZED (token refused).
     */
    async verifyConsoleSignIn(orgId: string, idToken: string, nonce: string): Promise<UserRow> {
      const org = await deps.orgs.getOrg(orgId);
      if (!org) throw new AppError('NOT_FOUND', 'org not found');
      let identity;
      try {
        identity = await deps.idp.verify(org, idToken);
      } catch (error) {
        if (error instanceof IdTokenRejected) throw new AppError('UNAUTHORIZED', `The IdP's ID token was refused: ${error.message}`);
        throw error;
      }
      if (identity.claims.nonce !== nonce) throw new AppError('UNAUTHORIZED', "The ID token's nonce is not this sign-in's");
      return deps.users.upsertFromIdentity(org, identity);
    },

    /**
     * Rotates a refresh token. A token presented twice means it leaked: the whole family is
     * revoked, so neither the thief nor the user can continue without a new exchange.
     */
    async refresh(refreshToken: string): Promise<TokenResponse> {
      const digest = keyedHash(keyring, 'refresh-token', refreshToken);
      const outcome = await db.transaction(async (tx) => {
        const row = await repo.lockRefreshToken(digest, tx);
        if (!row || row.revokedAt) return { ok: false as const, reason: 'refresh token is invalid or revoked' };
        if (row.usedAt) {
          await repo.revokeFamily(row.familyId, tx);
          return { ok: false as const, reason: 'refresh token was already used; the session has been revoked' };
        }
        if (row.expiresAt.getTime() <= Date.now()) return { ok: false as const, reason: 'refresh token has expired' };
        await repo.markUsed(row.id, tx);
        return { ok: true as const, userId: row.userId, refreshToken: await storeRefreshToken(row, row.familyId, tx) };
      });
      if (!outcome.ok) throw new OAuthError(400, 'invalid_grant', outcome.reason);
      const user = await deps.users.findById(outcome.userId);
      const org = user ? await deps.orgs.getOrg(user.orgId) : undefined;
      if (!user || !org) throw new OAuthError(400, 'invalid_grant', 'refresh token is invalid or revoked');
      return tokenResponse(await signAccessToken(user, org.name), outcome.refreshToken, user);
    },

    async verifyAccessToken(token: string): Promise<UserPrincipal | null> {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(
          token,
          async (header) => {
            const key = header.kid ? await keys.publicKey(header.kid, 'access_token') : undefined;
            if (!key) throw new IdTokenRejected('unknown key');
            return key;
          },
          { issuer: deps.issuer, audience: ACCESS_TOKEN_AUDIENCE, algorithms: ['RS256'], typ: ACCESS_TOKEN_TYPE },
        ));
      } catch {
        return null;
      }
      const { user_id: userId, org_id: orgId } = payload;
      if (typeof userId !== 'string' || typeof orgId !== 'string') return null;
      // The role and email are read live, not from the token: a demoted admin loses the role at
      // once, a deleted user every access, without waiting for the token to expire.
      const user = await deps.users.findById(userId);
      if (!user || user.orgId !== orgId) return null;
      return { kind: 'user', userId, orgId, role: user.role, email: user.email };
    },

    jwks: () => keys.jwks('access_token'),

    /** The active API key `key` is, or null; for per-key rate limits that must not trust the value sent. */
    apiKeyClient: (key: string) => deps.orgs.authenticateApiKey(key),
  };
}

export type AuthService = ReturnType<typeof authService>;
