import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import {
  createDocumentBody,
  createIssuerBody,
  createOfferingBody,
  createSecurityBody,
  documentResponse,
  offeringResponse,
  offeringStatus,
  securityResponse,
  updateOfferingBody,
} from '../issuance/offerings/offerings.schemas.ts';
import { paged } from '../issuance/offerings/offerings.schemas.ts';
import type { OfferingsService } from '../issuance/offerings/offerings.service.ts';
import { subscriptionResponse, subscriptionStatus } from '../issuance/subscriptions/subscriptions.schemas.ts';
import type { SubscriptionsService } from '../issuance/subscriptions/subscriptions.service.ts';
import {
  CAPPED_TOTAL_NOTE,
  pageCursorMeta,
  pageCursorMetaFor,
  pageCursorPagingQuery,
  pageMetaFor,
  pageOffset,
  pagePagingQuery,
} from '../platform/http/paging.ts';
import type { Issuance } from '../issuance/issuance.module.ts';
import { present as presentShare, shareResponse, shareStatus } from '../issuance/shares/shares.routes.ts';
import { toSnake } from '../platform/http/case.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { errorResponses } from '../platform/http/errors.ts';
import { adminSecurity, requireReviewer, reviewerAuth } from './reviewer.ts';

const idParams = z.object({ id: z.uuid() });
const issuerResponse = z.object({
  id: z.uuid(),
  org_id: z.uuid(),
  legal_name: z.string(),
  formation_date: z.string().nullable(),
  country_of_formation: z.string().nullable(),
  country_subdivision_of_formation: z.string().nullable(),
  created_at: z.date(),
});

/** Back office: issuers, offerings and their lifecycle, security classes, documents. */
export async function offeringsAdminRoutes(app: FastifyInstance, options: { identity: Identity; offerings: OfferingsService }) {
  const { offerings } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);
  const common = { tags: ['admin: offerings'], security: adminSecurity };

  routes.post(
    '/issuers',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create an issuer',
        body: createIssuerBody,
        response: { 201: envelope(issuerResponse), ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(toSnake(await offerings.createIssuer(requireReviewer(request), request.body)))),
  );

  routes.post(
    '/offerings',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create an offering (draft)',
        body: createOfferingBody,
        response: { 201: envelope(offeringResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { targetAmount, maximumAmount, minimumInvestment, maximumInvestment, ...rest } = request.body;
      const created = await offerings.create(requireReviewer(request), {
        ...rest,
        targetAmountCents: targetAmount,
        maximumAmountCents: maximumAmount,
        minimumInvestmentCents: minimumInvestment,
        maximumInvestmentCents: maximumInvestment,
      });
      return reply.code(201).send(ok(toSnake(created)));
    },
  );

  routes.get(
    '/offerings',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Offerings of every status, drafts included (an org admin: their org), newest first',
        description: CAPPED_TOTAL_NOTE,
        querystring: pagePagingQuery.extend({ status: offeringStatus.optional() }),
        response: { 200: envelope(paged(offeringResponse)), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const { items, ...count } = await offerings.listForReviewer(requireReviewer(request), request.query);
      return ok({ items: toSnake(items), meta: pageMetaFor(request.query, count) });
    },
  );

  routes.patch(
    '/offerings/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Update an offering',
        params: idParams,
        body: updateOfferingBody,
        response: { 200: envelope(offeringResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { targetAmount, maximumAmount, minimumInvestment, maximumInvestment, ...rest } = request.body;
      const changes = {
        ...rest,
        ...(targetAmount !== undefined ? { targetAmountCents: targetAmount } : {}),
        ...(maximumAmount !== undefined ? { maximumAmountCents: maximumAmount } : {}),
        ...(minimumInvestment !== undefined ? { minimumInvestmentCents: minimumInvestment } : {}),
        ...(maximumInvestment !== undefined ? { maximumInvestmentCents: maximumInvestment } : {}),
      };
      return ok(toSnake(await offerings.update(requireReviewer(request), request.params.id, changes)));
    },
  );

  for (const action of ['open', 'pause', 'close'] as const) {
    routes.post(
      `/offerings/:id/${action}`,
      {
        onRequest,
        schema: {
          ...common,
          summary: `${action} an offering`,
          params: idParams,
          response: { 200: envelope(offeringResponse), ...errorResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request) => ok(toSnake(await offerings.transition(requireReviewer(request), request.params.id, action))),
    );
  }

  routes.post(
    '/offerings/:id/securities',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Add a security class',
        params: idParams,
        body: createSecurityBody,
        response: { 201: envelope(securityResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { pricePerUnit, ...rest } = request.body;
      return reply
        .code(201)
        .send(
          ok(
            toSnake(await offerings.addSecurity(requireReviewer(request), request.params.id, { ...rest, pricePerUnitCents: pricePerUnit })),
          ),
        );
    },
  );

  routes.post(
    '/offerings/:id/documents',
    {
      onRequest,
      bodyLimit: 14 * 1024 * 1024,
      schema: {
        ...common,
        summary: 'Add a document (base64); each upload of a kind is a new version',
        params: idParams,
        body: createDocumentBody,
        response: { 201: envelope(documentResponse), ...errorResponses(400, 401, 403, 404, 413) },
      },
    },
    async (request, reply) => {
      const { content, ...rest } = request.body;
      const document = await offerings.addDocument(requireReviewer(request), request.params.id, {
        ...rest,
        content: Buffer.from(content, 'base64'),
      });
      return reply.code(201).send(ok(toSnake(document)));
    },
  );
}

/** Back office: the subscription review queue, approval (issues shares) and rejection (refunds). */
export async function subscriptionsAdminRoutes(app: FastifyInstance, options: { identity: Identity; subscriptions: SubscriptionsService }) {
  const { subscriptions } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);
  const common = { tags: ['admin: subscriptions'], security: adminSecurity };

  routes.get(
    '/subscriptions',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Subscriptions by status (default pending_review)',
        description: `Newest first; page with \`page\`, or with \`cursor\` (the \`next_cursor\` of the previous page: the cost does not grow with depth, and new subscriptions do not shift pages). ${CAPPED_TOTAL_NOTE}`,
        querystring: pageCursorPagingQuery.extend({ status: subscriptionStatus.default('pending_review') }),
        response: {
          200: envelope(z.object({ items: z.array(subscriptionResponse), meta: pageCursorMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { status, ...paging } = request.query;
      const { items, ...count } = await subscriptions.listForReview(requireReviewer(request), status, paging);
      return ok({
        items: toSnake(items),
        meta: pageCursorMetaFor(
          paging,
          items.map((item) => item.id),
          count,
        ),
      });
    },
  );

  routes.get(
    '/subscriptions/:id/timeline',
    {
      onRequest,
      schema: {
        ...common,
        summary: "A subscription's status changes: from, to, who (actor), why, when; oldest first",
        params: idParams,
        response: {
          200: envelope(
            z.object({
              items: z.array(
                z.object({
                  from_status: z.string().nullable(),
                  to_status: z.string(),
                  actor: z.string(),
                  reason: z.string().nullable(),
                  created_at: z.date(),
                }),
              ),
            }),
          ),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const rows = await subscriptions.timeline(requireReviewer(request), request.params.id);
      return ok({
        items: rows.map((row) =>
          toSnake({ fromStatus: row.fromStatus, toStatus: row.toStatus, actor: row.actor, reason: row.reason, createdAt: row.createdAt }),
        ),
      });
    },
  );

  routes.post(
    '/subscriptions/:id/approve',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Approve: issues the shares and completes the subscription',
        params: idParams,
        response: { 200: envelope(subscriptionResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => ok(toSnake(await subscriptions.approve(requireReviewer(request), request.params.id))),
  );

  routes.post(
    '/subscriptions/:id/reject',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Reject (refunds the payment)',
        params: idParams,
        body: z.strictObject({ reason: z.string().trim().min(1).max(2000) }),
        response: { 200: envelope(subscriptionResponse), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => ok(toSnake(await subscriptions.reject(requireReviewer(request), request.params.id, request.body.reason))),
  );
}

const ledgerEntry = shareResponse.extend({ org_id: z.uuid(), user_id: z.uuid() });

/** Back office: the share ledger per offering and per investor, with restrictions (Rule 144 holding period ends). */
export async function sharesAdminRoutes(app: FastifyInstance, options: { identity: Identity; issuance: Pick<Issuance, 'ledger'> }) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);

  routes.get(
    '/shares',
    {
      onRequest,
      schema: {
        tags: ['admin: ledger'],
        security: adminSecurity,
        summary: 'The share ledger (every holder), newest first; filter by offering, investor, restriction, status',
        description: CAPPED_TOTAL_NOTE,
        querystring: pagePagingQuery.extend({
          offering_id: z.uuid().optional(),
          user_id: z.uuid().optional(),
          status: shareStatus.optional(),
          restricted: z
            .enum(['true', 'false'])
            .transform((value) => value === 'true')
            .optional(),
        }),
        response: { 200: envelope(paged(ledgerEntry)), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const q = request.query;
      const { rows, ...count } = await options.issuance.ledger(
        requireReviewer(request),
        { offeringId: q.offering_id, userId: q.user_id, status: q.status, restricted: q.restricted },
        { limit: q.limit, offset: pageOffset(q) },
      );
      return ok({
        items: rows.map((row) => ({ ...presentShare(row), org_id: row.share.orgId, user_id: row.share.userId })),
        meta: pageMetaFor(q, count),
      });
    },
  );
}
