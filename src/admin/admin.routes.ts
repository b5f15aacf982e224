import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { toSnake } from '../platform/http/case.ts';
import { optionalBody } from '../platform/http/bodies.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { errorResponses } from '../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, cursorPageMeta, cursorPageMetaFor, cursorPagingQuery } from '../platform/http/paging.ts';
import type { Identity } from '../identity/identity.module.ts';
import { accreditationResponse, reviewStatus } from '../identity/accreditation/accreditation.schemas.ts';
import type { ReviewAction } from '../identity/accreditation/accreditation.service.ts';
import { kycStatus, verificationResponse } from '../identity/kyc/kyc.schemas.ts';
import { adminSecurity, requireReviewer, reviewerAuth } from './reviewer.ts';

const idParams = z.object({ id: z.uuid() });
const requiredReasonBody = z.strictObject({ reason: z.string().trim().min(1).max(2000) });
const REASON_REQUIRED = new Set<ReviewAction>(['request_info', 'deny']);
const reasonBody = optionalBody(z.strictObject({ reason: z.string().trim().min(1).max(2000).optional() }));
const common = { tags: ['admin: review'], security: adminSecurity };

/** Back-office review queues for KYC and accreditation. */
export async function adminRoutes(app: FastifyInstance, options: { identity: Identity }) {
  const { identity } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, identity);
  const reviewer = requireReviewer;

  routes.get(
    '/kyc-verifications',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'KYC review queue (default status needs_review)',
        description: `Newest first; page with \`cursor\` (the \`next_cursor\` of the previous page) or \`offset\`. ${CAPPED_TOTAL_NOTE}`,
        querystring: cursorPagingQuery.extend({ status: kycStatus.optional() }),
        response: {
          200: envelope(z.object({ items: z.array(verificationResponse), meta: cursorPageMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { status, ...paging } = request.query;
      const { items, ...count } = await identity.kyc.listForReview(reviewer(request), { status }, paging);
      return ok({
        items: toSnake(items),
        meta: cursorPageMetaFor(
          paging,
          items.map((item) => item.verificationId),
          count,
        ),
      });
    },
  );

  for (const [path, decision] of [
    ['approve', 'approved'],
    ['reject', 'rejected'],
  ] as const) {
    routes.post(
      `/kyc-verifications/:id/${path}`,
      {
        onRequest,
        schema: {
          ...common,
          summary: `${path === 'approve' ? 'Approve' : 'Reject'} a KYC verification in needs_review`,
          params: idParams,
          body: reasonBody,
          response: { 200: envelope(verificationResponse), ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request) => ok(toSnake(await identity.kyc.review(reviewer(request), request.params.id, decision, request.body?.reason))),
    );
  }

  routes.get(
    '/accreditations',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Accreditation review queue (default review_status pending_review)',
        description: `Oldest submission first; page with \`cursor\` (the \`next_cursor\` of the previous page) or \`offset\`. ${CAPPED_TOTAL_NOTE}`,
        querystring: cursorPagingQuery.extend({ review_status: reviewStatus.default('pending_review') }),
        response: {
          200: envelope(z.object({ items: z.array(accreditationResponse), meta: cursorPageMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { review_status: status, ...paging } = request.query;
      const { items, ...count } = await identity.accreditation.listForReview(reviewer(request), status, paging);
      return ok({
        items: toSnake(items),
        meta: cursorPageMetaFor(
          paging,
          items.map((item) => item.id),
          count,
        ),
      });
    },
  );

  routes.get(
    '/accreditations/documents/:id/download',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'A five-minute download link for a supporting document',
        params: idParams,
        response: { 200: envelope(z.object({ url: z.string(), expires_at: z.date() })), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => ok(toSnake(await identity.accreditation.documentDownload(reviewer(request), request.params.id))),
  );

  const actions: Record<string, ReviewAction> = {
    'start-review': 'start_review',
    'request-info': 'request_info',
    approve: 'approve',
    deny: 'deny',
  };
  for (const [path, action] of Object.entries(actions)) {
    routes.post(
      `/accreditations/:id/${path}`,
      {
        onRequest,
        schema: {
          ...common,
          summary: `Accreditation review: ${path}`,
          params: idParams,
          // Asking for more information and denying tell the investor why; the other actions need no body.
          body: REASON_REQUIRED.has(action) ? requiredReasonBody : reasonBody,
          response: { 200: envelope(accreditationResponse), ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request) =>
        ok(toSnake(await identity.accreditation.review(reviewer(request), request.params.id, action, request.body?.reason))),
    );
  }
}
