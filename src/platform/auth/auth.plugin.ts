import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../http/errors.ts';
import type { GuessLimiter } from '../http/limits.ts';
import { CONSOLE_ORG_HEADER, consoleReviewer, type ConsoleAuthenticator } from './console-session.ts';
import type { Authenticators, AuthMethod, Principal } from './principal.ts';

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new AppError('UNAUTHORIZED', 'Authorization header must be "Bearer <access_token>"');
  return match[1];
}

function apiKeyHeader(request: FastifyRequest): string | undefined {
  const value = request.headers['x-api-key'];
  if (Array.isArray(value)) throw new AppError('UNAUTHORIZED', 'Send one X-API-Key header');
  return value;
}

/**
 * The principal of a console session on an org-level route: an org admin as themselves; platform
 * staff acting for the org named by `X-Tranche-Org`, with what the org's API key may do, and only
 * on routes that accept an API key.
 */
async function consolePrincipal(request: FastifyRequest, methods: AuthMethod[], console: ConsoleAuthenticator | undefined) {
  const reviewer = await consoleReviewer(request, console);
  if (!reviewer) return null;
  if (reviewer.kind === 'org_admin')
    return { kind: 'user', orgId: reviewer.orgId, userId: reviewer.userId, role: 'org_admin', email: reviewer.email ?? '' } as const;
  const orgId = request.headers[CONSOLE_ORG_HEADER];
  if (!methods.includes('api_key')) throw new AppError('FORBIDDEN', 'This route acts as a signed-in user; platform staff cannot call it');
  if (typeof orgId !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(orgId))
    throw new AppError('VALIDATION_ERROR', `Name the org with the ${CONSOLE_ORG_HEADER} header (a UUID)`, [
      { field: CONSOLE_ORG_HEADER, message: 'must be an org id' },
    ]);
  return { kind: 'api_key', orgId: orgId.toLowerCase(), apiKeyId: `admin_key:${reviewer.adminKeyId}` } as const;
}

/**
 * `guesses`: failed API keys count against the client address, which is refused once over its limit.
 * `console`: a console session cookie is accepted when the request carries no other credential.
 */
export const authPlugin = fp(
  async (app: FastifyInstance, authenticators: Authenticators & { guesses?: GuessLimiter; console?: ConsoleAuthenticator }) => {
    app.decorateRequest('principal', null);

    app.decorate('authenticate', (methods: AuthMethod[]) => async (request: FastifyRequest) => {
      let principal: Principal | null;
      const token = methods.includes('bearer') ? bearerToken(request) : undefined;
      const apiKey = methods.includes('api_key') ? apiKeyHeader(request) : undefined;
      if (token !== undefined) {
        principal = await authenticators.bearer(token);
        if (!principal) throw new AppError('UNAUTHORIZED', 'Access token is invalid or expired');
      } else if (apiKey !== undefined) {
        await authenticators.guesses?.assertAllowed(request.ip);
        principal = await authenticators.apiKey(apiKey);
        if (!principal) {
          await authenticators.guesses?.failed(request.ip);
          throw new AppError('UNAUTHORIZED', 'API key is invalid or revoked');
        }
      } else {
        principal = await consolePrincipal(request, methods, authenticators.console);
      }
      if (!principal) {
        const expected = methods.map((method) => (method === 'bearer' ? 'Authorization: Bearer' : 'X-API-Key')).join(' or ');
        throw new AppError('UNAUTHORIZED', `Authentication required: send ${expected}`);
      }
      request.principal = principal;
    });
  },
);
