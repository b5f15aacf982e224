import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { SignJWT } from 'jose';
import { z } from 'zod';
import type { SigningKeyStore } from '../auth/signing-keys.ts';

export const DEMO_AUDIENCE = 'tranche-demo';
export const demoIssuer = (publicUrl: string) => `${publicUrl}/demo-idp`;

/**
 * A stand-in OIDC provider for local development: discovery, JWKS and a token endpoint that signs
 * an ID token for any email. Only orgs registered with its issuer trust it, and it is off unless
 * DEMO_IDP is on (the default only for the embedded database).
 */
export function demoIdp(deps: { keys: SigningKeyStore; publicUrl: string }) {
  const issuer = demoIssuer(deps.publicUrl);
  return {
    issuer,
    async mintIdToken(email: string, ttlSeconds = 3600): Promise<string> {
      const { kid, privateKey } = await deps.keys.activeKey('demo_idp');
      return new SignJWT({ email, email_verified: true, nonce: randomUUID() })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(DEMO_AUDIENCE)
        .setSubject(`demo|${email}`)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .sign(privateKey);
    },
    async routes(app: FastifyInstance) {
      const routes = app.withTypeProvider<ZodTypeProvider>();
      const tags = ['demo-idp'];
      routes.get('/.well-known/openid-configuration', { schema: { tags, summary: 'Demo IdP discovery' } }, async () => ({
        issuer,
        jwks_uri: `${issuer}/jwks.json`,
        token_endpoint: `${issuer}/token`,
        id_token_signing_alg_values_supported: ['RS256'],
        subject_types_supported: ['public'],
        response_types_supported: ['id_token'],
      }));
      routes.get('/jwks.json', { schema: { tags, summary: 'Demo IdP keys' } }, async () => deps.keys.jwks('demo_idp'));
      routes.post(
        '/token',
        {
          config: { idempotent: false },
          schema: {
            tags,
            summary: 'Sign a demo ID token for an email (development only)',
            body: z.strictObject({ email: z.email() }),
            response: { 200: z.object({ id_token: z.string(), token_type: z.literal('Bearer'), expires_in: z.number() }) },
          },
        },
        async (request) => ({ id_token: await this.mintIdToken(request.body.email), token_type: 'Bearer' as const, expires_in: 3600 }),
      );
    },
  };
}

export type DemoIdp = ReturnType<typeof demoIdp>;
