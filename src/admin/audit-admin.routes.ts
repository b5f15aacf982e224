import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import { reviewerOrg } from '../platform/auth/principal.ts';
import type { AuditService } from '../platform/audit/audit.service.ts';
import { auditEntryResponse, auditQuery, chainReportResponse, presentEntry, presentReport } from '../platform/audit/audit.schemas.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { AppError, errorResponses } from '../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, offsetPageMeta, offsetPageMetaFor } from '../platform/http/paging.ts';
import { adminSecurity, requireReviewer, reviewerAuth } from './reviewer.ts';

/**
 * Reads of the audit log: filtered pages, a subject's timeline, and (platform admins) a
 * verification of the chains. An org_admin sees their org's entries only; a platform admin sees
 * every org's and the org-less chains, and may filter by `org_id`. Mounted under `/admin` and
 * `/identity` (where org admins read their org's log).
 */
export async function auditRoutes(app: FastifyInstance, options: { identity: Identity; audit: AuditService; tag: string }) {
  const { audit } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);
  const common = { tags: [options.tag], security: adminSecurity };

  routes.get(
    '/audit',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Audit log entries, newest first, filtered by subject, actor, action and time',
        description: CAPPED_TOTAL_NOTE,
        querystring: auditQuery.extend({ org_id: z.uuid().optional() }),
        response: {
          200: envelope(z.object({ items: z.array(auditEntryResponse), meta: offsetPageMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const scope = reviewerOrg(requireReviewer(request));
      if (scope !== undefined && q.org_id !== undefined && q.org_id !== scope)
        throw new AppError('FORBIDDEN', 'An org_admin reads their own org’s audit log');
      const { rows, ...count } = await audit.list(
        {
          orgId: scope ?? q.org_id,
          subjectType: q.subject_type,
          subjectId: q.subject_id,
          actorKind: q.actor_kind,
          actorId: q.actor_id,
          action: q.action,
          from: q.from ? new Date(q.from) : undefined,
          to: q.to ? new Date(q.to) : undefined,
        },
        { limit: q.limit, offset: q.offset },
      );
      return ok({ items: rows.map(presentEntry), meta: offsetPageMetaFor(q, count) });
    },
  );

  routes.get(
    '/audit/subjects/:type/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary:
          "A subject's timeline: its entries and those naming it as related, oldest first (e.g. a subscription from creation to shares)",
        params: z.object({ type: z.string().regex(/^[a-z_]{1,100}$/), id: z.string().min(1).max(200) }),
        response: { 200: envelope(z.object({ items: z.array(auditEntryResponse) })), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const scope = reviewerOrg(requireReviewer(request));
      const rows = await audit.timeline({ type: request.params.type, id: request.params.id, orgId: scope });
      return ok({ items: rows.map(presentEntry) });
    },
  );

  routes.get(
    '/audit/verify',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Walks the audit chains (an org_admin: their org’s) and reports the first broken link of each',
        response: { 200: envelope(z.object({ ok: z.boolean(), chains: z.array(chainReportResponse) })), ...errorResponses(401, 403) },
      },
    },
    async (request) => {
      const scope = reviewerOrg(requireReviewer(request));
      const reports = await audit.verify(scope ? { orgId: scope } : {});
      return ok({ ok: reports.every((report) => report.ok), chains: reports.map(presentReport) });
    },
  );
}
