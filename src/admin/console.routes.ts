import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import { CONSOLE_COOKIE, CONSOLE_COOKIE_SECURE, consoleToken } from '../platform/auth/console-session.ts';
import { CONSOLE_OIDC_FLOW_SECONDS } from '../identity/console/console-sessions.service.ts';
import { constantTimeEqual } from '../platform/crypto/compare.ts';
import { optionalBody } from '../platform/http/bodies.ts';
import { reviewerLabel } from '../platform/auth/principal.ts';
import { toSnake } from '../platform/http/case.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { AppError, errorResponses } from '../platform/http/errors.ts';
import { requireReviewer, reviewerAuth } from './reviewer.ts';

const sessionResponse = z.object({
  kind: z.enum(['platform_admin', 'org_admin']),
  org_id: z.uuid().nullable().describe('The org an org admin is confined to; null for platform staff'),
  user_id: z.uuid().nullable(),
  csrf_token: z.string().describe('Send it as X-CSRF-Token with every write made with the session cookie'),
  expires_at: z.date(),
});
/** How long the org's IdP may take to answer discovery or the token request. */
const IDP_TIMEOUT_MS = 10_000;

/** The endpoints an issuer's OpenID discovery document names; 503 when it does not answer usefully. */
async function discover(issuer: string): Promise<{ authorization_endpoint: string; token_endpoint: string }> {
  const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(IDP_TIMEOUT_MS),
  }).catch(() => undefined);
  const document = response?.ok ? ((await response.json().catch(() => undefined)) as Record<string, unknown> | undefined) : undefined;
  if (typeof document?.authorization_endpoint !== 'string' || typeof document.token_endpoint !== 'string')
    throw new AppError('SERVICE_UNAVAILABLE', "The org's IdP has no usable discovery document (authorization and token endpoints)");
  return { authorization_endpoint: document.authorization_endpoint, token_endpoint: document.token_endpoint };
}

const apiKeyResponse = z.object({
  id: z.uuid(),
  org_id: z.uuid(),
  hint: z.string(),
  label: z.string().nullable(),
  created_at: z.date(),
  revoked_at: z.date().nullable(),
});
const orgResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  idp_issuer: z.string().nullable(),
  idp_audience: z.string(),
  created_at: z.date(),
});

/**
 * Sign-in to the back-office console. A platform admin key is exchanged for a session cookie
 * (HttpOnly, SameSite=Strict, `__Host-` and Secure when PUBLIC_URL is https, expiring with the
 * session); the key itself never reaches browser storage. Every later console call is made with
 * the cookie through the same routes and services as the API.
 */
export async function consoleRoutes(app: FastifyInstance, options: { identity: Identity; publicUrl: string }) {
  const { identity } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const secure = options.publicUrl.startsWith('https:');
  const cookieName = secure ? CONSOLE_COOKIE_SECURE : CONSOLE_COOKIE;
  const common = { tags: ['admin: console'] };
  const onRequest = reviewerAuth(app, identity);

  const setCookie = (reply: FastifyReply, token: string, expiresAt: Date) =>
    reply.setCookie(cookieName, token, { httpOnly: true, sameSite: 'strict', secure, path: '/', expires: expiresAt });

  routes.post(
    '/console/session',
    {
      schema: {
        ...common,
        summary: 'Sign in to the console with a platform admin key (sets the session cookie)',
        body: z.strictObject({ adminKey: z.string().min(1).max(200) }),
        response: { 200: envelope(sessionResponse), ...errorResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      await identity.guesses.assertAllowed(request.ip);
      let signIn;
      try {
        signIn = await identity.consoleSessions.signInWithAdminKey(request.body.adminKey);
      } catch (error) {
        await identity.guesses.failed(request.ip);
        throw error;
      }
      setCookie(reply, signIn.token, signIn.session.expiresAt);
      request.log.info(
        { consoleSession: signIn.session.id, adminKeyId: 'adminKeyId' in signIn.session ? signIn.session.adminKeyId : undefined },
        'console sign-in',
      );
      return ok(
        toSnake({ kind: signIn.session.kind, orgId: null, userId: null, csrfToken: signIn.csrfToken, expiresAt: signIn.session.expiresAt }),
      );
    },
  );

  routes.get(
    '/console/session',
    {
      onRequest: requireCookie,
      schema: {
        ...common,
        summary: "The console session's owner and CSRF token",
        response: { 200: envelope(sessionResponse), ...errorResponses(401) },
      },
    },
    async (request) => {
      const token = consoleToken(request)!;
      const session = await identity.consoleSessions.resolve(token);
      if (!session) throw new AppError('UNAUTHORIZED', 'Not signed in');
      const reviewer = requireReviewer(request);
      return ok(
        toSnake({
          kind: session.kind,
          orgId: reviewer.kind === 'org_admin' ? reviewer.orgId : null,
          userId: reviewer.kind === 'org_admin' ? reviewer.userId : null,
          csrfToken: identity.consoleSessions.csrfTokenFor(token),
          expiresAt: session.expiresAt,
        }),
      );
    },
  );

  routes.delete(
    '/console/session',
    {
      onRequest: requireCookie,
      schema: {
        ...common,
        summary: 'Sign out (ends the session, clears the cookie)',
        response: { 204: z.null(), ...errorResponses(401, 403) },
      },
    },
    async (request, reply) => {
      await identity.consoleSessions.signOut(consoleToken(request)!);
      reply.clearCookie(cookieName, { path: '/', httpOnly: true, sameSite: 'strict', secure });
      return reply.code(204).send(null);
    },
  );

  routes.get(
    '/orgs',
    {
      onRequest,
      schema: {
        ...common,
        tags: ['admin: orgs'],
        security: [{ adminKey: [] }],
        summary: 'Every org (platform staff); an org admin sees their own',
        response: { 200: envelope(z.object({ items: z.array(orgResponse) })), ...errorResponses(401, 403) },
      },
    },
    async (request) => {
      const reviewer = requireReviewer(request);
      const orgs = await identity.orgs.listOrgs();
      const visible = reviewer.kind === 'org_admin' ? orgs.filter((org) => org.id === reviewer.orgId) : orgs;
      return ok({
        items: visible.map((org) =>
          toSnake({
            id: org.id,
            name: org.name,
            idpIssuer: org.idpIssuer ?? org.idpJwksUrl,
            idpAudience: org.idpAudience,
            createdAt: org.createdAt,
          }),
        ),
      });
    },
  );

  const platformOnly = (request: FastifyRequest) => {
    if (requireReviewer(request).kind !== 'platform_admin') throw new AppError('FORBIDDEN', 'API keys are managed by platform staff');
  };
  const orgParams = z.object({ id: z.uuid() });
  const orgsCommon = { tags: ['admin: orgs'], security: [{ adminKey: [] }] };

  routes.get(
    '/orgs/:id/api-keys',
    {
      onRequest,
      schema: {
        ...orgsCommon,
        summary: "An org's API keys (hints only, revoked ones too)",
        params: orgParams,
        response: { 200: envelope(z.object({ items: z.array(apiKeyResponse) })), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      platformOnly(request);
      return ok({ items: toSnake(await identity.orgs.listApiKeys(request.params.id)) });
    },
  );

  routes.post(
    '/orgs/:id/api-keys',
    {
      onRequest,
      schema: {
        ...orgsCommon,
        summary: 'Create an API key for an org: the key is in this answer only',
        params: orgParams,
        body: optionalBody(z.strictObject({ label: z.string().trim().min(1).max(200).optional() })),
        response: {
          201: envelope(z.object({ id: z.uuid(), org_id: z.uuid(), key: z.string(), hint: z.string() })),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      platformOnly(request);
      const created = await identity.orgs.createApiKey(request.params.id, request.body?.label);
      request.log.info({ apiKeyId: created.id, orgId: created.orgId, by: reviewerLabel(requireReviewer(request)) }, 'API key created');
      return reply.code(201).send(ok(toSnake(created)));
    },
  );

  routes.post(
    '/orgs/:id/api-keys/:keyId/revoke',
    {
      onRequest,
      schema: {
        ...orgsCommon,
        summary: "Revoke one of an org's API keys (at once)",
        params: orgParams.extend({ keyId: z.uuid() }),
        response: { 204: z.null(), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      platformOnly(request);
      const keys = await identity.orgs.listApiKeys(request.params.id);
      if (!keys.some((key) => key.id === request.params.keyId && !key.revokedAt))
        throw new AppError('NOT_FOUND', 'active API key not found');
      await identity.orgs.revokeApiKey(request.params.keyId);
      request.log.info({ apiKeyId: request.params.keyId, by: reviewerLabel(requireReviewer(request)) }, 'API key revoked');
      return reply.code(204).send(null);
    },
  );

  /**
   * The sign-in routes are browser navigations: a refusal (4xx) is a plain page that says why and
   * links back to the sign-in, with the same status, never our JSON envelope. 5xx stay as they are.
   */
  async function inBrowser(reply: FastifyReply, run: () => Promise<FastifyReply>): Promise<FastifyReply> {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof AppError) || error.statusCode >= 500) throw error;
      const escape = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
      return reply
        .code(error.statusCode)
        .type('text/html; charset=utf-8')
        .send(
          '<!doctype html><html lang="en"><meta charset="utf-8"><title>Sign-in refused</title>' +
            `<h1>Sign-in refused</h1><p>${escape(error.message)}</p><p><a href="/console/">Back to the console sign-in</a></p></html>`,
        );
    }
  }

  const flowCookie = 'tranche_console_oidc';
  const callbackUrl = `${options.publicUrl}/admin/console/oidc/callback`;

  routes.get(
    '/console/oidc/start',
    {
      schema: {
        ...common,
        // Browser navigation only (a redirect), like the other pages: not part of the API document.
        hide: true,
        summary: "Org admin sign-in: redirects to the org's OpenID provider (authorization code + PKCE S256)",
        querystring: z.object({ org_id: z.uuid() }),
        response: { 302: z.null(), ...errorResponses(400, 404, 409, 503) },
      },
    },
    async (request, reply) =>
      inBrowser(reply, async () => {
        const org = await identity.orgs.getOrg(request.query.org_id);
        if (!org) throw new AppError('NOT_FOUND', 'org not found');
        if (!org.idpIssuer)
          throw new AppError('INVALID_STATE', "The org's IdP is registered by JWKS URL only; browser sign-in needs its issuer");
        const provider = await discover(org.idpIssuer);
        const codeVerifier = randomBytes(32).toString('base64url');
        const flow = {
          orgId: org.id,
          state: randomBytes(16).toString('base64url'),
          nonce: randomBytes(16).toString('base64url'),
          codeVerifier,
        };
        reply.setCookie(flowCookie, identity.consoleSessions.signFlow(flow), {
          httpOnly: true,
          // Lax: the IdP sends the browser back with a top-level GET from its own site.
          sameSite: 'lax',
          secure,
          path: '/admin/console/oidc',
          maxAge: CONSOLE_OIDC_FLOW_SECONDS,
        });
        const target = new URL(provider.authorization_endpoint);
        target.search = new URLSearchParams({
          response_type: 'code',
          client_id: org.idpAudience,
          redirect_uri: callbackUrl,
          scope: 'openid email',
          state: flow.state,
          nonce: flow.nonce,
          code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'),
          code_challenge_method: 'S256',
        }).toString();
        return reply.redirect(target.toString(), 302);
      }),
  );

  routes.get(
    '/console/oidc/callback',
    {
      schema: {
        ...common,
        hide: true,
        summary: 'Where the OpenID provider returns: redeems the code, opens the console session, redirects to /console',
        querystring: z.object({
          code: z.string().min(1).max(4000).optional(),
          state: z.string().max(500).optional(),
          error: z.string().max(200).optional(),
        }),
        response: { 303: z.null(), ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) =>
      inBrowser(reply, async () => {
        const cookies = (request as typeof request & { cookies: Record<string, string | undefined> }).cookies;
        const flow = cookies[flowCookie] ? identity.consoleSessions.openFlow(cookies[flowCookie]) : null;
        reply.clearCookie(flowCookie, { path: '/admin/console/oidc', httpOnly: true, sameSite: 'lax', secure });
        if (request.query.error) throw new AppError('UNAUTHORIZED', `The IdP refused the sign-in: ${request.query.error}`);
        if (!flow) throw new AppError('UNAUTHORIZED', 'The sign-in expired or was not started here; start again');
        const { code, state } = request.query;
        if (!code || !state || !constantTimeEqual(state, flow.state))
          throw new AppError('UNAUTHORIZED', 'The sign-in state does not match; start again');
        const org = await identity.orgs.getOrg(flow.orgId);
        if (!org?.idpIssuer) throw new AppError('NOT_FOUND', 'org not found');
        const provider = await discover(org.idpIssuer);
        const answer = await fetch(provider.token_endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code,
            redirect_uri: callbackUrl,
            client_id: org.idpAudience,
            code_verifier: flow.codeVerifier,
          }).toString(),
          signal: AbortSignal.timeout(IDP_TIMEOUT_MS),
        }).catch(() => undefined);
        const tokens = answer?.ok ? ((await answer.json().catch(() => undefined)) as { id_token?: unknown } | undefined) : undefined;
        if (typeof tokens?.id_token !== 'string') throw new AppError('UNAUTHORIZED', 'The IdP did not redeem the code for an ID token');
        const user = await identity.auth.verifyConsoleSignIn(org.id, tokens.id_token, flow.nonce);
        if (user.role !== 'org_admin') throw new AppError('FORBIDDEN', 'The console is for org admins; this account is not one');
        const signIn = await identity.consoleSessions.signInAsOrgAdmin(org.id, user.id);
        setCookie(reply, signIn.token, signIn.session.expiresAt);
        request.log.info({ consoleSession: signIn.session.id, orgId: org.id, userId: user.id }, 'console sign-in (org admin)');
        return reply.redirect('/console/', 303);
      }),
  );

  /** Session routes are reached with the cookie only: no cookie is 401, and writes need the CSRF token. */
  async function requireCookie(request: FastifyRequest) {
    if (!consoleToken(request)) throw new AppError('UNAUTHORIZED', 'Not signed in to the console');
    await onRequest(request);
  }
}
