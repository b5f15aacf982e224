import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** Who made a change, as the audit log records it. */
export type ActorKind = 'user' | 'org_admin' | 'platform_staff' | 'api_key' | 'system';
/**
 * `id`: the user id (user, org_admin), `admin_key:<id>` or a console account (platform_staff),
 * the API key id (api_key), or what acted (`payments:stripe`, `cli`, `worker`) for system.
 */
export type Actor = { kind: ActorKind; id: string | null };

export const SYSTEM_ACTOR: Actor = { kind: 'system', id: null };

/** What the audit writer learns from the request it runs in: its id and, once authenticated, its caller. */
export type AuditContext = { requestId: string | null; actor: () => Actor };

export const auditContext = new AsyncLocalStorage<AuditContext>();

/** The caller of a request, from whichever authentication ran (back office first, then API). */
export function actorOf(request: FastifyRequest): Actor {
  const reviewer = request.reviewer;
  if (reviewer?.kind === 'platform_admin') return { kind: 'platform_staff', id: `admin_key:${reviewer.adminKeyId}` };
  if (reviewer?.kind === 'org_admin') return { kind: 'org_admin', id: reviewer.userId };
  const principal = request.principal;
  if (principal?.kind === 'user') return { kind: principal.role === 'org_admin' ? 'org_admin' : 'user', id: principal.userId };
  // Platform staff working in an org through the console act as the org's API would, under their admin key.
  if (principal?.kind === 'api_key')
    return principal.apiKeyId.startsWith('admin_key:')
      ? { kind: 'platform_staff', id: principal.apiKeyId }
      : { kind: 'api_key', id: principal.apiKeyId };
  return SYSTEM_ACTOR;
}

/**
 * Runs each request's handler inside an audit context, so an audit entry written anywhere below
 * it carries the request id and the authenticated caller. A callback hook after the body is read
 * (body stream events would run outside it), like the idempotency participant.
 */
export const auditContextPlugin = fp(async (app: FastifyInstance) => {
  if (!app.hasRequestDecorator('reviewer')) app.decorateRequest('reviewer', null);
  app.addHook('preValidation', (request, _reply, done) => {
    auditContext.run({ requestId: request.id, actor: () => actorOf(request) }, done);
  });
});
