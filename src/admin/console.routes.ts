import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import { CONSOLE_COOKIE, CONSOLE_COOKIE_SECURE, consoleToken } from '../platform/auth/console-session.ts';
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

  /** Session routes are reached with the cookie only: no cookie is 401, and writes need the CSRF token. */
  async function requireCookie(request: FastifyRequest) {
    if (!consoleToken(request)) throw new AppError('UNAUTHORIZED', 'Not signed in to the console');
    await onRequest(request);
  }
}
