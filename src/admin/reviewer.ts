import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Identity } from '../identity/identity.module.ts';
import { z } from 'zod';
import { CONSOLE_ORG_HEADER, consoleReviewer, type ConsoleAuthenticator } from '../platform/auth/console-session.ts';
import type { Reviewer } from '../platform/auth/principal.ts';
import { AppError } from '../platform/http/errors.ts';

/**
 * Back-office authentication: an org_admin (Bearer; their org only) or a platform admin
 * (`X-Admin-Key` from `tranche admin-key create`; every org), or either of them signed in to the
 * console (its session cookie, with the CSRF token on writes).
 */
export function reviewerAuth(
  app: FastifyInstance,
  identity: Pick<Identity, 'orgs' | 'auth' | 'guesses'> & { console?: ConsoleAuthenticator },
) {
  if (!app.hasRequestDecorator('reviewer')) app.decorateRequest('reviewer', null);
  return async (request: FastifyRequest) => {
    const adminKey = request.headers['x-admin-key'];
    if (typeof adminKey === 'string') {
      await identity.guesses.assertAllowed(request.ip);
      const admin = await identity.orgs.authenticateAdminKey(adminKey);
      if (!admin) {
        await identity.guesses.failed(request.ip);
        throw new AppError('UNAUTHORIZED', 'Admin key is invalid or revoked');
      }
      request.reviewer = { kind: 'platform_admin', adminKeyId: admin.adminKeyId, ...workingOrg(request) };
      return;
    }
    const header = request.headers.authorization;
    if (!header) {
      const signedIn = await consoleReviewer(request, identity.console);
      if (signedIn) {
        request.reviewer =
          signedIn.kind === 'org_admin'
            ? { kind: 'org_admin', orgId: signedIn.orgId, userId: signedIn.userId }
            : { kind: 'platform_admin', adminKeyId: signedIn.adminKeyId, ...workingOrg(request) };
        return;
      }
    }
    const token = header && /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token) throw new AppError('UNAUTHORIZED', 'Send Authorization: Bearer (an org_admin) or X-Admin-Key');
    const principal = await identity.auth.verifyAccessToken(token);
    if (!principal) throw new AppError('UNAUTHORIZED', 'Access token is invalid or expired');
    if (principal.role !== 'org_admin') throw new AppError('FORBIDDEN', 'This needs an org_admin or a platform admin key');
    request.reviewer = { kind: 'org_admin', orgId: principal.orgId, userId: principal.userId };
  };
}

export const requireReviewer = (request: FastifyRequest): Reviewer => request.reviewer!;

/**
 * A platform admin's working org: `X-Tranche-Org` (the console's org picker) narrows every read
 * and action of the back office to that org. Throws VALIDATION_ERROR when it is not an org id.
 */
function workingOrg(request: FastifyRequest): { orgId?: string } {
  const header = request.headers[CONSOLE_ORG_HEADER];
  if (header === undefined || header === '') return {};
  if (typeof header !== 'string' || !z.uuid().safeParse(header).success)
    throw new AppError('VALIDATION_ERROR', `${CONSOLE_ORG_HEADER} must be an org id (UUID)`, [
      { field: CONSOLE_ORG_HEADER, message: 'must be a UUID' },
    ]);
  return { orgId: header };
}
export const adminSecurity: Record<string, string[]>[] = [{ bearer: [] }, { adminKey: [] }];
