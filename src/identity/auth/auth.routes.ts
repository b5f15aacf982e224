import rateLimit from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db } from '../../platform/db/database.ts';
import { TooManyGuesses, type GuessLimiter } from '../../platform/http/limits.ts';
import { postgresRateLimitStore, rateLimitCounters } from '../../platform/http/rate-limit-store.ts';
import { DATABASE_RETRY_AFTER_SECONDS } from '../../platform/http/errors.ts';
import { classifyError, logFailure, sendError } from '../../platform/http/server.ts';
import { exchangeBody, jwksResponse, oauthError, refreshBody, tokenResponse } from './auth.schemas.ts';
import { OAuthError, type AuthService } from './auth.service.ts';

const oauthErrors = { 400: oauthError, 401: oauthError, 429: oauthError, 503: oauthError };

/** Token routes answer in OAuth2 style (`{ error, error_description }`), not the envelope. */
export async function authRoutes(
  app: FastifyInstance,
  options: { auth: AuthService; db: Db; keyring: Keyring; guesses: GuessLimiter; exchangeRateLimitPerMinute: number },
) {
  const { auth } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();

  await app.register(rateLimit, {
    global: false,
    store: postgresRateLimitStore(rateLimitCounters(options.db, options.keyring, 'auth')),
    errorResponseBuilder: (_request, context) =>
      new OAuthError(429, 'rate_limited', `Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s`),
  });

  app.setErrorHandler((error: FastifyError | OAuthError, request, reply) => {
    // Only the token routes answer OAuth-style; the JWKS is an ordinary read in our envelope.
    if (request.url.includes('/.well-known/')) return sendError(error, request, reply);
    if (error instanceof TooManyGuesses) {
      return reply
        .code(429)
        .header('retry-after', String(error.retryAfterSeconds))
        .send({ error: 'rate_limited', error_description: error.message });
    }
    if (error instanceof OAuthError) {
      return reply.code(error.statusCode).send({ error: error.error, error_description: error.description });
    }
    const { status, code, message } = classifyError(error);
    logFailure(request, error, code);
    if (code === 'DATABASE_UNAVAILABLE') {
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
      return reply.code(503).send({ error: 'temporarily_unavailable', error_description: message });
    }
    if (status >= 500) {
      return reply.code(500).send({ error: 'server_error', error_description: 'Internal server error' });
    }
    return reply.code(status === 413 || status === 415 ? status : 400).send({ error: 'invalid_request', error_description: message });
  });

  routes.post(
    '/auth/exchange',
    {
      config: {
        idempotent: false,
        rateLimit: {
          max: options.exchangeRateLimitPerMinute,
          timeWindow: 60_000,
          // Per API key only once the key is known to be valid; anything else shares the client
          // address's bucket, so inventing key values does not buy fresh buckets.
          keyGenerator: async (request) => {
            const key = request.headers['x-api-key'];
            const client = typeof key === 'string' ? await options.auth.apiKeyClient(key) : null;
            return client ? `key:${client.apiKeyId}` : `ip:${request.ip}`;
          },
        },
      },
      schema: {
        tags: ['identity'],
        summary: 'Exchange an IdP ID token for Tranche access and refresh tokens',
        security: [{ apiKey: [] }],
        body: exchangeBody,
        response: { 200: tokenResponse, ...oauthErrors },
      },
    },
    async (request) => {
      const apiKey = request.headers['x-api-key'];
      await options.guesses.assertAllowed(request.ip);
      try {
        return await auth.exchange(typeof apiKey === 'string' ? apiKey : undefined, request.body.token);
      } catch (error) {
        if (error instanceof OAuthError && error.error === 'invalid_client' && typeof apiKey === 'string')
          await options.guesses.failed(request.ip);
        throw error;
      }
    },
  );

  routes.post(
    '/auth/refresh',
    {
      config: {
        idempotent: false,
        rateLimit: { max: options.exchangeRateLimitPerMinute, timeWindow: 60_000, keyGenerator: (request) => `refresh:${request.ip}` },
      },
      schema: {
        tags: ['identity'],
        summary: 'Rotate a refresh token for a new access token',
        body: refreshBody,
        response: { 200: tokenResponse, ...oauthErrors },
      },
    },
    async (request) => auth.refresh(request.body.refreshToken),
  );

  routes.get(
    '/.well-known/jwks.json',
    { schema: { tags: ['identity'], summary: 'Public keys that sign Tranche access tokens', response: { 200: jwksResponse } } },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return auth.jwks();
    },
  );
}
