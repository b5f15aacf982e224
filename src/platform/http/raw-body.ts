import type { FastifyInstance } from 'fastify';

/**
 * In this (encapsulated) scope, JSON bodies arrive as the exact bytes received: signatures from
 * providers (Stripe, KYC vendors) are computed over the raw body, not a re-serialised one.
 */
export function receiveRawJson(scope: FastifyInstance): void {
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
}
