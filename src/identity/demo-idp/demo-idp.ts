import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { AppError } from '../../platform/http/errors.ts';
import type { SigningKeyStore } from '../auth/signing-keys.ts';

export const DEMO_AUDIENCE = 'tranche-demo';
export const demoIssuer = (publicUrl: string) => `${publicUrl}/demo-idp`;

/** How long an authorization code of the demo IdP is good for. */
const CODE_TTL_SECONDS = 120;
const CODE_TYPE = 'demo-idp-code+jwt';

const authorizeQuery = z.object({
  response_type: z.literal('code'),
  client_id: z.string().min(1).max(200),
  redirect_uri: z.url().max(2000),
  state: z.string().min(1).max(500),
  nonce: z.string().max(500).optional(),
  code_challenge: z.string().regex(/^[\w-]{43,128}$/, 'must be a base64url S256 challenge'),
  code_challenge_method: z.literal('S256'),
  scope: z.string().max(500).optional(),
  login_hint: z.email().max(254).optional(),
});
const authorizeForm = authorizeQuery.extend({ email: z.email().max(254) });

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A stand-in OIDC provider for local development: discovery, JWKS, a token endpoint that signs
 * an ID token for any email, and the authorization code flow with PKCE (S256) behind a page that
 * asks only for an email, so the console's org-admin sign-in works out of the box. Codes are
 * signed, expire in two minutes and bind the client, redirect URI, challenge and nonce. Only orgs
 * registered with its issuer trust it, and it is off unless DEMO_IDP is on (the default only for
 * the embedded database).
 */
export function demoIdp(deps: { keys: SigningKeyStore; publicUrl: string }) {
  const issuer = demoIssuer(deps.publicUrl);
  /** An ID token for `email` (verified), for the demo audience unless another client asked. */
  async function mintIdToken(email: string, ttlSeconds = 3600, options: { audience?: string; nonce?: string } = {}): Promise<string> {
    const { kid, privateKey } = await deps.keys.activeKey('demo_idp');
    return new SignJWT({ email, email_verified: true, nonce: options.nonce ?? randomUUID() })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience(options.audience ?? DEMO_AUDIENCE)
      .setSubject(`demo|${email}`)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(privateKey);
  }
  return {
    issuer,
    mintIdToken,
    async routes(app: FastifyInstance) {
      const routes = app.withTypeProvider<ZodTypeProvider>();
      const tags = ['demo-idp'];
      routes.get('/.well-known/openid-configuration', { schema: { tags, summary: 'Demo IdP discovery' } }, async () => ({
        issuer,
        jwks_uri: `${issuer}/jwks.json`,
        token_endpoint: `${issuer}/token`,
        authorization_endpoint: `${issuer}/authorize`,
        id_token_signing_alg_values_supported: ['RS256'],
        subject_types_supported: ['public'],
        response_types_supported: ['code', 'id_token'],
        grant_types_supported: ['authorization_code'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none'],
      }));
      app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) =>
        done(null, Object.fromEntries(new URLSearchParams(body as string))),
      );
      routes.get(
        '/authorize',
        {
          schema: { tags, summary: 'Authorization code flow (PKCE S256): a page asking which email signs in', querystring: authorizeQuery },
        },
        async (request, reply) => {
          const q = request.query;
          const hidden = Object.entries(q)
            .filter(([name]) => name !== 'login_hint')
            .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(String(value))}">`)
            .join('');
          const email = escapeHtml(q.login_hint ?? 'demo.admin@example.com');
          return reply
            .type('text/html; charset=utf-8')
            .send(
              `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo identity provider</title></head><body><main><h1>Demo identity provider</h1><p>Development only: signs in any email, verified. <code>demo.admin@example.com</code> is the demo org's admin.</p><form method="post" action="${issuer}/authorize">${hidden}<label for="email">Email</label> <input id="email" name="email" type="email" required value="${email}"> <button type="submit">Sign in</button></form></main></body></html>`,
            );
        },
      );
      routes.post(
        '/authorize',
        { schema: { tags, summary: 'Issue an authorization code and redirect back to the client', body: authorizeForm } },
        async (request, reply) => {
          const form = request.body;
          const { kid, privateKey } = await deps.keys.activeKey('demo_idp');
          const code = await new SignJWT({
            email: form.email,
            redirect_uri: form.redirect_uri,
            code_challenge: form.code_challenge,
            ...(form.nonce ? { nonce: form.nonce } : {}),
          })
            .setProtectedHeader({ alg: 'RS256', kid, typ: CODE_TYPE })
            .setIssuer(issuer)
            .setAudience(form.client_id)
            .setIssuedAt()
            .setExpirationTime(`${CODE_TTL_SECONDS}s`)
            .sign(privateKey);
          const target = new URL(form.redirect_uri);
          target.searchParams.set('code', code);
          target.searchParams.set('state', form.state);
          return reply.redirect(target.toString(), 303);
        },
      );
      routes.get('/jwks.json', { schema: { tags, summary: 'Demo IdP keys' } }, async () => deps.keys.jwks('demo_idp'));
      routes.post(
        '/token',
        {
          config: { idempotent: false },
          schema: {
            tags,
            summary:
              'Sign a demo ID token for an email (JSON `{ email }`, development only), or redeem an authorization code (form: grant_type=authorization_code, code, redirect_uri, client_id, code_verifier)',
            body: z.union([
              z.strictObject({ email: z.email() }),
              z.strictObject({
                grant_type: z.literal('authorization_code'),
                code: z.string().min(1).max(4000),
                redirect_uri: z.string().max(2000),
                client_id: z.string().min(1).max(200),
                code_verifier: z.string().regex(/^[\w.~-]{43,128}$/, 'must be a PKCE code verifier'),
              }),
            ]),
            response: {
              200: z.object({ id_token: z.string(), token_type: z.literal('Bearer'), expires_in: z.number() }),
              400: z.object({ error: z.string(), error_description: z.string() }),
            },
          },
        },
        async (request, reply) => {
          const body = request.body;
          if ('email' in body) return { id_token: await mintIdToken(body.email), token_type: 'Bearer' as const, expires_in: 3600 };
          const refuse = (description: string) => reply.code(400).send({ error: 'invalid_grant', error_description: description });
          let claims;
          try {
            ({ payload: claims } = await jwtVerify(
              body.code,
              async (header) => {
                const key = header.kid ? await deps.keys.publicKey(header.kid, 'demo_idp') : undefined;
                if (!key) throw new AppError('VALIDATION_ERROR', 'unknown key');
                return key;
              },
              { issuer, audience: body.client_id, typ: CODE_TYPE, algorithms: ['RS256'] },
            ));
          } catch {
            return refuse('the code is invalid, expired or for another client');
          }
          if (claims.redirect_uri !== body.redirect_uri) return refuse('redirect_uri differs from the authorization request');
          const challenge = createHash('sha256').update(body.code_verifier).digest('base64url');
          if (claims.code_challenge !== challenge) return refuse('code_verifier does not match the code challenge');
          const idToken = await mintIdToken(String(claims.email), 3600, {
            audience: body.client_id,
            ...(typeof claims.nonce === 'string' ? { nonce: claims.nonce } : {}),
          });
          return { id_token: idToken, token_type: 'Bearer' as const, expires_in: 3600 };
        },
      );
    },
  };
}

export type DemoIdp = ReturnType<typeof demoIdp>;
