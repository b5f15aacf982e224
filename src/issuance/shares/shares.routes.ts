import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireUser } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses, notFound } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, pageMetaFor, pageOffset, pagePagingQuery } from '../../platform/http/paging.ts';
import { fromCents } from '../../platform/money.ts';
import { paged, securityCategory } from '../offerings/offerings.schemas.ts';
import type { SharesRepo, ShareWithRefs } from './shares.repo.ts';

export const shareStatus = z.enum(['active', 'transferred', 'converted', 'redeemed', 'cancelled']);
export const shareResponse = z.object({
  id: z.uuid(),
  security_class_id: z.uuid(),
  units: z.number(),
  price_per_unit: z.string(),
  total_cost_basis: z.string(),
  currency: z.string(),
  acquisition_type: z.literal('primary'),
  acquisition_date: z.string(),
  holding_period_end_date: z.string().nullable(),
  restricted: z.boolean(),
  restricted_until: z.string().nullable(),
  status: shareStatus,
  created_at: z.date(),
  updated_at: z.date(),
  security: z.object({ id: z.uuid(), name: z.string(), category: securityCategory }),
  offering: z.object({ id: z.uuid(), name: z.string() }),
});

/** A ledger entry as the API shows it (snake_case, money as decimal strings). */
export const present = ({ share, security, offering }: ShareWithRefs) =>
  toSnake({
    id: share.id,
    securityClassId: share.securityClassId,
    units: share.units,
    pricePerUnit: fromCents(share.pricePerUnitCents),
    totalCostBasis: fromCents(share.costBasisCents),
    currency: share.currency,
    acquisitionType: share.acquisitionType,
    acquisitionDate: share.acquisitionDate,
    holdingPeriodEndDate: share.holdingPeriodEndDate,
    restricted: share.restricted,
    restrictedUntil: share.restrictedUntil,
    status: share.status,
    createdAt: share.createdAt,
    updatedAt: share.updatedAt,
    security,
    offering,
  });

export async function sharesRoutes(app: FastifyInstance, options: { shares: SharesRepo }) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer']);
  const common = { tags: ['issuance: shares'], security: [{ bearer: [] }] };

  routes.get(
    '/shares',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's shares",
        description: `Newest first. ${CAPPED_TOTAL_NOTE}`,
        querystring: pagePagingQuery.extend({
          security_class_id: z.uuid().optional(),
          offering_id: z.uuid().optional(),
          status: shareStatus.optional(),
          restricted: z
            .enum(['true', 'false'])
            .transform((value) => value === 'true')
            .optional(),
        }),
        response: { 200: envelope(paged(shareResponse)), ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const user = requireUser(request);
      const q = request.query;
      const { rows, ...count } = await options.shares.list(
        {
          orgId: user.orgId,
          userId: user.userId,
          securityClassId: q.security_class_id,
          offeringId: q.offering_id,
          status: q.status,
          restricted: q.restricted,
        },
        { limit: q.limit, offset: pageOffset(q) },
      );
      return ok({ items: rows.map(present), meta: pageMetaFor(q, count) });
    },
  );

  routes.get(
    '/shares/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'A share ledger entry',
        params: z.object({ id: z.uuid() }),
        response: { 200: envelope(shareResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const user = requireUser(request);
      const row = await options.shares.find({ orgId: user.orgId, userId: user.userId, id: request.params.id });
      if (!row) throw notFound('share');
      return ok(present(row));
    },
  );
}
