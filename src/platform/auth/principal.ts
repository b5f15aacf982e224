import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { AppError } from '../http/errors.ts';

export type Role = 'user' | 'org_admin';

/** A person signed in through token exchange, calling with our access token. */
export type UserPrincipal = { kind: 'user'; orgId: string; userId: string; role: Role; email: string };
/**
 * An integrator's backend calling with its org API key; or platform staff in the console acting for
 * an org, with the same rights (then `apiKeyId` is `admin_key:<admin key id>`).
 */
export type ApiKeyPrincipal = { kind: 'api_key'; orgId: string; apiKeyId: string };
export type Principal = UserPrincipal | ApiKeyPrincipal;

export type AuthMethod = 'bearer' | 'api_key';

/** How credentials are checked; identity provides it, the platform only calls it. */
export type Authenticators = {
  bearer(token: string): Promise<UserPrincipal | null>;
  apiKey(key: string): Promise<ApiKeyPrincipal | null>;
};

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** Set by the back-office routes' authentication (an org_admin or a platform admin key). */
    reviewer: Reviewer | null;
  }
  interface FastifyInstance {
    /** An onRequest hook admitting requests that present one of `methods`. */
    authenticate(methods: AuthMethod[]): onRequestHookHandler;
  }
}

export function requireUser(request: FastifyRequest): UserPrincipal {
  const principal = request.principal;
  if (principal?.kind !== 'user') throw new AppError('UNAUTHORIZED', 'A Bearer access token is required');
  return principal;
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new AppError('UNAUTHORIZED', 'Authentication required');
  return request.principal;
}

/** Who performs a back-office review: an org_admin (their org only) or a platform admin (any org). */
/**
 * Who reviews: an org admin (their org only) or a platform admin (every org, or the one org named
 * by `X-Tranche-Org`, as the console's org picker sends it: `orgId`).
 */
export type Reviewer =
  { kind: 'org_admin'; orgId: string; userId: string } | { kind: 'platform_admin'; adminKeyId: string; orgId?: string };

/** The org a reviewer is confined to; undefined for a platform admin working across orgs. */
export const reviewerOrg = (reviewer: Reviewer): string | undefined => reviewer.orgId;
export const reviewerLabel = (reviewer: Reviewer): string =>
  reviewer.kind === 'org_admin' ? `user:${reviewer.userId}` : `admin_key:${reviewer.adminKeyId}`;

/**
 * Four eyes: an org_admin never reviews a record about themselves (their own KYC, accreditation
 * or subscription); another admin or a platform admin must. Throws FORBIDDEN.
 */
export function assertNotOwnReview(reviewer: Reviewer, subjectUserId: string, what: string): void {
  if (reviewer.kind === 'org_admin' && reviewer.userId === subjectUserId)
    throw new AppError('FORBIDDEN', `Nobody reviews their own ${what}: another org_admin or a platform admin must`);
}
