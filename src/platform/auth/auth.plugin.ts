import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../http/errors.ts';
import type { GuessLimiter } from '../http/limits.ts';
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

/** `guesses`: failed API keys count against the client address, which is refused once over its limit. */
export const authPlugin = fp(async (app: FastifyInstance, authenticators: Authenticators & { guesses?: GuessLimiter }) => {
  app.decorateRequest('principal', null);

  app.decorate('authenticate', (methods: AuthMethod[]) => async (request: FastifyRequest) => {
    let principal: Principal | null = null;
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
    }
    if (!principal) {
      const expected = methods.map((method) => (method === 'bearer' ? 'Authorization: Bearer' : 'X-API-Key')).join(' or ');
      throw new AppError('UNAUTHORIZED', `Authentication required: send ${expected}`);
    }
    request.principal = principal;
  });
});
