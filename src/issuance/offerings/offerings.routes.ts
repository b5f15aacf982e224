import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requirePrincipal, type Principal } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, pageMetaFor, pagePagingQuery } from '../../platform/http/paging.ts';
import {
  documentResponse,
  listOfferingsQuery,
  listSecuritiesQuery,
  offeringResponse,
  paged,
  securityResponse,
  type SecurityCategory,
} from './offerings.schemas.ts';
import type { OfferingsService } from './offerings.service.ts';

const idParams = z.object({ id: z.uuid() });

export async function offeringsRoutes(app: FastifyInstance, options: { offerings: OfferingsService }) {
  const { offerings } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const either = app.authenticate(['bearer', 'api_key']);
  const bearer = app.authenticate(['bearer']);
  const security: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];
  const common = { tags: ['issuance: offerings'], security };

  async function listSecurities(
    principal: Principal,
    offeringId: string | undefined,
    query: { category?: SecurityCategory; page: number; limit: number },
  ) {
    const { items, ...count } = await offerings.securities(principal, { offeringId, category: query.category }, query);
    return ok({ items: toSnake(items), meta: pageMetaFor(query, count) });
  }

  routes.get(
    '/offerings',
    {
      onRequest: either,
      schema: {
        ...common,
        summary: 'List offerings (status active = open)',
        description: CAPPED_TOTAL_NOTE,
        querystring: listOfferingsQuery,
        response: { 200: envelope(paged(offeringResponse)), ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const q = request.query;
      const { items, ...count } = await offerings.list(requirePrincipal(request), {
        status: q.status,
        exemptionType: q.exemption_type,
        sortBy: q.sort_by,
        sortOrder: q.sort_order,
        page: q.page,
        limit: q.limit,
      });
      return ok({ items: toSnake(items), meta: pageMetaFor(q, count) });
    },
  );

  routes.get(
    '/offerings/:id',
    {
      onRequest: either,
      schema: {
        ...common,
        summary: 'Get an offering',
        params: idParams,
        response: { 200: envelope(offeringResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await offerings.get(requirePrincipal(request), request.params.id))),
  );

  routes.get(
    '/offerings/:id/documents',
    {
      onRequest: bearer,
      schema: {
        ...common,
        security: [{ bearer: [] }],
        summary: 'Offering documents with short-lived download links',
        description: CAPPED_TOTAL_NOTE,
        params: idParams,
        querystring: pagePagingQuery,
        response: { 200: envelope(paged(documentResponse)), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const { items, ...count } = await offerings.documents(requirePrincipal(request), request.params.id, request.query);
      return ok({ items: toSnake(items), meta: pageMetaFor(request.query, count) });
    },
  );

  routes.get(
    '/offerings/:id/securities',
    {
      onRequest: either,
      schema: {
        ...common,
        summary: 'Security classes of an offering',
        description: CAPPED_TOTAL_NOTE,
        params: idParams,
        querystring: listSecuritiesQuery.omit({ offering_id: true }),
        response: { 200: envelope(paged(securityResponse)), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => listSecurities(requirePrincipal(request), request.params.id, request.query),
  );

  routes.get(
    '/securities',
    {
      onRequest: either,
      schema: {
        ...common,
        summary: 'List security classes',
        description: CAPPED_TOTAL_NOTE,
        querystring: listSecuritiesQuery,
        response: { 200: envelope(paged(securityResponse)), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => listSecurities(requirePrincipal(request), request.query.offering_id, request.query),
  );

  routes.get(
    '/securities/:id',
    {
      onRequest: either,
      schema: {
        ...common,
        summary: 'Get a security class',
        params: idParams,
        response: { 200: envelope(securityResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await offerings.security(requirePrincipal(request), request.params.id))),
  );
}
